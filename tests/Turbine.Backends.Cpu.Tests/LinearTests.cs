using Turbine.Backends.Cpu.Kernels;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Tests;

public sealed unsafe class LinearTests : IDisposable
{
    private readonly WorkerPool pool = new(3);

    public void Dispose() => pool.Dispose();

    public static TheoryData<DType, int, int, int, bool> Shapes()
    {
        var data = new TheoryData<DType, int, int, int, bool>();
        foreach (var t in TestData.WeightTypes)
        {
            foreach (int m in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 67 })
            {
                data.Add(t, m, 1, 1, false);
                data.Add(t, m, 7, 5, true);
                data.Add(t, m, 33, 1, true);
                data.Add(t, m, 100, 9, false);
                data.Add(t, m, 257, 67, true);
                data.Add(t, m, 781, 130, false);
            }
            data.Add(t, 1, 4096, 300, true);
            data.Add(t, 5, 4133, 7, true); // k longer than one prefill slice
            data.Add(t, 1, 16, 1031, false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64Reference(DType type, int m, int k, int n, bool withBias)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var x = TestData.Floats(rng, m * k);
        var (w, wv) = TestData.Encode(TestData.Floats(rng, n * k), type);
        var bias = withBias ? TestData.Floats(rng, n) : null;
        var y = new float[m * n];
        Array.Fill(y, float.NaN);

        fixed (float* xp = x)
        fixed (byte* wp = w)
        fixed (float* bp = bias)
        fixed (float* yp = y)
            Linear.Forward(xp, m, k, type, wp, n, bp, yp, pool);

        var expected = new double[m * n];
        var scale = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = bias?[j] ?? 0, a = Math.Abs(bias?[j] ?? 0);
                for (int e = 0; e < k; e++)
                {
                    s += x[i * k + e] * wv[j * k + e];
                    a += Math.Abs(x[i * k + e] * wv[j * k + e]);
                }
                expected[i * n + j] = s;
                scale[i * n + j] = a + 1e-30;
            }
        }
        // Float32 accumulation error grows with k but stays far below one missing or doubled term (~1/k).
        TestData.AssertClose(y, expected, scale, 1e-5, $"Linear {type} m={m} k={k} n={n} seed={seed}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void AnyThreadCountGivesSameResult(int threads)
    {
        var rng = new Random(TestData.NewSeed());
        int m = 5, k = 300, n = 77;
        var x = TestData.Floats(rng, m * k);
        var (w, _) = TestData.Encode(TestData.Floats(rng, n * k), DType.BF16);
        var y1 = new float[m * n];
        var y2 = new float[m * n];
        using var single = new WorkerPool(threads);
        fixed (float* xp = x)
        fixed (byte* wp = w)
        fixed (float* y1p = y1)
        fixed (float* y2p = y2)
        {
            Linear.Forward(xp, m, k, DType.BF16, wp, n, null, y1p, single);
            Linear.Forward(xp, m, k, DType.BF16, wp, n, null, y2p, pool);
        }
        // Each output is computed by one thread in a fixed order, so threading never changes results.
        Assert.Equal(y1, y2);
    }

    [Fact]
    public void RejectsUnsupportedDType()
    {
        var x = new float[4];
        var y = new float[1];
        var w = new byte[4];
        Assert.Throws<NotSupportedException>(() =>
        {
            fixed (float* xp = x)
            fixed (byte* wp = w)
            fixed (float* yp = y)
                Linear.Forward(xp, 1, 4, DType.I64, wp, 1, null, yp, pool);
        });
    }
}
