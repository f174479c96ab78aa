using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Turbine.Engine.Backends;
using Turbine.Engine.KvCache;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;
using Turbine.Tokenizers;

namespace Turbine.Engine.Executor;

/// <summary>
/// The batch manager: requests go in through <see cref="Submit"/>, one loop thread owns the running batch and the
/// KV cache, and each step packs the next token of every generating request with chunks of prompts still being
/// prefilled, under max_num_tokens and max_batch_size. Outputs stream back through per-request channels.
/// </summary>
public sealed class LlmExecutor : IAsyncDisposable, IDisposable
{
    private readonly Decoder _decoder;
    private readonly Tokenizer? _tokenizer;
    private readonly ExecutorOptions _options;
    private readonly KvCacheManager _kv;
    private readonly KvCacheStorage _storage;
    private readonly ForwardBatch _batch;
    // Logit rows on the host, allocated on the first step that downloads them (context/generation logits, beams):
    // steps sampled or argmax'd on the backend never need them, and at large batches they are hundreds of MB.
    private float[]? _logits;
    // Per logit row of a step whose tokens were chosen on the backend (ArgMax or Sample): the ids and log probs.
    private readonly int[] _ids;
    private readonly float[] _logProbs;
    private readonly SamplingBatch _sampling = new();
    private readonly float[] _scratch;
    private readonly ulong[] _order;
    private readonly int[] _defaultEndIds;
    private readonly int _maxInputLen;
    private readonly int _maxSeqLen;
    private readonly Channel<RequestState> _incoming = Channel.CreateUnbounded<RequestState>(new UnboundedChannelOptions { SingleReader = true });
    private readonly LinkedList<RequestState> _waiting = new();
    private readonly List<RequestState> _running = [];
    private List<ScheduledWork> _scheduled = [];
    // The work of a step launched with its argmax queued but not read (OverlapScheduling): the next iteration launches
    // the step after it first, then reads these tokens.
    private List<ScheduledWork> _inflight = [];
    private readonly List<(int Source, int Destination)> _blockCopies = [];
    // Outputs of the last step, sent while the device runs the next one: detokenising and waking readers is host work
    // that would otherwise sit between two steps.
    private readonly List<(RequestState Request, bool Final)> _pendingOutputs = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _loop;
    private long _nextId;
    private int _queued;
    private int _active;
    private long _iterations;
    private long _completed;
    private long _preemptions;
    private int _lastBatch, _lastContextTokens, _lastGenerationTokens;
    private DateTime _oldestWaitingSince;
    private Exception? _fault;

    /// <summary>
    /// Runs <paramref name="decoder"/> under <paramref name="options"/>; the decoder's limits must cover the step limits.
    /// With a <paramref name="tokenizer"/>, requests may carry text and outputs carry text.
    /// </summary>
    public LlmExecutor(Decoder decoder, ExecutorOptions options, Tokenizer? tokenizer = null)
    {
        _decoder = decoder;
        _tokenizer = tokenizer;
        _options = options;
        var config = decoder.Config;
        if (decoder.Limits.MaxTokensPerStep < options.MaxNumTokens || decoder.Limits.MaxSequencesPerStep < options.MaxBatchSize)
            throw new ArgumentException($"the decoder was loaded for {decoder.Limits.MaxTokensPerStep} tokens and {decoder.Limits.MaxSequencesPerStep} sequences per step, "
                + $"less than max_num_tokens {options.MaxNumTokens} and max_batch_size {options.MaxBatchSize}; load it with {nameof(DecoderLimitsFor)}");
        int blockSize = options.TokensPerBlock;
        if (!(options.KvCacheFreeGpuMemFraction > 0f && options.KvCacheFreeGpuMemFraction <= 1f))
            throw new ArgumentException($"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {options.KvCacheFreeGpuMemFraction}");
        long budget = decoder.Backend is IDeviceMemory device
            ? (long)(device.FreeBytes * (double)options.KvCacheFreeGpuMemFraction)
            : options.KvCacheMemoryBytes;
        int blocks = options.MaxTokensInPagedKvCache is int tokens
            ? Math.Max(1, tokens / blockSize)
            : (int)Math.Max(1, Math.Min(int.MaxValue, budget / decoder.KvShape(1, blockSize).BytesPerBlock(decoder.Backend.KvElementBytes)));
        _kv = new KvCacheManager(blocks, blockSize, options.EnableKvCacheReuse);
        _storage = decoder.Backend.AllocateKvCache(decoder.KvShape(blocks, blockSize));
        _batch = decoder.CreateBatch();
        _ids = new int[decoder.Limits.LogitRows];
        _logProbs = new float[decoder.Limits.LogitRows];
        _scratch = new float[config.VocabSize];
        _order = new ulong[config.VocabSize];
        _defaultEndIds = config.EosTokenIds;
        // Dynamic NTK scaling exists to run past the trained length, by its factor; YaRN stretches the original
        // context by its factor (as vLLM derives max_model_len: Qwen2.5 keeps max_position_embeddings at the original).
        var rope = config.Rope;
        int modelContext = rope.Type switch
        {
            Turbine.Core.Models.RopeScalingType.Dynamic => (int)Math.Min(int.MaxValue, config.MaxPositionEmbeddings * rope.Factor),
            Turbine.Core.Models.RopeScalingType.Yarn =>
                (int)Math.Min(int.MaxValue, (rope.OriginalMaxPositionEmbeddings ?? config.MaxPositionEmbeddings) * rope.Factor),
            _ => config.MaxPositionEmbeddings,
        };
        _maxSeqLen = options.MaxSeqLen > 0 ? options.MaxSeqLen : Math.Max(modelContext, 2);
        _maxInputLen = options.MaxInputLen > 0 ? Math.Min(options.MaxInputLen, _maxSeqLen - 1) : _maxSeqLen - 1;
        _loop = new Thread(Loop) { IsBackground = true, Name = "Turbine executor loop" };
        _loop.Start();
    }

