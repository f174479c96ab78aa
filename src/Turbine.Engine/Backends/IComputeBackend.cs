using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Backends;

/// <summary>
/// The operations the generic decoder needs, implemented once per device. Buffers and weights are opaque
/// handles the backend owns; the host describes each step with a <see cref="ForwardBatch"/> and only logits
/// (or, later, sampled ids) come back. Every activation is float32, rows × columns, row-major.
/// </summary>
public interface IComputeBackend : IDisposable
{
    /// <summary>A short name for logs ("cpu", "cuda:0").</summary>
    string Name { get; }

    /// <summary>Makes a checkpoint tensor usable by kernels, in its stored dtype (no widening).</summary>
    DeviceWeight Upload(in TensorSlice tensor);

    /// <summary>
    /// <see cref="Upload"/> for a linear layer's weight matrix [out × in], which only <see cref="Linear"/> reads: a backend
    /// may keep another form of it beside (the CUDA backend an fp8 copy for its prompt-step GEMMs).
    /// </summary>
    DeviceWeight UploadLinear(in TensorSlice tensor) => Upload(tensor);

    /// <summary>A float32 buffer of <paramref name="floats"/> elements.</summary>
    DeviceBuffer Allocate(long floats);

    /// <summary>Paged key/value storage for every layer.</summary>
    KvCacheStorage AllocateKvCache(KvCacheShape shape);

    /// <summary>Bytes of one K or V value in the caches <see cref="AllocateKvCache"/> makes (float32 unless the backend keeps narrower entries).</summary>
    int KvElementBytes => sizeof(float);

    /// <summary>Makes <paramref name="batch"/> the step the following calls work on (uploads its metadata).</summary>
    void BeginStep(ForwardBatch batch);

    /// <summary>
    /// Starts the step's queued work without waiting for it, so the host can do other work while the device runs; the
    /// next read (<see cref="ArgMax"/>, <see cref="Sample"/>, <see cref="Download"/>) waits as usual. A backend that
    /// computes as it is called has nothing to start.
    /// </summary>
    void LaunchStep()
    {
    }

    /// <summary>
    /// y[t] = table[token t] for every token of the step: <see cref="ForwardBatch.Tokens"/>, or for a token with a
    /// <see cref="ForwardBatch.FeedRows"/> entry the id the last <see cref="QueueArgMax"/> chose for that row.
    /// </summary>
    void Embed(DeviceWeight table, DeviceBuffer y);

