using Turbine.Core.Checkpoints;
using Turbine.Core.Models;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Models;

/// <summary>
/// The generic decoder-only transformer (Llama, Mistral, Qwen2): pre-norm attention with GQA, optional QKV bias,
/// rotary positions and sliding windows, and a SwiGLU MLP. Its forward pass takes a packed batch of several
/// sequences and reads and writes K/V in a paged cache, so one call serves prefill, chunked prefill and decode.
/// </summary>
public sealed class Decoder : IDisposable
{
    private readonly IComputeBackend _backend;
    private readonly Checkpoint _checkpoint;
    private readonly DecoderWeights _weights;
    private readonly RotaryEmbedding _rotary;
    private readonly DeviceBuffer _hidden, _normed, _q, _k, _v, _attention, _delta, _gate, _up, _gathered, _logits;
    private readonly float _eps;
    private readonly int[] _windows;
    private readonly float _scale;

    private Decoder(string directory, HfModelConfig config, ModelFamily family, Checkpoint checkpoint, DecoderWeights weights,
        IComputeBackend backend, DecoderLimits limits)
    {
        Directory = directory;
        Config = config;
        Family = family;
        Limits = limits;
        _backend = backend;
        _checkpoint = checkpoint;
        _weights = weights;
        _rotary = new RotaryEmbedding(config.Rope, config.HeadDim, config.MaxPositionEmbeddings);
        _eps = (float)config.RmsNormEps;
        _windows = new int[config.NumLayers];
        for (int i = 0; i < _windows.Length; i++)
        {
            int model = config.SlidingWindows[i], cap = limits.MaxAttentionWindow;
            _windows[i] = model == 0 ? cap : cap == 0 ? model : Math.Min(model, cap);
        }
        _scale = 1f / MathF.Sqrt(config.HeadDim);
        long t = limits.MaxTokensPerStep;
        long qDim = (long)config.NumHeads * config.HeadDim, kvDim = (long)config.NumKvHeads * config.HeadDim;
        _hidden = backend.Allocate(t * config.HiddenSize);
        _normed = backend.Allocate(t * config.HiddenSize);
        _q = backend.Allocate(t * qDim);
        _k = backend.Allocate(t * kvDim);
        _v = backend.Allocate(t * kvDim);
        _attention = backend.Allocate(t * qDim);
        _delta = backend.Allocate(t * config.HiddenSize);
        _gate = backend.Allocate(t * config.IntermediateSize);
        _up = backend.Allocate(t * config.IntermediateSize);
        _gathered = backend.Allocate((long)limits.LogitRows * config.HiddenSize);
        _logits = backend.Allocate((long)limits.LogitRows * config.VocabSize);
    }

    /// <summary>The model directory.</summary>
    public string Directory { get; }
    /// <summary>The model's config.json.</summary>
    public HfModelConfig Config { get; }
    /// <summary>The family whose weight names were used.</summary>
    public ModelFamily Family { get; }
    /// <summary>Step limits the activation buffers were sized for.</summary>
    public DecoderLimits Limits { get; }
    /// <summary>The backend computing the forward pass.</summary>
    public IComputeBackend Backend => _backend;
    /// <summary>Bytes of weights read per decode step (all of them, once).</summary>
    public long WeightBytes => _checkpoint.TotalBytes;

    /// <summary>Shape of a KV cache of <paramref name="blocks"/> blocks for this model.</summary>
    public KvCacheShape KvShape(int blocks, int blockSize) =>
        new(Config.NumLayers, blocks, blockSize, Config.NumKvHeads, Config.HeadDim);

    /// <summary>A batch buffer sized for this decoder's limits.</summary>
    public ForwardBatch CreateBatch() =>
        new(Limits.MaxTokensPerStep, Limits.MaxSequencesPerStep, Limits.LogitRows, _rotary.HalfDim, Family.RotaryStyle);

