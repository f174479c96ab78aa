using Turbine.Core.Checkpoints;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Bench.Cuda;

/// <summary>Runs every operation on two backends (CPU reference, CUDA) and reports each output that differs.</summary>
internal sealed class TeeBackend(IComputeBackend reference, IComputeBackend test) : IComputeBackend
{
    private sealed class W(DeviceWeight a, DeviceWeight b) : DeviceWeight
    {
        public DeviceWeight A { get; } = a;
        public DeviceWeight B { get; } = b;
        public override Turbine.Core.Tensors.DType DType => A.DType;
        public override long[] Shape => A.Shape;
    }

    private sealed class Buf(DeviceBuffer a, DeviceBuffer b) : DeviceBuffer
    {
        public DeviceBuffer A { get; } = a;
        public DeviceBuffer B { get; } = b;
        public override long Length => A.Length;
        public override void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    private sealed class Kv(KvCacheStorage a, KvCacheStorage b) : KvCacheStorage
    {
        public KvCacheStorage A { get; } = a;
        public KvCacheStorage B { get; } = b;
        public override KvCacheShape Shape => A.Shape;
        public override void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    private int _tokens;
    private int _op;

    public string Name => "tee";
    public int Reports { get; private set; }

    public DeviceWeight Upload(in TensorSlice tensor) => new W(reference.Upload(tensor), test.Upload(tensor));
    public DeviceWeight UploadLinear(in TensorSlice tensor) => new W(reference.UploadLinear(tensor), test.UploadLinear(tensor));
    public DeviceBuffer Allocate(long floats) => new Buf(reference.Allocate(floats), test.Allocate(floats));
    public KvCacheStorage AllocateKvCache(KvCacheShape shape) => new Kv(reference.AllocateKvCache(shape), test.AllocateKvCache(shape));

    public void BeginStep(ForwardBatch batch)
    {
        _tokens = batch.TokenCount;
        reference.BeginStep(batch);
        test.BeginStep(batch);
    }

    public void Embed(DeviceWeight table, DeviceBuffer y)
    {
        reference.Embed(A(table), A(y));
        test.Embed(B(table), B(y));
        Compare("embed", y, (long)_tokens * table.Shape[1]);
    }

    public void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        reference.RmsNorm(A(x), rows, A(weight), eps, A(y));
        test.RmsNorm(B(x), rows, B(weight), eps, B(y));
        Compare("rmsnorm", y, rows * weight.Shape[0]);
    }

    public void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        reference.AddRmsNorm(A(residual), A(delta), rows, A(weight), eps, A(y));
        test.AddRmsNorm(B(residual), B(delta), rows, B(weight), eps, B(y));
        Compare("add_rmsnorm residual", residual, rows * weight.Shape[0]);
        Compare("add_rmsnorm y", y, rows * weight.Shape[0]);
    }

    public void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y)
    {
        reference.Linear(A(x), rows, A(weight), bias is null ? null : A(bias), A(y));
        test.Linear(B(x), rows, B(weight), bias is null ? null : B(bias), B(y));
        Compare($"linear {weight.Shape[0]}x{weight.Shape[1]} {weight.DType}", y, rows * weight.Shape[0]);
    }

    public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs)
    {
        for (int i = 0; i < weights.Length; i++)
            Linear(x, rows, weights[i], biases[i], outputs[i]);
    }

    public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim)
    {
        reference.Rotary(A(q), heads, A(k), kvHeads, headDim);
        test.Rotary(B(q), heads, B(k), kvHeads, headDim);
        Compare("rope q", q, (long)_tokens * heads * headDim);
        Compare("rope k", k, (long)_tokens * kvHeads * headDim);
    }

    public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow)
    {
        reference.Attention(((Kv)cache).A, layer, A(q), A(k), A(v), A(output), heads, kvHeads, headDim, scale, slidingWindow);
        test.Attention(((Kv)cache).B, layer, B(q), B(k), B(v), B(output), heads, kvHeads, headDim, scale, slidingWindow);
        Compare($"attention layer {layer}", output, (long)_tokens * heads * headDim);
    }

    public void CopyKvBlock(KvCacheStorage cache, int source, int destination)
    {
        reference.CopyKvBlock(((Kv)cache).A, source, destination);
        test.CopyKvBlock(((Kv)cache).B, source, destination);
    }

    public void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count)
    {
        reference.SiluMul(A(gate), A(up), A(y), count);
        test.SiluMul(B(gate), B(up), B(y), count);
        Compare("silu_mul", y, count);
    }

    public void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y)
    {
        reference.GatherRows(A(x), rows, width, A(y));
        test.GatherRows(B(x), rows, width, B(y));
        Compare("gather_rows", y, (long)rows.Length * width);
    }

    public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids)
    {
        var expected = new int[rows];
        reference.ArgMax(A(logits), rows, width, expected);
        test.ArgMax(B(logits), rows, width, ids);
        _op++;
        for (int r = 0; r < rows; r++)
            if (ids[r] != expected[r])
            {
                Console.WriteLine($"op {_op} argmax: row {r} is {ids[r]}, expected {expected[r]}");
                break;
            }
    }

    public void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs)
    {
        var expected = new int[rows.Count];
        var expectedLogProbs = new float[rows.Count];
        reference.Sample(A(logits), width, rows, expected, expectedLogProbs);
        test.Sample(B(logits), width, rows, ids, logProbs);
        _op++;
        for (int r = 0; r < rows.Count; r++)
            if (ids[r] != expected[r] || Math.Abs(logProbs[r] - expectedLogProbs[r]) > 1e-4)
            {
                // The logits feeding both were compared already; a pick may still differ where u lands within rounding of a boundary.
                Console.WriteLine($"op {_op} sample: row {r} is {ids[r]} (log prob {logProbs[r]}), expected {expected[r]} ({expectedLogProbs[r]})");
                break;
            }
    }

    public void Download(DeviceBuffer source, Span<float> destination)
    {
        var expected = new float[destination.Length];
        reference.Download(A(source), expected);
        test.Download(B(source), destination);
        Report("download", destination, expected);
    }

    public void Dispose()
    {
    }

    private void Compare(string what, DeviceBuffer buffer, long count)
    {
        var expected = new float[count];
        var actual = new float[count];
        reference.Download(A(buffer), expected);
        test.Download(B(buffer), actual);
        Report(what, actual, expected);
    }

    private void Report(string what, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        _op++;
        double diff = 0, norm = 0;
        int first = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            if (first < 0 && Math.Abs(d) > 1e-4 * (Math.Abs(expected[i]) + 1e-3))
                first = i;
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        double rel = Math.Sqrt(diff / Math.Max(norm, 1e-30));
        if ((rel > 1e-5 || double.IsNaN(rel)) && Reports++ < 12)
            Console.WriteLine($"   op {_op} {what}: rel L2 {rel:E2}, first differing element {first} of {expected.Length} ({(first >= 0 ? $"{actual[first]} vs {expected[first]}" : "")})");
    }

    private static DeviceWeight A(DeviceWeight w) => ((W)w).A;
    private static DeviceWeight B(DeviceWeight w) => ((W)w).B;
    private static DeviceBuffer A(DeviceBuffer b) => ((Buf)b).A;
    private static DeviceBuffer B(DeviceBuffer b) => ((Buf)b).B;
}
