using System.Runtime.InteropServices;
using Turbine.Backends.Cpu.Kernels;
using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Backends.Cpu;

/// <summary>
/// The decoder's operations on the CPU: SIMD kernels over all cores. Weights are used in place inside the
/// checkpoint's memory map, in their stored dtype; activations and the KV cache live in aligned native memory.
/// </summary>
public sealed unsafe class CpuBackend : IComputeBackend
{
    private readonly WorkerPool _pool;
    private ForwardBatch? _batch;
    private AttentionSequence[] _sequences = [];
    private int* _blockTables;
    private int _blockTablesCapacity;
    // Work areas of Sample, one vocabulary row wide.
    private float[] _probs = [];
    private ulong[] _order = [];
    // Queued argmax ids (QueueArgMax), oldest at _queuedHead; _lastQueued is the newest, which fed tokens come from.
    private readonly int[][] _queued = [[], []];
    private readonly int[] _queuedRows = new int[2];
    private int _queuedHead, _queuedCount, _lastQueued = -1;
    private int[] _tokens = [];

    /// <summary>A backend on <paramref name="threads"/> threads (0: one per core).</summary>
    public CpuBackend(int threads = 0) => _pool = new WorkerPool(threads);

    /// <inheritdoc />
    public string Name => "cpu";

    /// <summary>Worker threads the kernels spread over.</summary>
    public int Threads => _pool.ThreadCount;

    /// <inheritdoc />
    public DeviceWeight Upload(in TensorSlice tensor) => new CpuWeight(tensor);

    /// <inheritdoc />
    public DeviceBuffer Allocate(long floats) => new CpuBuffer(floats);

    /// <inheritdoc />
    public KvCacheStorage AllocateKvCache(KvCacheShape shape) => new CpuKvCache(shape);

    /// <inheritdoc />
    public void BeginStep(ForwardBatch batch)
    {
        _batch = batch;
        int blocks = 0;
        for (int s = 0; s < batch.SequenceCount; s++)
            blocks += batch.Sequences[s].BlockCount;
        if (blocks > _blockTablesCapacity)
        {
            NativeMemory.Free(_blockTables);
            _blockTablesCapacity = Math.Max(blocks, 2 * _blockTablesCapacity);
            _blockTables = (int*)NativeMemory.Alloc((nuint)_blockTablesCapacity, sizeof(int));
        }
        if (_sequences.Length < batch.SequenceCount)
            _sequences = new AttentionSequence[batch.MaxSequences];
        int* table = _blockTables;
        for (int s = 0; s < batch.SequenceCount; s++)
        {
            var seq = batch.Sequences[s];
            int count = seq.BlockCount;
            seq.BlockTable.AsSpan(0, count).CopyTo(new Span<int>(table, count));
            _sequences[s] = new AttentionSequence(seq.QueryStart, seq.QueryLength, seq.ContextLength, table);
            table += count;
        }
    }

    /// <inheritdoc />
    public void Embed(DeviceWeight table, DeviceBuffer y)
    {
        var batch = Step;
        var t = (CpuWeight)table;
        int[] ids = batch.Tokens;
        if (batch.FeedsTokens)
        {
            if (_lastQueued < 0)
                throw new InvalidOperationException("the step feeds tokens from a queued argmax, but none was queued");
            if (_tokens.Length < batch.TokenCount)
                _tokens = new int[batch.MaxTokens];
            var chosen = _queued[_lastQueued];
            for (int i = 0; i < batch.TokenCount; i++)
                _tokens[i] = batch.FeedRows[i] >= 0 ? chosen[batch.FeedRows[i]] : batch.Tokens[i];
            ids = _tokens;
        }
        fixed (int* tokens = ids)
            Embedding.Gather(tokens, batch.TokenCount, t.DType, t.Data, (int)t.Shape[1], ((CpuBuffer)y).Data);
    }

