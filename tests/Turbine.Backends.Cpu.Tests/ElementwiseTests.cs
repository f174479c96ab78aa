using Turbine.Backends.Cpu.Kernels;
using Turbine.Core.Models;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Tests;

public sealed unsafe class ElementwiseTests
{
    public static TheoryData<DType, int, int> NormShapes()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var t in TestData.WeightTypes)
        {
            foreach (int dim in new[] { 1, 5, 17, 100, 513, 1000, 4099 })
                data.Add(t, dim % 3 + 1, dim);
        }
        return data;
    }

    private static double[] ReferenceNorm(float[] x, int rows, int dim, double[] w, double eps)
    {
        var y = new double[rows * dim];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++)
                ss += (double)x[r * dim + i] * x[r * dim + i];
            double inv = 1 / Math.Sqrt(ss / dim + eps);
            for (int i = 0; i < dim; i++)
                y[r * dim + i] = w[i] * x[r * dim + i] * inv;
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(NormShapes))]
    public void RmsNormMatchesReference(DType type, int rows, int dim)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var x = TestData.Floats(rng, rows * dim, 3f);
        var (w, wv) = TestData.Encode(TestData.Floats(rng, dim, 2f), type);
        var y = new float[rows * dim];
        fixed (float* xp = x)
        fixed (byte* wp = w)
        fixed (float* yp = y)
            RmsNorm.Forward(xp, rows, dim, type, wp, 1e-6f, yp);
        var expected = ReferenceNorm(x, rows, dim, wv, 1e-6);
        TestData.AssertClose(y, expected, TestData.RelativeScale(expected, 1e-6), 1e-5, $"RmsNorm {type} dim={dim} seed={seed}");
    }

    [Fact]
    public void RmsNormEpsDominatesZeroRow()
    {
        var x = new float[8];
        var (w, _) = TestData.Encode([1, 1, 1, 1, 1, 1, 1, 1], DType.F32);
        var y = new float[8];
        Array.Fill(y, float.NaN);
        fixed (float* xp = x)
        fixed (byte* wp = w)
        fixed (float* yp = y)
            RmsNorm.Forward(xp, 1, 8, DType.F32, wp, 1e-5f, yp);
        Assert.All(y, v => Assert.Equal(0f, v));
    }

    [Theory]
    [MemberData(nameof(NormShapes))]
    public void AddAndNormUpdatesResidualAndNormalises(DType type, int rows, int dim)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var residual = TestData.Floats(rng, rows * dim, 3f);
        var delta = TestData.Floats(rng, rows * dim, 3f);
        var (w, wv) = TestData.Encode(TestData.Floats(rng, dim, 2f), type);
        var sum = new float[rows * dim];
        for (int i = 0; i < sum.Length; i++)
            sum[i] = residual[i] + delta[i];
        var y = new float[rows * dim];
        fixed (float* rp = residual)
        fixed (float* dp = delta)
        fixed (byte* wp = w)
        fixed (float* yp = y)
            RmsNorm.AddAndNorm(rp, dp, rows, dim, type, wp, 1e-5f, yp);
        Assert.Equal(sum, residual);
        var expected = ReferenceNorm(sum, rows, dim, wv, 1e-5);
        TestData.AssertClose(y, expected, TestData.RelativeScale(expected, 1e-6), 1e-5, $"AddAndNorm {type} dim={dim} seed={seed}");
    }

    [Theory]
    [InlineData(RotaryStyle.Neox, 2, 0)]
    [InlineData(RotaryStyle.Neox, 6, 0)]
    [InlineData(RotaryStyle.Neox, 18, 0)]
    [InlineData(RotaryStyle.Neox, 64, 0)]
    [InlineData(RotaryStyle.Neox, 128, 0)]
    [InlineData(RotaryStyle.Neox, 80, 40)]
    [InlineData(RotaryStyle.Neox, 34, 18)]
    [InlineData(RotaryStyle.Interleaved, 2, 0)]
    [InlineData(RotaryStyle.Interleaved, 6, 0)]
    [InlineData(RotaryStyle.Interleaved, 18, 0)]
    [InlineData(RotaryStyle.Interleaved, 64, 0)]
    [InlineData(RotaryStyle.Interleaved, 128, 0)]
    [InlineData(RotaryStyle.Interleaved, 64, 16)]
    [InlineData(RotaryStyle.Interleaved, 80, 40)]
    [InlineData(RotaryStyle.Interleaved, 34, 18)]
    public void RotaryMatchesReference(RotaryStyle style, int headDim, int rotaryDim)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        int tokens = 5, heads = 6, kvHeads = 2;
        int rot = rotaryDim == 0 ? headDim : rotaryDim, half = rot / 2;
        var q = TestData.Floats(rng, tokens * heads * headDim);
        var k = TestData.Floats(rng, tokens * kvHeads * headDim);
        var cos = new float[tokens * half];
        var sin = new float[tokens * half];
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = (t + 3) * Math.Pow(10000, -2.0 * i / rot);
                cos[t * half + i] = (float)Math.Cos(angle);
                sin[t * half + i] = (float)Math.Sin(angle);
            }
        }
        double[] Reference(float[] x, int h)
        {
            var r = new double[x.Length];
            for (int t = 0; t < tokens; t++)
            {
                for (int hh = 0; hh < h; hh++)
                {
                    int b = (t * h + hh) * headDim;
                    for (int i = 0; i < headDim; i++)
                        r[b + i] = x[b + i];
                    for (int i = 0; i < half; i++)
                    {
                        int i1 = style == RotaryStyle.Neox ? i : 2 * i;
                        int i2 = style == RotaryStyle.Neox ? i + half : 2 * i + 1;
                        double c = cos[t * half + i], s = sin[t * half + i];
                        r[b + i1] = x[b + i1] * c - x[b + i2] * s;
                        r[b + i2] = x[b + i2] * c + x[b + i1] * s;
                    }
                }
            }
            return r;
        }
        var qe = Reference(q, heads);
        var ke = Reference(k, kvHeads);
        fixed (float* qp = q)
        fixed (float* kp = k)
        fixed (float* cp = cos)
        fixed (float* sp = sin)
            Rotary.Apply(qp, kp, tokens, heads, kvHeads, headDim, cp, sp, style, rotaryDim);
        TestData.AssertClose(q, qe, TestData.RelativeScale(qe, 1), 1e-6, $"Rotary q {style} seed={seed}");
        TestData.AssertClose(k, ke, TestData.RelativeScale(ke, 1), 1e-6, $"Rotary k {style} seed={seed}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(1000)]
    [InlineData(2500)]
    public void SiluMulMatchesReference(int count)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var gate = TestData.Floats(rng, count, 12f);
        gate[0] = count > 1 ? -100f : 0f;
        if (count > 2)
            gate[1] = 90f;
        var up = TestData.Floats(rng, count, 3f);
        var expected = new double[count];
        for (int i = 0; i < count; i++)
            expected[i] = gate[i] / (1 + Math.Exp(-(double)gate[i])) * up[i];
        var y = new float[count];
        fixed (float* gp = gate)
        fixed (float* up_ = up)
        fixed (float* yp = y)
            Activations.SiluMul(gp, up_, yp, count);
        TestData.AssertClose(y, expected, TestData.RelativeScale(expected, 1e-30), 1e-5, $"SiluMul seed={seed}");

        // In place over gate, as a decoder reuses buffers.
        fixed (float* gp = gate)
        fixed (float* up_ = up)
            Activations.SiluMul(gp, up_, gp, count);
        TestData.AssertClose(gate, expected, TestData.RelativeScale(expected, 1e-30), 1e-5, $"SiluMul in place seed={seed}");
    }

    [Fact]
    public void AddAddsElementwise()
    {
        var rng = new Random(TestData.NewSeed());
        var a = TestData.Floats(rng, 37);
        var b = TestData.Floats(rng, 37);
        var y = new float[37];
        fixed (float* ap = a)
        fixed (float* bp = b)
        fixed (float* yp = y)
            Activations.Add(ap, bp, yp, 37);
        for (int i = 0; i < 37; i++)
            Assert.Equal(a[i] + b[i], y[i]);
    }

    [Theory]
    [InlineData(DType.F32, 1)]
    [InlineData(DType.F32, 33)]
    [InlineData(DType.BF16, 7)]
    [InlineData(DType.BF16, 64)]
    [InlineData(DType.F16, 7)]
    [InlineData(DType.F16, 129)]
    public void EmbeddingGathersAndWidensRows(DType type, int dim)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        int vocab = 50;
        var (table, values) = TestData.Encode(TestData.Floats(rng, vocab * dim, 5f), type);
        int[] tokens = [3, 0, 49, 3, 17];
        var y = new float[tokens.Length * dim];
        fixed (int* tp = tokens)
        fixed (byte* tab = table)
        fixed (float* yp = y)
            Embedding.Gather(tp, tokens.Length, type, tab, dim, yp);
        for (int i = 0; i < tokens.Length; i++)
        {
            for (int e = 0; e < dim; e++)
                Assert.Equal(values[tokens[i] * dim + e], y[i * dim + e]);
        }
    }
}