    /// <summary>Decoder limits that fit <paramref name="options"/>: its step sizes, and logit rows for context logits.</summary>
    public static DecoderLimits DecoderLimitsFor(ExecutorOptions options) =>
        new(options.MaxNumTokens, options.MaxBatchSize, Math.Max(options.MaxBatchSize, Math.Min(options.MaxNumTokens, 512)), options.MaxAttentionWindowSize);

    /// <summary>The model being served.</summary>
    public Decoder Decoder => _decoder;

    /// <summary>The executor's configuration.</summary>
    public ExecutorOptions Options => _options;

    private float[] HostLogits => _logits ??= new float[(long)_decoder.Limits.LogitRows * _decoder.Config.VocabSize];

    /// <summary>KV cache capacity in tokens.</summary>
    public int KvCapacityTokens => _kv.TotalBlocks * _kv.BlockSize;

    /// <summary>
    /// Queues <paramref name="request"/> and returns its outputs as they are produced. Invalid requests, and requests
    /// beyond the queue limit, are refused at once with <see cref="RequestRejectedException"/>. Cancelling
    /// <paramref name="cancellationToken"/>, or abandoning the enumeration, frees the request's KV blocks within one step.
    /// </summary>
    public IAsyncEnumerable<GenerationOutput> Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        if (_fault is not null)
            throw new InvalidOperationException("the executor stopped after an internal error", _fault);
        request = Tokenize(request);
        Validate(request);
        if (Interlocked.Increment(ref _queued) > _options.MaxQueueSize)
        {
            Interlocked.Decrement(ref _queued);
            throw new RequestRejectedException($"the queue is full ({_options.MaxQueueSize} requests waiting); try again later", isOverload: true);
        }
        var endIds = request.EndId is int end ? end < 0 ? [] : [end] : _defaultEndIds;
        var sampling = request.Sampling;
        var state = new RequestState(Interlocked.Increment(ref _nextId), request, endIds, _decoder.Config.VocabSize,
            _tokenizer?.CreateIncrementalDecoder(skipSpecialTokens: true))
        {
            Beams = sampling.BeamWidth > 1
                ? new BeamSearch(sampling.BeamWidth, request.MaxTokens, sampling.LengthPenalty, sampling.EarlyStopping, endIds,
                    request.StopWords, request.ReturnLogProbs, _kv)
                : null,
        };
        if (!_incoming.Writer.TryWrite(state))
        {
            Interlocked.Decrement(ref _queued);
            throw new RequestRejectedException("the executor is shutting down", isOverload: true);
        }
        return Read(state, cancellationToken);
    }

    private static async IAsyncEnumerable<GenerationOutput> Read(RequestState state, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(static s => ((RequestState)s!).CancelRequested = true, state);
        try
        {
            while (await state.Outputs.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
                while (state.Outputs.Reader.TryRead(out var output))
                {
                    yield return output;
                    if (output.IsFinal)
                        yield break;
                }
        }
        finally
        {
            // A consumer that stops early (a client that went away) cancels the request.
            state.CancelRequested = true;
        }
    }

    /// <summary>Encodes the text parts of a request with the model's tokenizer.</summary>
    private GenerationRequest Tokenize(GenerationRequest r)
    {
        bool hasText = r.Prompt is not null || r.StopStrings.Length > 0 || r.BadStrings.Length > 0;
        if (!hasText)
            return r;
        if (_tokenizer is null)
            throw new RequestRejectedException("this executor has no tokenizer, so requests must give token ids rather than text");
        if (r.Prompt is not null && r.PromptIds.Length > 0)
            throw new RequestRejectedException("give the prompt as text or as token ids, not both");
        return r with
        {
            PromptIds = r.Prompt is null ? r.PromptIds : _tokenizer.Encode(r.Prompt, addSpecialTokens: true),
            Prompt = null,
            StopWords = [.. r.StopWords, .. Encode(r.StopStrings)],
            BadWords = [.. r.BadWords, .. Encode(r.BadStrings)],
            StopStrings = [],
            BadStrings = [],
        };

        int[][] Encode(string[] words)
        {
            var ids = new List<int[]>(words.Length);
            foreach (var w in words)
                if (w.Length > 0)
                    ids.Add(_tokenizer.Encode(w, addSpecialTokens: false));
            return [.. ids];
        }
    }

    private void Validate(GenerationRequest r)
    {
        int vocab = _decoder.Config.VocabSize;
        if (r.PromptIds.Length == 0)
            throw new RequestRejectedException("the prompt is empty");
        if (r.PromptIds.Length > _maxInputLen)
            throw new RequestRejectedException($"the prompt has {r.PromptIds.Length} tokens, more than max_input_len {_maxInputLen}");
        if (r.MaxTokens <= 0)
            throw new RequestRejectedException($"max_tokens must be positive, got {r.MaxTokens}");
        if (r.PromptIds.Length + r.MaxTokens > _maxSeqLen)
            throw new RequestRejectedException($"prompt ({r.PromptIds.Length} tokens) plus max_tokens ({r.MaxTokens}) exceeds max_seq_len {_maxSeqLen}");
        if (r.Sampling.Validate(_options.MaxBeamWidth) is { } bad)
            throw new RequestRejectedException(bad);
        int beams = r.Sampling.BeamWidth;
        if (beams > 1 && r.Streaming)
            throw new RequestRejectedException("streaming is not supported with beam_width > 1; the beams are returned when the search ends");
        if (beams > 1 && r.ReturnGenerationLogits)
            throw new RequestRejectedException("return_generation_logits is not supported with beam_width > 1");
        foreach (int id in r.PromptIds)
            if ((uint)id >= (uint)vocab)
                throw new RequestRejectedException($"token id {id} is outside the vocabulary [0, {vocab})");
        if (r.EndId is int end && end >= vocab)
            throw new RequestRejectedException($"end_id {end} is outside the vocabulary [0, {vocab})");
        foreach (var words in (ReadOnlySpan<int[][]>)[r.StopWords, r.BadWords])
            foreach (var w in words)
                if (w.Length == 0)
                    throw new RequestRejectedException("stop_words and bad_words entries must not be empty");
        if (r.ReturnContextLogits && r.PromptIds.Length > _decoder.Limits.LogitRows * 64)
            throw new RequestRejectedException("return_context_logits is limited to prompts of " + _decoder.Limits.LogitRows * 64 + " tokens");
        // Beams may each hold one extra block while a shared block is copied.
        int blocksNeeded = _kv.BlocksFor(r.PromptIds.Length + r.MaxTokens);
        if (beams > 1)
            blocksNeeded = beams * (blocksNeeded + 1);
        if (blocksNeeded > _kv.TotalBlocks)
            throw new RequestRejectedException(
                $"prompt plus max_tokens ({r.PromptIds.Length + r.MaxTokens} tokens) can never fit the KV cache of {KvCapacityTokens} tokens");
    }

    /// <summary>A snapshot of the counters.</summary>
    public ExecutorStatistics GetStatistics() => new()
    {
        ActiveRequests = Volatile.Read(ref _active),
        QueuedRequests = Math.Max(0, Volatile.Read(ref _queued)),
        MaxKvBlocks = _kv.TotalBlocks,
        FreeKvBlocks = _kv.FreeBlocks,
        UsedKvBlocks = _kv.UsedBlocks,
        TokensPerBlock = _kv.BlockSize,
        ReuseHits = _kv.ReuseHits,
        Iterations = Interlocked.Read(ref _iterations),
        LastStepBatchSize = _lastBatch,
        LastStepContextTokens = _lastContextTokens,
        LastStepGenerationTokens = _lastGenerationTokens,
        CompletedRequests = Interlocked.Read(ref _completed),
        Preemptions = Interlocked.Read(ref _preemptions),
    };

    private void Loop()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                DrainIncoming();
                if (_running.Count == 0 && _waiting.Count == 0)
                {
                    EmitPending();
                    WaitForWork(Timeout.InfiniteTimeSpan);
                    continue;
                }
                if (!Step())
                    WaitForWork(TimeSpan.FromMilliseconds(1));
            }
        }
        catch (Exception e)
        {
            _fault = e;
        }
        finally
        {
            DrainInflight();
            CancelAll();
        }
    }

    private void WaitForWork(TimeSpan timeout)
    {
        try
        {
            _incoming.Reader.WaitToReadAsync(_stop.Token).AsTask().Wait(timeout);
        }
        catch (AggregateException e) when (e.InnerException is OperationCanceledException)
        {
        }
    }

    private void DrainIncoming()
    {
        while (_incoming.Reader.TryRead(out var r))
        {
            if (_waiting.Count == 0)
                _oldestWaitingSince = DateTime.UtcNow;
            _waiting.AddLast(r);
        }
    }

    /// <summary>
    /// One iteration: admit, schedule, launch the forward pass, send the previous step's outputs while it runs, read this
    /// step's tokens. With a step in flight (OverlapScheduling), the step after it is launched first when it can be
    /// foreseen, and the in-flight one's tokens are read after. False when nothing could run yet.
    /// </summary>
    private bool Step()
    {
        DropCancelled();
        Admit();
        if (_inflight.Count > 0)
        {
            bool ahead = CanScheduleAhead() && ScheduleAhead();
            if (ahead)
            {
                _decoder.Forward(_batch, _storage);
                _decoder.Backend.LaunchStep();
                _decoder.QueueArgMax(_batch.LogitRowCount);
            }
            EmitPending();
            _decoder.ReadQueuedArgMax(_ids);
            Complete(_inflight, Readout.ArgMax);
            _inflight.Clear();
            _iterations++;
            if (ahead)
            {
                (_inflight, _scheduled) = (_scheduled, _inflight);
                return true;
            }
            // Requests that just ended may have made room.
            Admit();
        }
        if (_running.Count > 0)
            Schedule();
        if (_running.Count == 0 || _batch.TokenCount == 0)
        {
            EmitPending();
            return false;
        }
        foreach (var (source, destination) in _blockCopies)
            _decoder.Backend.CopyKvBlock(_storage, source, destination);
        _decoder.Forward(_batch, _storage);
        _decoder.Backend.LaunchStep();
        EmitPending();
        // Only steps where some row's logits are read on the host (context or generation logits, beam search) bring
        // the logit rows back; otherwise the backend chooses and only ids cross.
        var readout = ChooseReadout();
        if (readout == Readout.ArgMax && _options.OverlapScheduling && _decoder.Backend.FeedsTokens)
        {
            // Read by the next iteration, after it has launched the step that follows.
            _decoder.QueueArgMax(_batch.LogitRowCount);
            (_inflight, _scheduled) = (_scheduled, _inflight);
            return true;
        }
        if (readout == Readout.ArgMax)
            _decoder.ArgMaxLogits(_batch.LogitRowCount, _ids);
        else if (readout == Readout.Sample)
        {
            PrepareSampling();
            _decoder.SampleLogits(_sampling, _ids, _logProbs);
        }
        else
            _decoder.CopyLogits(_batch.LogitRowCount, HostLogits);
        _iterations++;
        Complete(_scheduled, readout);
        return true;
    }

    /// <summary>
    /// Whether the step after the in-flight one is known before its tokens are: every running request is in it, is
    /// plainly greedy, ends its work there with one logit row, and nothing waits to be admitted.
    /// </summary>
    private bool CanScheduleAhead()
    {
        if (_waiting.Count > 0 || _running.Count != _inflight.Count)
            return false;
        foreach (var (r, take, _, allRows, beam) in _inflight)
            if (beam >= 0 || allRows || r.Beams is not null || !r.PlainGreedy || r.Finish != FinishReason.None || r.Computed + take != r.Count
                || r.GenerationLogits is not null)
                return false;
        return true;
    }

    /// <summary>
    /// Schedules one more token for each request of the in-flight step, fed from that step's queued argmax, with KV
    /// blocks for it reserved now; false (nothing scheduled) if the blocks are not free.
    /// </summary>
    private bool ScheduleAhead()
    {
        _batch.Clear();
        _scheduled.Clear();
        _blockCopies.Clear();
        foreach (var work in _inflight)
        {
            var r = work.Request;
            // A request whose in-flight token is its last by length would only compute one to drop.
            if (r.Generated + 1 >= r.Request.MaxTokens || r.Count + 1 >= _maxSeqLen)
                continue;
            // The in-flight step's token goes at index r.Count.
            if (!_kv.TryReserve(r.Blocks, r.Count + 1))
            {
                _batch.Clear();
                _scheduled.Clear();
                return false;
            }
            int row = _batch.LogitRowCount;
            _batch.AddFed(work.FirstRow, r.Count, r.Blocks.Table, _kv.BlockSize);
            _scheduled.Add(new ScheduledWork(r, 1, row, AllRows: false, Beam: -1));
        }
        _lastBatch = _scheduled.Count;
        _lastContextTokens = 0;
        _lastGenerationTokens = _scheduled.Count;
        return _scheduled.Count > 0;
    }

    /// <summary>Reads the ids of a step still in flight when the loop ends, so the backend's queue is empty for the next user.</summary>
    private void DrainInflight()
    {
        if (_inflight.Count == 0)
            return;
        _inflight.Clear();
        try
        {
            _decoder.ReadQueuedArgMax(_ids);
        }
        catch (Exception e) when (_fault is not null)
        {
            // The backend already failed the loop; that first error is the one reported.
            _ = e;
        }
    }

    private void DropCancelled()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].CancelRequested)
            {
                var r = _running[i];
                r.Finish = FinishReason.Cancelled;
                Finish(r);
            }
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.CancelRequested)
            {
                _waiting.Remove(node);
                Interlocked.Decrement(ref _queued);
                node.Value.Finish = FinishReason.Cancelled;
                EmitLater(node.Value, final: true);
            }
            node = next;
        }
    }

    private void Admit()
    {
        if (_options.Batching == BatchingMode.Static)
        {
            // A static batch starts only when the previous one is done, and (emulated) when full or timed out.
            if (_running.Count > 0 || _waiting.Count == 0)
                return;
            if (_waiting.Count < _options.MaxBatchSize && DateTime.UtcNow - _oldestWaitingSince < _options.StaticBatchTimeout)
                return;
        }
        while (_waiting.First is { } node && _running.Count < _options.MaxBatchSize)
        {
            var r = node.Value;
            r.ReusedTokens = _kv.AttachCachedPrefix(r.Blocks, r.Tokens.AsSpan(0, r.Count));
            r.Computed = r.ReusedTokens;
            int beams = r.Request.Sampling.BeamWidth;
            int need = _options.Policy == SchedulerPolicy.GuaranteedNoEvict && beams == 1 ? r.PromptLength + r.Request.MaxTokens : r.Count;
            // A beam search starts only when all its beams could grow to max_tokens with what is free now.
            bool beamsFit = beams == 1 || _kv.FreeBlocks >= beams * (_kv.BlocksFor(r.PromptLength + r.Request.MaxTokens) + 1);
            if (!beamsFit || !_kv.TryReserve(r.Blocks, need))
            {
                _kv.Release(r.Blocks);
                r.Computed = 0;
                r.ReusedTokens = 0;
                break;
            }
            _waiting.RemoveFirst();
            _oldestWaitingSince = DateTime.UtcNow;
            Interlocked.Decrement(ref _queued);
            Interlocked.Increment(ref _active);
            _running.Add(r);
        }
    }

    private void Schedule()
    {
        _batch.Clear();
        _scheduled.Clear();
        _blockCopies.Clear();
        int contextTokens = 0, generationTokens = 0;
        // Generating requests first (one token each), so prefill never starves decode; then prompt chunks.
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < _running.Count; i++)
            {
                var r = _running[i];
                if (r.Beams is { Live.Count: > 0 } search)
                {
                    if (pass == 0 && ScheduleBeams(r, search))
                        generationTokens += search.Live.Count;
                    continue;
                }
                int remaining = r.Count - r.Computed;
                bool decoding = remaining == 1 && r.Generated > 0;
                if (decoding != (pass == 0) || remaining <= 0)
                    continue;
                int take = Math.Min(remaining, _batch.FreeTokens);
                bool allRows = r.Request.ReturnContextLogits && r.Computed < r.PromptLength;
                if (allRows)
                    take = Math.Min(take, _batch.LogitRows.Length - _batch.LogitRowCount);
                if (take <= 0 || _batch.SequenceCount == _batch.MaxSequences)
                    continue;
                bool reachesEnd = r.Computed + take == r.Count;
                if (!allRows && reachesEnd && _batch.LogitRowCount == _batch.LogitRows.Length)
                    continue;
                if (!EnsureBlocks(r, r.Computed + take))
                    continue;
                int firstRow = _batch.LogitRowCount;
                _batch.Add(r.Tokens.AsSpan(r.Computed, take), r.Computed, r.Blocks.Table, _kv.BlockSize, wantLogits: reachesEnd, allLogits: allRows);
                _scheduled.Add(new ScheduledWork(r, take, firstRow, allRows, Beam: -1));
                if (decoding)
                    generationTokens++;
                else
                    contextTokens += take;
            }
        _lastBatch = _scheduled.Count;
        _lastContextTokens = contextTokens;
        _lastGenerationTokens = generationTokens;
    }

    /// <summary>Adds one token per live beam of <paramref name="r"/>, all or none, copying shared blocks that a beam writes into.</summary>
    private bool ScheduleBeams(RequestState r, BeamSearch search)
    {
        int width = search.Live.Count;
        if (_batch.FreeTokens < width || _batch.MaxSequences - _batch.SequenceCount < width || _batch.LogitRows.Length - _batch.LogitRowCount < width)
            return false;
        // Worst case each beam needs a new block to grow into and a copy of a shared one.
        while (_kv.FreeBlocks < 2 * width)
        {
            var victim = NewestOutsideStep(except: r);
            if (victim is null)
                return false;
            Preempt(victim);
        }
        int firstRow = _batch.LogitRowCount;
        for (int b = 0; b < width; b++)
        {
            var beam = search.Live[b];
            int position = r.PromptLength + beam.Tokens.Length - 1;
            _kv.TryReserve(beam.Blocks, position + 1);
            _kv.TryMakeWritable(beam.Blocks, position / _kv.BlockSize, out int copyFrom);
            if (copyFrom >= 0)
                _blockCopies.Add((copyFrom, beam.Blocks.Table[position / _kv.BlockSize]));
            _batch.Add(beam.Tokens.AsSpan(beam.Tokens.Length - 1, 1), position, beam.Blocks.Table, _kv.BlockSize);
            _scheduled.Add(new ScheduledWork(r, 1, firstRow + b, AllRows: false, Beam: b));
        }
        return true;
    }

    /// <summary>The newest running request not in this step (other than <paramref name="except"/>): the one to preempt.</summary>
    private RequestState? NewestOutsideStep(RequestState? except = null)
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i] != except && !InStep(_running[i]))
                return _running[i];
        return null;
    }

    /// <summary>Blocks for <paramref name="tokens"/> tokens of <paramref name="r"/>, preempting newer requests not in this step if needed.</summary>
    private bool EnsureBlocks(RequestState r, int tokens)
    {
        while (!_kv.TryReserve(r.Blocks, tokens))
        {
            var victim = NewestOutsideStep();
            if (victim is null)
                return false;
            Preempt(victim);
            if (victim == r)
                return false;
        }
        return true;
    }

    private bool InStep(RequestState r)
    {
        foreach (var s in _scheduled)
            if (s.Request == r)
                return true;
        return false;
    }

    private void Preempt(RequestState r)
    {
        // Recompute later from scratch: its generated tokens stay and are prefilled again with the prompt.
        // A beam search restarts from its prompt (it streams nothing, so nothing was sent).
        _kv.Release(r.Blocks);
        r.Computed = 0;
        if (r.Beams is { } search)
        {
            search.Abandon();
            r.Count = r.PromptLength;
        }
        _running.Remove(r);
        Interlocked.Decrement(ref _active);
        Interlocked.Increment(ref _queued);
        Interlocked.Increment(ref _preemptions);
        _waiting.AddFirst(r);
    }

    private Readout ChooseReadout()
    {
        bool greedy = true;
        foreach (var work in _scheduled)
        {
            var r = work.Request;
            if (work.AllRows || work.Beam >= 0 || r.Beams is not null || r.GenerationLogits is not null)
                return Readout.Logits;
            greedy &= r.PlainGreedy;
        }
        return greedy ? Readout.ArgMax : Readout.Sample;
    }

    /// <summary>Describes each logit row of the step, in row order, for the backend's <see cref="Decoder.SampleLogits"/>.</summary>
    private void PrepareSampling()
    {
        _sampling.Clear();
        foreach (var (r, take, firstRow, _, _) in _scheduled)
        {
            // Only works that reach their request's last known token have a logit row.
            if (r.Computed + take < r.Count)
                continue;
            if (firstRow != _sampling.Count)
                throw new InvalidOperationException($"logit row {firstRow} was scheduled out of order (expected {_sampling.Count})");
            r.Sampler.Prepare(_sampling, r.Tokens.AsSpan(r.PromptLength, r.Generated), r.EndIds, r.Request.BadWords, r.LogProbs is not null);
        }
    }

    private void Complete(List<ScheduledWork> works, Readout readout)
    {
        int vocab = _decoder.Config.VocabSize;
        foreach (var (r, take, firstRow, allRows, beam) in works)
        {
            // Ended (an end id, a stop word, cancelled) while this step, queued ahead, was in flight: its token is dropped.
            if (r.Finish != FinishReason.None)
                continue;
            if (beam >= 0)
            {
                // The beams' rows are consecutive; advance the search once, at the last of them.
                var search = r.Beams!;
                if (beam == search.Live.Count - 1)
                {
                    search.Advance(HostLogits.AsSpan((firstRow - beam) * vocab, search.Live.Count * vocab), _scratch);
                    if (search.Done)
                        Finish(r);
                }
                continue;
            }
            int start = r.Computed;
            r.Computed += take;
            if (allRows && r.ContextLogits is { } context)
            {
                int promptRows = Math.Min(take, r.PromptLength - start);
                HostLogits.AsSpan(firstRow * vocab, promptRows * vocab).CopyTo(context.AsSpan(start * vocab));
            }
            _kv.RegisterComputed(r.Blocks, r.Tokens.AsSpan(0, r.Count), Math.Min(r.Computed, r.PromptLength));
            if (r.Computed < r.Count)
                continue;
            int row = allRows ? firstRow + take - 1 : firstRow;
            if (r.Beams is { } beams)
            {
                beams.Start(HostLogits.AsSpan(row * vocab, vocab), r.Blocks, _scratch);
                _kv.Release(r.Blocks);
                if (beams.Done)
                    Finish(r);
            }
            else if (readout == Readout.ArgMax)
                Accept(r, _ids[row], logProb: 0f);
            else if (readout == Readout.Sample)
                Accept(r, _ids[row], _logProbs[row]);
            else
                SampleOnHost(r, HostLogits.AsSpan(row * vocab, vocab));
        }
    }

    private void SampleOnHost(RequestState r, Span<float> logits)
    {
        if (r.GenerationLogits is { } generationLogits)
            logits.CopyTo(generationLogits.AsSpan(r.Generated * logits.Length));
        var generated = r.Tokens.AsSpan(r.PromptLength, r.Generated);
        int token = r.Sampler.Next(logits, generated, r.EndIds, r.Request.BadWords, _scratch, _order, r.LogProbs is not null, out float logProb);
        Accept(r, token, logProb);
    }

    /// <summary>Appends the chosen token (or ends the request on an end id or stop word) and streams it.</summary>
    private void Accept(RequestState r, int token, float logProb)
    {
        if (Array.IndexOf(r.EndIds, token) >= 0)
            r.Finish = FinishReason.EndId;
        else
        {
            if (r.LogProbs is { } logProbs)
                logProbs[r.Generated] = logProb;
            r.CumLogProb += logProb;
            r.Tokens[r.Count++] = token;
            r.Sampler.Accept(token);
            if (EndsWithStopWord(r, out int stopLength))
            {
                r.Count -= stopLength;
                r.Finish = FinishReason.StopWords;
            }
            else if (r.Generated >= r.Request.MaxTokens || r.Count >= _maxSeqLen)
                r.Finish = FinishReason.Length;
        }
        if (r.Finish != FinishReason.None)
            Finish(r);
        else if (r.Request.Streaming)
            EmitLater(r, final: false);
    }

    private static bool EndsWithStopWord(RequestState r, out int length)
    {
        var generated = r.Tokens.AsSpan(r.PromptLength, r.Generated);
        foreach (var w in r.Request.StopWords)
            if (generated.EndsWith(w))
            {
                length = w.Length;
                return true;
            }
        length = 0;
        return false;
    }

    /// <summary>Generated tokens that might be the start of a stop word, held back from streaming until resolved.</summary>
    private static int HeldBack(RequestState r)
    {
        if (r.StopWordLength == 0)
            return 0;
        var generated = r.Tokens.AsSpan(r.PromptLength, r.Generated);
        int held = 0;
        foreach (var w in r.Request.StopWords)
            for (int k = Math.Min(w.Length - 1, generated.Length); k > held; k--)
                if (generated[^k..].SequenceEqual(w.AsSpan(0, k)))
                {
                    held = k;
                    break;
                }
        return held;
    }

    private void Finish(RequestState r)
    {
        _kv.Release(r.Blocks);
        if (r.Beams is { Done: false } search)
            search.Finish(r.Finish == FinishReason.None ? FinishReason.Cancelled : r.Finish);
        _running.Remove(r);
        Interlocked.Decrement(ref _active);
        Interlocked.Increment(ref _completed);
        EmitLater(r, final: true);
    }

    private void EmitLater(RequestState r, bool final) => _pendingOutputs.Add((r, final));

    private void EmitPending()
    {
        foreach (var (r, final) in _pendingOutputs)
            Emit(r, final);
        _pendingOutputs.Clear();
    }

    private void Emit(RequestState r, bool final)
    {
        if (r.Beams is { } beams)
        {
            EmitBeams(r, beams);
            return;
        }
        var q = r.Request;
        int from = q.Streaming ? r.Emitted : 0;
        int to = final ? r.Generated : r.Generated - HeldBack(r);
        if (!final && to <= from)
            return;
        int[] ids;
        if (!q.Streaming && !q.ExcludeInputInOutput)
            ids = r.Tokens.AsSpan(0, r.PromptLength + to).ToArray();
        else
            ids = r.Tokens.AsSpan(r.PromptLength + from, to - from).ToArray();
        r.Emitted = to;
        string[]? text = null;
        if (r.TextDecoder is { } decoder)
        {
            // The decoder sees each generated token once, in order: streamed deltas add up to the whole text, and a
            // non-streaming request, emitted once, gets all of it.
            var delta = new System.Text.StringBuilder();
            for (int i = r.DecodedTokens; i < to; i++)
                delta.Append(decoder.Push(r.Tokens[r.PromptLength + i]));
            r.DecodedTokens = to;
            if (final)
                delta.Append(decoder.Flush());
            text = [delta.ToString()];
        }
        var output = new GenerationOutput
        {
            RequestId = r.Id,
            TokenIds = [ids],
            Text = text,
            IsFinal = final,
            FinishReasons = [final ? r.Finish : FinishReason.None],
            LogProbs = r.LogProbs is { } lp ? [lp.AsSpan(from, to - from).ToArray()] : null,
            CumLogProbs = r.LogProbs is not null ? [r.CumLogProb] : null,
            ContextLogits = final ? r.ContextLogits : null,
            GenerationLogits = final && r.GenerationLogits is { } g ? g.AsSpan(0, r.Generated * _decoder.Config.VocabSize).ToArray() : null,
            PromptTokens = r.PromptLength,
            ReusedPromptTokens = r.ReusedTokens,
        };
        r.Outputs.Writer.TryWrite(output);
        if (final)
            r.Outputs.Writer.TryComplete();
    }

    private void EmitBeams(RequestState r, BeamSearch search)
    {
        var best = search.Best();
        var ids = new int[best.Count][];
        var text = r.TextDecoder is null ? null : new string[best.Count];
        for (int i = 0; i < best.Count; i++)
        {
            ids[i] = r.Request.ExcludeInputInOutput ? best[i].Tokens : [.. r.Tokens.AsSpan(0, r.PromptLength), .. best[i].Tokens];
            if (text is not null)
                text[i] = _tokenizer!.Decode(best[i].Tokens, skipSpecialTokens: true);
        }
        r.Outputs.Writer.TryWrite(new GenerationOutput
        {
            RequestId = r.Id,
            TokenIds = ids,
            Text = text,
            IsFinal = true,
            FinishReasons = r.Finish == FinishReason.Cancelled ? [.. best.Select(_ => FinishReason.Cancelled)] : [.. best.Select(h => h.Reason)],
            LogProbs = r.Request.ReturnLogProbs ? [.. best.Select(h => h.LogProbs)] : null,
            CumLogProbs = r.Request.ReturnLogProbs ? [.. best.Select(h => h.CumLogProb)] : null,
            ContextLogits = r.ContextLogits,
            PromptTokens = r.PromptLength,
            ReusedPromptTokens = r.ReusedTokens,
        });
        r.Outputs.Writer.TryComplete();
    }

    private void CancelAll()
    {
        foreach (var r in _running.ToArray())
        {
            r.Finish = FinishReason.Cancelled;
            Finish(r);
        }
        DrainIncoming();
        foreach (var r in _waiting)
        {
            r.Finish = FinishReason.Cancelled;
            EmitLater(r, final: true);
        }
        _waiting.Clear();
        EmitPending();
    }

    /// <summary>How a step's logits reach the host: as argmax ids, as ids chosen by the backend, or as whole rows.</summary>
    private enum Readout
    {
        ArgMax,
        Sample,
        Logits,
    }

    /// <summary>A request's share of one step: tokens from its computed count, where its logit rows start, and which beam (-1: none).</summary>
    private readonly record struct ScheduledWork(RequestState Request, int Take, int FirstRow, bool AllRows, int Beam);

    /// <summary>Stops the loop; requests still running or queued end with <see cref="FinishReason.Cancelled"/>.</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
            return;
        _incoming.Writer.TryComplete();
        _stop.Cancel();
        _loop.Join();
        _storage.Dispose();
        _stop.Dispose();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
