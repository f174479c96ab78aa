using System.Runtime.Intrinsics;
using Turbine.Backends.Cpu.Kernels;
using Turbine.Core.Models;
using Turbine.Core.Tensors;
using Xunit.Abstractions;

namespace Turbine.Backends.Cpu.Tests;

/// <summary>
/// Checks that exercise every vector width's main loop and tails, meant to be run again with
/// DOTNET_EnableAVX512F=0 and DOTNET_EnableAVX2=0 so the 256-bit and scalar paths are covered too.
/// </summary>
public sealed unsafe class SimdPathTests(ITestOutputHelper output) : IDisposable
{
    private readonly WorkerPool pool = new(2);

    public void Dispose() => pool.Dispose();

    [Fact]
    public void ReportsActivePath()
    {
        output.WriteLine($"Vector512 {Vector512.IsHardwareAccelerated}, Vector256 {Vector256.IsHardwareAccelerated}, Vector128 {Vector128.IsHardwareAccelerated}");
        Assert.True(true);
    }

    [Fact]
    public void EveryHalfBitPatternWidensExactly()
    {
        // All 65536 binary16 values, subnormals, infinities and NaNs included, through the vector path.
        var table = new ushort[65536];
        for (int i = 0; i < table.Length; i++)
            table[i] = (ushort)i;
        var y = new float[65536];
        int token = 0;
        fixed (ushort* tp = table)
        fixed (float* yp = y)
            Embedding.Gather(&token, 1, DType.F16, (byte*)tp, 65536, yp);
        for (int i = 0; i < table.Length; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            if (float.IsNaN(expected))
                Assert.True(float.IsNaN(y[i]), $"0x{i:X4}");
            else
                Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(y[i]));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(9)]
    public void LinearF16WeightsOfEveryBitPattern(int m)
    {
        // 2048 rows of 32 weights hold all 65536 binary16 values, Inf and NaN included, in the
        // decode (m = 1) and prefill (m > 1) conversion paths; x is positive so signs decide Inf vs NaN.
        const int k = 32, n = 2048;
        var w = new ushort[n * k];
        for (int i = 0; i < w.Length; i++)
            w[i] = (ushort)i;
        var rng = new Random(TestData.NewSeed());
        var x = new float[m * k];
        for (int i = 0; i < x.Length; i++)
            x[i] = 0.5f + (float)rng.NextDouble();
        var y = new float[m * n];
        fixed (float* xp = x)
        fixed (ushort* wp = w)
        fixed (float* yp = y)
            Linear.Forward(xp, m, k, DType.F16, (byte*)wp, n, null, yp, pool);
        for (int i = 0; i < m; i++)
        {
            for (int r = 0; r < n; r++)
            {
                double sum = 0, mag = 0;
                for (int e = 0; e < k; e++)
                {
                    double wv = (double)BitConverter.UInt16BitsToHalf(w[r * k + e]);
                    sum += x[i * k + e] * wv;
                    mag += Math.Abs(x[i * k + e] * wv);
                }
                float got = y[i * n + r];
                if (double.IsNaN(sum))
                    Assert.True(float.IsNaN(got), $"row {r}: expected NaN, got {got}");
                else if (double.IsInfinity(sum))
                    Assert.Equal(sum, (double)got);
                else
                    Assert.True(Math.Abs(got - sum) <= 1e-5 * mag + 1e-30, $"row {r}: got {got}, expected {sum}");
            }
        }
    }