    /// <summary>Opens the HF checkpoint in <paramref name="directory"/> and loads it onto <paramref name="backend"/>.</summary>
    public static Decoder Load(string directory, IComputeBackend backend, DecoderLimits limits, IProgress<(int Done, int Total)>? progress = null)
    {
        var config = HfModelConfig.Load(directory);
        var family = ModelFamily.For(config);
        if (config.HiddenAct is not ("silu" or "swish"))
            throw new CheckpointException(config.Path, null, $"hidden_act '{config.HiddenAct}' is not supported (silu is)");
        var checkpoint = Checkpoint.Open(directory);
        try
        {
            var weights = DecoderWeights.Load(checkpoint, config, family, backend, progress);
            return new Decoder(directory, config, family, checkpoint, weights, backend, limits);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The token (and log prob) of each of the last step's first <paramref name="rows"/>.Count logit rows, chosen where the
    /// logits are by <see cref="IComputeBackend.Sample"/>; the rows' logits are used up.
    /// </summary>
    public void SampleLogits(SamplingBatch rows, Span<int> ids, Span<float> logProbs)
    {
        if (rows.Count > 0)
            _backend.Sample(_logits, Config.VocabSize, rows, ids[..rows.Count], logProbs[..rows.Count]);
    }

    /// <summary>
    /// Runs one step over <paramref name="batch"/> with K/V in <paramref name="cache"/>; writes the logits of the batch's
    /// logit rows, in order, to <paramref name="logits"/> (LogitRowCount × vocab).
    /// </summary>
    public void Forward(ForwardBatch batch, KvCacheStorage cache, Span<float> logits)
    {
        Forward(batch, cache);
        CopyLogits(batch.LogitRowCount, logits);
    }

    /// <summary>Copies the logits of the last step's first <paramref name="rows"/> logit rows to the host (rows × vocab).</summary>
    public void CopyLogits(int rows, Span<float> logits)
    {
        long count = (long)rows * Config.VocabSize;
        if (logits.Length < count)
            throw new ArgumentException("logits span is smaller than rows × vocab", nameof(logits));
        if (rows > 0)
            _backend.Download(_logits, logits[..(int)count]);
    }

    /// <summary>The argmax token of each of the last step's first <paramref name="rows"/> logit rows, computed where the logits are.</summary>
    public void ArgMaxLogits(int rows, Span<int> ids)
    {
        if (rows > 0)
            _backend.ArgMax(_logits, rows, Config.VocabSize, ids[..rows]);
    }

    /// <summary>
    /// Queues the argmax of the last step's first <paramref name="rows"/> logit rows on the backend
    /// (<see cref="IComputeBackend.QueueArgMax"/>): the next step may feed on those ids before <see cref="ReadQueuedArgMax"/>.
    /// </summary>
    public void QueueArgMax(int rows) => _backend.QueueArgMax(_logits, rows, Config.VocabSize);

    /// <summary>The ids of the oldest queued argmax, written to the start of <paramref name="ids"/>.</summary>
    public void ReadQueuedArgMax(Span<int> ids) => _backend.ReadQueuedArgMax(ids);

    /// <summary>
    /// Runs one step over <paramref name="batch"/> with K/V in <paramref name="cache"/>, leaving the logits of its logit
    /// rows on the backend for <see cref="CopyLogits"/>, <see cref="ArgMaxLogits"/> or <see cref="SampleLogits"/>.
    /// </summary>
    public void Forward(ForwardBatch batch, KvCacheStorage cache)
    {
        int tokens = batch.TokenCount;
        if (tokens == 0)
            return;
        FillRotary(batch);
        var b = _backend;
        var c = Config;
        b.BeginStep(batch);
        b.Embed(_weights.Embedding, _hidden);
        for (int i = 0; i < _weights.Layers.Length; i++)
        {
            var w = _weights.Layers[i];
            if (i == 0)
                b.RmsNorm(_hidden, tokens, w.InputNorm, _eps, _normed);
            else
                b.AddRmsNorm(_hidden, _delta, tokens, w.InputNorm, _eps, _normed);
            b.LinearGroup(_normed, tokens, [w.Query, w.Key, w.Value], [w.QueryBias, w.KeyBias, w.ValueBias], [_q, _k, _v]);
            b.Rotary(_q, c.NumHeads, _k, c.NumKvHeads, c.HeadDim);
            b.Attention(cache, i, _q, _k, _v, _attention, c.NumHeads, c.NumKvHeads, c.HeadDim, _scale, _windows[i]);
            b.Linear(_attention, tokens, w.Output, w.OutputBias, _delta);
            b.AddRmsNorm(_hidden, _delta, tokens, w.PostAttentionNorm, _eps, _normed);
            b.LinearGroup(_normed, tokens, [w.Gate, w.Up], [w.GateBias, w.UpBias], [_gate, _up]);
            b.SiluMul(_gate, _up, _gate, (long)tokens * c.IntermediateSize);
            b.Linear(_gate, tokens, w.Down, w.DownBias, _delta);
        }
        int rows = batch.LogitRowCount;
        if (rows == 0)
            return;
        // Only the rows that want logits go through the final norm and the (vocabulary-wide) LM head.
        b.AddRmsNorm(_hidden, _delta, tokens, _weights.FinalNorm, _eps, _normed);
        b.GatherRows(_normed, batch.LogitRows.AsSpan(0, rows), c.HiddenSize, _gathered);
        b.Linear(_gathered, rows, _weights.LmHead, null, _logits);
    }

    private void FillRotary(ForwardBatch batch)
    {
        int half = _rotary.HalfDim;
        for (int s = 0; s < batch.SequenceCount; s++)
        {
            var seq = batch.Sequences[s];
            _rotary.Fill(batch.Positions.AsSpan(seq.QueryStart, seq.QueryLength), seq.ContextLength,
                batch.Cos.AsSpan(seq.QueryStart * half, seq.QueryLength * half),
                batch.Sin.AsSpan(seq.QueryStart * half, seq.QueryLength * half));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var buffer in new[] { _hidden, _normed, _q, _k, _v, _attention, _delta, _gate, _up, _gathered, _logits })
            buffer.Dispose();
        _checkpoint.Dispose();
    }
}

/// <summary>How much one forward step may hold; activation buffers are sized from it once.</summary>
/// <param name="MaxTokensPerStep">Tokens of all sequences together in one step (max_num_tokens).</param>
/// <param name="MaxSequencesPerStep">Sequences in one step (max_batch_size).</param>
/// <param name="MaxLogitRows">Rows of logits one step may return (more than one per sequence only for context logits); 0 means one per sequence.</param>
/// <param name="MaxAttentionWindow">Caps every layer's attention window (max_attention_window_size); 0 keeps the model's.</param>
public readonly record struct DecoderLimits(int MaxTokensPerStep = 2048, int MaxSequencesPerStep = 64, int MaxLogitRows = 0, int MaxAttentionWindow = 0)
{
    /// <summary>Rows of logits one step may return.</summary>
    public int LogitRows => MaxLogitRows > 0 ? MaxLogitRows : MaxSequencesPerStep;
}