    /// <inheritdoc />
    public void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        var w = (CpuWeight)weight;
        Kernels.RmsNorm.Forward(((CpuBuffer)x).Data, rows, (int)w.Shape[0], w.DType, w.Data, eps, ((CpuBuffer)y).Data);
    }

    /// <inheritdoc />
    public void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        var w = (CpuWeight)weight;
        Kernels.RmsNorm.AddAndNorm(((CpuBuffer)residual).Data, ((CpuBuffer)delta).Data, rows, (int)w.Shape[0], w.DType, w.Data, eps,
            ((CpuBuffer)y).Data);
    }

    /// <inheritdoc />
    public void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y)
    {
        var w = (CpuWeight)weight;
        float* b = bias is null ? null : ((CpuWeight)bias).Float32;
        Kernels.Linear.Forward(((CpuBuffer)x).Data, rows, (int)w.Shape[1], w.DType, w.Data, (int)w.Shape[0], b, ((CpuBuffer)y).Data, _pool);
    }

    /// <inheritdoc />
    public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs)
    {
        var first = (CpuWeight)weights[0];
        bool sameShape = weights.Length <= 3;
        foreach (var w in weights)
            sameShape &= w.DType == first.DType && w.Shape[1] == first.Shape[1];
        if (rows != 1 || !sameShape)
        {
            for (int i = 0; i < weights.Length; i++)
                Linear(x, rows, weights[i], biases[i], outputs[i]);
            return;
        }
        // Decode: one dispatch streams all the matrices, instead of one per matrix.
        Span<GemvTarget> targets = stackalloc GemvTarget[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            var w = (CpuWeight)weights[i];
            targets[i] = new GemvTarget(w.Data, (int)w.Shape[0], biases[i] is CpuWeight b ? b.Float32 : null, ((CpuBuffer)outputs[i]).Data);
        }
        Kernels.Linear.ForwardGroup(((CpuBuffer)x).Data, (int)first.Shape[1], first.DType, targets, _pool);
    }

    /// <inheritdoc />
    public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim)
    {
        var batch = Step;
        fixed (float* cos = batch.Cos, sin = batch.Sin)
            Kernels.Rotary.Apply(((CpuBuffer)q).Data, ((CpuBuffer)k).Data, batch.TokenCount, heads, kvHeads, headDim, cos, sin,
                batch.RotaryStyle, 2 * batch.RotaryHalfDim);
    }

    /// <inheritdoc />
    public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow)
    {
        var batch = Step;
        var kv = (CpuKvCache)cache;
        float* kc = kv.Keys(layer), vc = kv.Values(layer);
        fixed (int* slots = batch.Slots)
            PagedAttention.WriteKv(((CpuBuffer)k).Data, ((CpuBuffer)v).Data, batch.TokenCount, slots, kvHeads * headDim, kc, vc);
        PagedAttention.Forward(((CpuBuffer)q).Data, ((CpuBuffer)output).Data, heads, kvHeads, headDim, scale, kc, vc,
            kv.Shape.BlockSize, _sequences.AsSpan(0, batch.SequenceCount), slidingWindow, _pool);
    }

    /// <inheritdoc />
    public void CopyKvBlock(KvCacheStorage cache, int source, int destination)
    {
        var kv = (CpuKvCache)cache;
        long block = (long)kv.Shape.BlockSize * kv.Shape.SlotWidth;
        for (int layer = 0; layer < kv.Shape.Layers; layer++)
        {
            new ReadOnlySpan<float>(kv.Keys(layer) + source * block, (int)block).CopyTo(new Span<float>(kv.Keys(layer) + destination * block, (int)block));
            new ReadOnlySpan<float>(kv.Values(layer) + source * block, (int)block).CopyTo(new Span<float>(kv.Values(layer) + destination * block, (int)block));
        }
    }

    /// <inheritdoc />
    public void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count) =>
        Activations.SiluMul(((CpuBuffer)gate).Data, ((CpuBuffer)up).Data, ((CpuBuffer)y).Data, checked((int)count));

    /// <inheritdoc />
    public void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y)
    {
        float* src = ((CpuBuffer)x).Data, dst = ((CpuBuffer)y).Data;
        for (int i = 0; i < rows.Length; i++)
            new ReadOnlySpan<float>(src + (long)rows[i] * width, width).CopyTo(new Span<float>(dst + (long)i * width, width));
    }

    /// <inheritdoc />
    public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids)
    {
        float* data = ((CpuBuffer)logits).Data;
        for (int r = 0; r < rows; r++)
            ids[r] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(new ReadOnlySpan<float>(data + (long)r * width, width));
    }

    /// <inheritdoc />
    public bool FeedsTokens => true;

    /// <inheritdoc />
    public void QueueArgMax(DeviceBuffer logits, int rows, int width)
    {
        if (_queuedCount == _queued.Length)
            throw new InvalidOperationException("two argmax results are already queued; read one first");
        int slot = (_queuedHead + _queuedCount) % _queued.Length;
        if (_queued[slot].Length < rows)
            _queued[slot] = new int[Math.Max(rows, 2 * _queued[slot].Length)];
        ArgMax(logits, rows, width, _queued[slot]);
        _queuedRows[slot] = rows;
        _queuedCount++;
        _lastQueued = slot;
    }

    /// <inheritdoc />
    public void ReadQueuedArgMax(Span<int> ids)
    {
        if (_queuedCount == 0)
            throw new InvalidOperationException("no argmax is queued");
        _queued[_queuedHead].AsSpan(0, _queuedRows[_queuedHead]).CopyTo(ids);
        _queuedHead = (_queuedHead + 1) % _queued.Length;
        _queuedCount--;
    }

    /// <inheritdoc />
    public void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs)
    {
        int count = rows.Count;
        if ((long)count * width > logits.Length)
            throw new ArgumentException($"{count} rows of {width} floats do not fit in the buffer", nameof(rows));
        if (_probs.Length < width)
        {
            _probs = new float[width];
            _order = new ulong[width];
        }
        float* data = ((CpuBuffer)logits).Data;
        for (int r = 0; r < count; r++)
            ids[r] = HostSampler.SampleRow(new Span<float>(data + (long)r * width, width), rows, r, _probs, _order, out logProbs[r]);
    }

    /// <inheritdoc />
    public void Download(DeviceBuffer source, Span<float> destination) =>
        new ReadOnlySpan<float>(((CpuBuffer)source).Data, destination.Length).CopyTo(destination);

    private ForwardBatch Step => _batch ?? throw new InvalidOperationException("BeginStep must be called before the step's operations");

    /// <inheritdoc />
    public void Dispose()
    {
        _pool.Dispose();
        NativeMemory.Free(_blockTables);
        _blockTables = null;
    }
}