    [Fact]
    public void EveryBf16BitPatternWidensExactly()
    {
        var table = new ushort[65536];
        for (int i = 0; i < table.Length; i++)
            table[i] = (ushort)i;
        var y = new float[65536];
        int token = 0;
        fixed (ushort* tp = table)
        fixed (float* yp = y)
            Embedding.Gather(&token, 1, DType.BF16, (byte*)tp, 65536, yp);
        for (int i = 0; i < table.Length; i++)
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(y[i]));
    }

    [Fact]
    public void LinearEveryKUpTo70()
    {
        // Every k from 1 to 70 hits each combination of 32-, 16-, 8-wide steps and scalar tail.
        var rng = new Random(TestData.NewSeed());
        foreach (var type in TestData.WeightTypes)
        {
            for (int k = 1; k <= 70; k++)
            {
                foreach (int m in new[] { 1, 3, 6 })
                {
                    int n = 6;
                    var x = TestData.Floats(rng, m * k);
                    var (w, wv) = TestData.Encode(TestData.Floats(rng, n * k), type);
                    var y = new float[m * n];
                    fixed (float* xp = x)
                    fixed (byte* wp = w)
                    fixed (float* yp = y)
                        Linear.Forward(xp, m, k, type, wp, n, null, yp, pool);
                    var expected = new double[m * n];
                    var scale = new double[m * n];
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            for (int e = 0; e < k; e++)
                            {
                                expected[i * n + j] += x[i * k + e] * wv[j * k + e];
                                scale[i * n + j] += Math.Abs(x[i * k + e] * wv[j * k + e]);
                            }
                        }
                    }
                    TestData.AssertClose(y, expected, scale, 1e-5, $"Linear {type} m={m} k={k}");
                }
            }
        }
    }

    [Fact]
    public void InterleavedRotaryEveryLengthUpTo40()
    {
        // half up to 20 covers the 8-pair (256-bit) and 4-pair (128-bit) loops, and every tail after them.
        var rng = new Random(TestData.NewSeed());
        for (int half = 1; half <= 20; half++)
        {
            int d = 2 * half;
            var x = TestData.Floats(rng, d);
            var cos = TestData.Floats(rng, half);
            var sin = TestData.Floats(rng, half);
            var expected = new double[d];
            var scalar = new float[d];
            for (int i = 0; i < half; i++)
            {
                expected[2 * i] = (double)x[2 * i] * cos[i] - (double)x[2 * i + 1] * sin[i];
                expected[2 * i + 1] = (double)x[2 * i + 1] * cos[i] + (double)x[2 * i] * sin[i];
                scalar[2 * i] = x[2 * i] * cos[i] - x[2 * i + 1] * sin[i];
                scalar[2 * i + 1] = x[2 * i + 1] * cos[i] + x[2 * i] * sin[i];
            }
            fixed (float* xp = x)
            fixed (float* cp = cos)
            fixed (float* sp = sin)
                Rotary.Apply(xp, null, 1, 1, 0, d, cp, sp, RotaryStyle.Interleaved);
            TestData.AssertClose(x, expected, TestData.RelativeScale(expected, 1), 1e-6, $"interleaved Rotary d={d}");
            // The vector loops round as the scalar formula does.
            Assert.Equal(scalar, x);
        }
    }

    [Fact]
    public void RotaryAndNormEveryLengthUpTo40()
    {
        var rng = new Random(TestData.NewSeed());
        for (int half = 1; half <= 20; half++)
        {
            int d = 2 * half;
            var x = TestData.Floats(rng, d);
            var cos = TestData.Floats(rng, half);
            var sin = TestData.Floats(rng, half);
            var expected = new double[d];
            for (int i = 0; i < half; i++)
            {
                expected[i] = (double)x[i] * cos[i] - (double)x[i + half] * sin[i];
                expected[i + half] = (double)x[i + half] * cos[i] + (double)x[i] * sin[i];
            }
            fixed (float* xp = x)
            fixed (float* cp = cos)
            fixed (float* sp = sin)
                Rotary.Apply(xp, null, 1, 1, 0, d, cp, sp);
            TestData.AssertClose(x, expected, TestData.RelativeScale(expected, 1), 1e-6, $"Rotary d={d}");
        }
        foreach (var type in TestData.WeightTypes)
        {
            for (int dim = 1; dim <= 40; dim++)
            {
                var x = TestData.Floats(rng, dim);
                var (w, wv) = TestData.Encode(TestData.Floats(rng, dim), type);
                var y = new float[dim];
                fixed (float* xp = x)
                fixed (byte* wp = w)
                fixed (float* yp = y)
                    RmsNorm.Forward(xp, 1, dim, type, wp, 1e-6f, yp);
                double ss = 0;
                foreach (var v in x)
                    ss += (double)v * v;
                double inv = 1 / Math.Sqrt(ss / dim + 1e-6);
                var expected = new double[dim];
                for (int i = 0; i < dim; i++)
                    expected[i] = wv[i] * x[i] * inv;
                TestData.AssertClose(y, expected, TestData.RelativeScale(expected, 1e-6), 1e-5, $"RmsNorm {type} dim={dim}");
            }
        }
    }
}