    /// <summary>y = RMSNorm(x) · w over <paramref name="rows"/> rows of w's width.</summary>
    void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y);

    /// <summary>
    /// residual += delta, then y = RMSNorm(residual) · w. delta is consumed: afterwards it holds unspecified values (a
    /// backend may add the linear that produced it straight from that linear's result, never writing delta).
    /// </summary>
    void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y);

    /// <summary>
    /// y[rows × n] = x[rows × k] · Wᵀ (+ bias), W stored [n × k]. x is consumed: afterwards it holds unspecified values (a
    /// backend may feed the linear from another form of x that the operation producing x wrote, never writing x itself).
    /// </summary>
    void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y);

    /// <summary>
    /// <c>y_i = x · W_iᵀ (+ bias_i)</c> for weights that share the input (a layer's q/k/v, or gate/up), in one call so the
    /// backend can run them as one pass. x is consumed, as by <see cref="Linear"/>, once all of them have read it.
    /// </summary>
    void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs);

    /// <summary>
    /// Rotates q [tokens × heads × headDim] and k [tokens × kvHeads × headDim] in place with the step's cos/sin rows:
    /// the step's <see cref="ForwardBatch.RotaryHalfDim"/> pairs of each head, paired as its
    /// <see cref="ForwardBatch.RotaryStyle"/> says; the dimensions past them are left unchanged.
    /// </summary>
    void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim);

    /// <summary>
    /// Writes the step's k and v into <paramref name="cache"/> at the step's slots for <paramref name="layer"/>, then
    /// computes causal attention of q over each sequence's cached context into <paramref name="output"/>.
    /// </summary>
    void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow);

    /// <summary>Copies block <paramref name="source"/> of every layer's K and V to block <paramref name="destination"/> (copy-on-write of shared blocks).</summary>
    void CopyKvBlock(KvCacheStorage cache, int source, int destination);

    /// <summary>
    /// y = silu(gate) · up over <paramref name="count"/> elements. gate and up are consumed: afterwards, unless one of them
    /// is y, they hold unspecified values (a backend may compute y straight from their linears' result, never writing them).
    /// </summary>
    void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count);

    /// <summary>y[i] = x[rows[i]], rows of <paramref name="width"/> floats.</summary>
    void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y);

    /// <summary>
    /// Whether a step may take tokens from ids the backend chose but the host has not read yet
    /// (<see cref="QueueArgMax"/>, <see cref="ForwardBatch.FeedRows"/>): then the host queues step n + 1 before it
    /// reads step n's tokens, and prepares it while the device runs step n.
    /// </summary>
    bool FeedsTokens => false;

    /// <summary>
    /// Queues the argmax of the first <paramref name="rows"/> rows of <paramref name="logits"/> (the rules of
    /// <see cref="ArgMax"/>); <see cref="ReadQueuedArgMax"/> returns the ids, oldest first. At most two are queued at once.
    /// </summary>
    void QueueArgMax(DeviceBuffer logits, int rows, int width) =>
        throw new NotSupportedException($"{Name} cannot queue an argmax (FeedsTokens is false)");

    /// <summary>Waits for the oldest queued argmax and writes its ids to the start of <paramref name="ids"/>.</summary>
    void ReadQueuedArgMax(Span<int> ids) => throw new NotSupportedException($"{Name} cannot queue an argmax (FeedsTokens is false)");

    /// <summary>
    /// For each of <paramref name="rows"/> rows of <paramref name="width"/> floats, the index of the first largest value
    /// (as torch.argmax picks it), so greedy decoding brings back token ids instead of whole logit rows.
    /// </summary>
    void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids);

    /// <summary>
    /// Chooses one token per logit row where the logits are, so only ids and log probs cross to the host. This is the
    /// definition every backend implements (<see cref="HostSampler"/> is the host one). For row r of
    /// <paramref name="rows"/>.Count rows of <paramref name="width"/> floats in <paramref name="logits"/>, with parameters
    /// p = <paramref name="rows"/>.Rows[r]:
    /// <list type="number">
    /// <item>Penalties, for each penalised token t of the row (distinct; ids outside [0, width) are skipped) with count c:
    /// x = x &gt; 0 ? x / p.RepetitionPenalty : x · p.RepetitionPenalty; then, if c &gt; 0,
    /// x −= p.PresencePenalty + p.FrequencyPenalty · c (float32, in that order, no fused multiply-add).</item>
    /// <item>Bans: each banned id in [0, width) gets −∞.</item>
    /// <item>Greedy rows (<see cref="SamplingRow.IsGreedy"/>): the first index of the largest logit, a NaN counting as
    /// larger than any number (as <see cref="ArgMax"/>); log prob = logit − logsumexp(row).</item>
    /// <item>Sampled rows: probs = softmax(logits / p.Temperature); candidates in (prob descending, index ascending)
    /// order; keep the first p.TopK when 0 &lt; TopK &lt; width; then, if p.TopP &lt; 1, keep the shortest prefix of those
    /// whose cumulative prob is ≥ p.TopP (all of them if none is); total = sum of the kept probs; r = p.Uniform · total;
    /// the token is the first kept candidate at which the running sum of probs is ≥ r (the last kept one if rounding
    /// never reaches r); log prob = log(prob / total).</item>
    /// </list>
    /// Backends may round differently (sums in another order), so a pick can differ only where r or a cut lies within
    /// rounding of a candidate boundary. A row whose logits are all −∞, or a sampled row with a NaN, gets an unspecified
    /// token in [0, width). <paramref name="logProbs"/>[r] is 0 unless p.WantLogProb. The logit rows are used as work
    /// space: their contents afterwards are unspecified.
    /// </summary>
    void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs);

    /// <summary>Copies the first <paramref name="destination"/>.Length floats of <paramref name="source"/> to the host.</summary>
    void Download(DeviceBuffer source, Span<float> destination);
}

/// <summary>A weight as a backend holds it.</summary>
public abstract class DeviceWeight
{
    /// <summary>Element type as stored.</summary>
    public abstract DType DType { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public abstract long[] Shape { get; }
}

/// <summary>A float32 activation buffer owned by a backend.</summary>
public abstract class DeviceBuffer : IDisposable
{
    /// <summary>Capacity in floats.</summary>
    public abstract long Length { get; }

    /// <inheritdoc />
    public abstract void Dispose();
}

/// <summary>Dimensions of a paged KV cache: per layer, blocks × tokens per block × kv heads × head width, for K and for V.</summary>
public readonly record struct KvCacheShape(int Layers, int Blocks, int BlockSize, int KvHeads, int HeadDim)
{
    /// <summary>Floats of one token slot in one layer, for K or for V.</summary>
    public int SlotWidth => KvHeads * HeadDim;

    /// <summary>Bytes of one block across all layers, K and V, at <paramref name="elementBytes"/> a value.</summary>
    public long BytesPerBlock(int elementBytes) => 2L * Layers * BlockSize * SlotWidth * elementBytes;
}

/// <summary>Paged K/V storage owned by a backend.</summary>
public abstract class KvCacheStorage : IDisposable
{
    /// <summary>The cache's dimensions.</summary>
    public abstract KvCacheShape Shape { get; }

    /// <inheritdoc />
    public abstract void Dispose();
}
