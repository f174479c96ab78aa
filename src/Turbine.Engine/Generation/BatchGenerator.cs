using System.Diagnostics;
using Turbine.Engine.Backends;
using Turbine.Engine.KvCache;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Generation;

/// <summary>Options of one <see cref="BatchGenerator.Generate"/> call.</summary>
/// <param name="MaxNewTokens">Tokens to generate per prompt at most.</param>
/// <param name="Sampling">How tokens are chosen.</param>
/// <param name="EndIds">Token ids that end a sequence (not included in the output); empty to never stop early.</param>
public sealed record GenerationOptions(int MaxNewTokens, SamplingOptions Sampling, int[] EndIds);

/// <summary>The generated ids of one prompt and how long its decoding took.</summary>
public sealed record GenerationResult(int[] OutputIds, TimeSpan Elapsed);

/// <summary>
/// Generates continuations for a fixed set of prompts together: packed prefill in chunks of the step limit, then
/// one decode step for all unfinished sequences at a time (static batching, as the seeds' run.py does).
/// </summary>
public sealed class BatchGenerator
{
    private readonly Decoder _decoder;
    private readonly KvCacheStorage _storage;
    private readonly KvCacheManager _blocks;

    /// <summary>Generates with <paramref name="decoder"/> over K/V in <paramref name="storage"/>, blocks handed out by <paramref name="blocks"/>.</summary>
    public BatchGenerator(Decoder decoder, KvCacheStorage storage, KvCacheManager blocks)
    {
        _decoder = decoder;
        _storage = storage;
        _blocks = blocks;
    }

    /// <summary>
    /// Continues every prompt. <paramref name="onToken"/> sees (prompt index, token id) as each token is chosen.
    /// Throws <see cref="ArgumentException"/> for an empty prompt or one that cannot fit the KV cache.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options, Action<int, int>? onToken = null)
    {
        int vocab = _decoder.Config.VocabSize;
        int n = prompts.Count;
        var limits = _decoder.Limits;
        if (n > limits.MaxSequencesPerStep)
            throw new ArgumentException($"{n} prompts exceed the batch limit of {limits.MaxSequencesPerStep}");
        var seqs = new SequenceBlocks[n];
        var outputs = new List<int>[n];
        var samplers = new TokenSampler[n];
        var done = new bool[n];
        var elapsed = new TimeSpan[n];
        var batch = _decoder.CreateBatch();
        var logits = new float[(long)limits.LogitRows * vocab];
        var clock = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < n; i++)
            {
                if (prompts[i].Length == 0)
                    throw new ArgumentException($"prompt {i} is empty");
                seqs[i] = new SequenceBlocks();
                outputs[i] = new List<int>(options.MaxNewTokens);
                samplers[i] = new TokenSampler(options.Sampling, vocab);
                if (!_blocks.TryReserve(seqs[i], prompts[i].Length + options.MaxNewTokens))
                    throw new ArgumentException(
                        $"prompt {i} ({prompts[i].Length} tokens + {options.MaxNewTokens} new) does not fit the KV cache ({_blocks.FreeBlocks} free blocks of {_blocks.BlockSize})");
            }
            Prefill(prompts, seqs, batch, logits, samplers, outputs, done, elapsed, options, clock, onToken);
            var last = new int[n];
            while (true)
            {
                batch.Clear();
                int active = 0;
                for (int i = 0; i < n; i++)
                {
                    if (done[i])
                        continue;
                    last[i] = outputs[i][^1];
                    batch.Add(last.AsSpan(i, 1), prompts[i].Length + outputs[i].Count - 1, seqs[i].Table, _blocks.BlockSize);
                    active++;
                }
                if (active == 0)
                    break;
                _decoder.Forward(batch, _storage, logits);
                int row = 0;
                for (int i = 0; i < n; i++)
                    if (!done[i])
                        Accept(i, logits.AsSpan(row++ * vocab, vocab), samplers, outputs, done, elapsed, options, clock, onToken);
            }
        }
        finally
        {
            foreach (var s in seqs)
                if (s is not null)
                    _blocks.Release(s);
        }
        var results = new GenerationResult[n];
        for (int i = 0; i < n; i++)
            results[i] = new GenerationResult([.. outputs[i]], elapsed[i]);
        return results;
    }

    private void Prefill(IReadOnlyList<int[]> prompts, SequenceBlocks[] seqs, ForwardBatch batch, float[] logits, TokenSampler[] samplers,
        List<int>[] outputs, bool[] done, TimeSpan[] elapsed, GenerationOptions options, Stopwatch clock, Action<int, int>? onToken)
    {
        int vocab = _decoder.Config.VocabSize;
        var prefilled = new int[prompts.Count];
        var rowOwner = new int[batch.MaxSequences];
        int next = 0;
        while (next < prompts.Count)
        {
            batch.Clear();
            int rows = 0;
            // Pack prompt chunks until the step is full; a prompt's last chunk asks for logits.
            for (int i = next; i < prompts.Count && batch.FreeTokens > 0 && batch.SequenceCount < batch.MaxSequences; i++)
            {
                int take = Math.Min(batch.FreeTokens, prompts[i].Length - prefilled[i]);
                bool finishes = prefilled[i] + take == prompts[i].Length;
                batch.Add(prompts[i].AsSpan(prefilled[i], take), prefilled[i], seqs[i].Table, _blocks.BlockSize, wantLogits: finishes);
                prefilled[i] += take;
                if (finishes)
                    rowOwner[rows++] = i;
            }
            _decoder.Forward(batch, _storage, logits);
            for (int r = 0; r < rows; r++)
                Accept(rowOwner[r], logits.AsSpan(r * vocab, vocab), samplers, outputs, done, elapsed, options, clock, onToken);
            while (next < prompts.Count && prefilled[next] == prompts[next].Length)
                next++;
        }
    }

    private static void Accept(int i, ReadOnlySpan<float> logits, TokenSampler[] samplers, List<int>[] outputs, bool[] done,
        TimeSpan[] elapsed, GenerationOptions options, Stopwatch clock, Action<int, int>? onToken)
    {
        int token = samplers[i].Sample(logits);
        if (Array.IndexOf(options.EndIds, token) >= 0)
            done[i] = true;
        else
        {
            outputs[i].Add(token);
            onToken?.Invoke(i, token);
            done[i] = outputs[i].Count >= options.MaxNewTokens;
        }
        if (done[i])
            elapsed[i] = clock.Elapsed;
    }
}
