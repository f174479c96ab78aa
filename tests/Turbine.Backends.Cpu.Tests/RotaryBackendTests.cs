using Turbine.Core.Checkpoints;
using Turbine.Core.Models;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cpu.Tests;

/// <summary>
/// RoPE through <see cref="CpuBackend.Rotary"/>, where the style and the rotated width come from the step
/// (<see cref="ForwardBatch.RotaryStyle"/>, <see cref="ForwardBatch.RotaryHalfDim"/>), against a float64 reference.
/// </summary>
public sealed unsafe class RotaryBackendTests
{
    [Theory]
    [InlineData(RotaryStyle.Neox, 3, 5, 1, 18, 9)]
    [InlineData(RotaryStyle.Neox, 7, 3, 3, 20, 6)]
    [InlineData(RotaryStyle.Neox, 2, 4, 2, 64, 24)]
    [InlineData(RotaryStyle.Neox, 5, 2, 1, 128, 64)]
    [InlineData(RotaryStyle.Neox, 4, 2, 2, 34, 1)]
    [InlineData(RotaryStyle.Interleaved, 3, 5, 1, 18, 9)]
    [InlineData(RotaryStyle.Interleaved, 7, 3, 3, 20, 6)]
    [InlineData(RotaryStyle.Interleaved, 2, 4, 2, 64, 24)]
    [InlineData(RotaryStyle.Interleaved, 5, 2, 1, 128, 64)]
    [InlineData(RotaryStyle.Interleaved, 1, 6, 2, 96, 19)]
    [InlineData(RotaryStyle.Interleaved, 4, 2, 2, 34, 1)]
    public void MatchesReference(RotaryStyle style, int tokens, int heads, int kvHeads, int headDim, int half)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var (batch, q, k) = Inputs(rng, style, tokens, heads, kvHeads, headDim, half);
        var (qOut, kOut) = RunBackend(batch, q, k, heads, kvHeads, headDim);
        string what = $"{style} tokens={tokens} heads={heads}/{kvHeads} headDim={headDim} half={half} seed={seed}";
        AssertRotated(qOut, Reference(q, batch, style, tokens, heads, headDim, half), headDim, half, $"q {what}");
        AssertRotated(kOut, Reference(k, batch, style, tokens, kvHeads, headDim, half), headDim, half, $"k {what}");
    }

    [Fact]
    public void StyleChangesTheResult()
    {
        int seed = TestData.NewSeed();
        const int tokens = 3, heads = 4, kvHeads = 2, headDim = 32, half = 12;
        var results = new float[2][];
        foreach (var style in new[] { RotaryStyle.Neox, RotaryStyle.Interleaved })
        {
            // The same inputs and tables in both styles: only the style differs.
            var (batch, q, k) = Inputs(new Random(seed), style, tokens, heads, kvHeads, headDim, half);
            var (qOut, _) = RunBackend(batch, q, k, heads, kvHeads, headDim);
            results[(int)style] = qOut;
            var other = style == RotaryStyle.Neox ? RotaryStyle.Interleaved : RotaryStyle.Neox;
            var wrong = Reference(q, batch, other, tokens, heads, headDim, half);
            double worst = 0;
            for (int i = 0; i < qOut.Length; i++)
                worst = Math.Max(worst, Math.Abs(qOut[i] - wrong[i]));
            Assert.True(worst > 0.1, $"{style}: the result matches the {other} reference too (max difference {worst}), seed={seed}");
        }
        Assert.NotEqual(results[0], results[1]);
    }

    // A step of one sequence with random cos/sin rows (angles of a unit circle) and random q, k.
    private static (ForwardBatch Batch, float[] Q, float[] K) Inputs(Random rng, RotaryStyle style, int tokens, int heads, int kvHeads,
        int headDim, int half)
    {
        var batch = new ForwardBatch(tokens, 1, tokens, half, style);
        batch.Add(Enumerable.Range(0, tokens).ToArray(), 0, [0], tokens);
        for (int i = 0; i < tokens * half; i++)
        {
            double angle = rng.NextDouble() * 2 * Math.PI;
            batch.Cos[i] = (float)Math.Cos(angle);
            batch.Sin[i] = (float)Math.Sin(angle);
        }
        return (batch, TestData.Floats(rng, tokens * heads * headDim), TestData.Floats(rng, tokens * kvHeads * headDim));
    }

    // q and k put in backend buffers through Embed (token t picks row t), rotated, and read back.
    private static (float[] Q, float[] K) RunBackend(ForwardBatch batch, float[] q, float[] k, int heads, int kvHeads, int headDim)
    {
        int tokens = batch.TokenCount;
        using var backend = new CpuBackend(1);
        backend.BeginStep(batch);
        using var qb = backend.Allocate(q.Length);
        using var kb = backend.Allocate(k.Length);
        fixed (float* qp = q)
        fixed (float* kp = k)
        {
            backend.Embed(backend.Upload(new TensorSlice("q", "test", DType.F32, [tokens, heads * headDim], (byte*)qp, q.Length * 4L)), qb);
            backend.Embed(backend.Upload(new TensorSlice("k", "test", DType.F32, [tokens, kvHeads * headDim], (byte*)kp, k.Length * 4L)), kb);
        }
        backend.Rotary(qb, heads, kb, kvHeads, headDim);
        var qOut = new float[q.Length];
        var kOut = new float[k.Length];
        backend.Download(qb, qOut);
        backend.Download(kb, kOut);
        return (qOut, kOut);
    }

    // The definition in float64: pair i of a head is (i, i + half) in the neox style and (2i, 2i + 1) in the interleaved
    // one, rotated by the angle of cos/sin entry i; the dimensions past 2 × half keep their values.
    private static double[] Reference(float[] x, ForwardBatch batch, RotaryStyle style, int tokens, int heads, int headDim, int half)
    {
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
            r[i] = x[i];
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < heads; h++)
            {
                int at = (t * heads + h) * headDim;
                for (int i = 0; i < half; i++)
                {
                    int first = at + (style == RotaryStyle.Neox ? i : 2 * i);
                    int second = at + (style == RotaryStyle.Neox ? i + half : 2 * i + 1);
                    double c = batch.Cos[t * half + i], s = batch.Sin[t * half + i], a = x[first], b = x[second];
                    r[first] = a * c - b * s;
                    r[second] = b * c + a * s;
                }
            }
        }
        return r;
    }

    // Rotated dimensions within float rounding of the reference; the ones past the rotary width exactly as they were.
    private static void AssertRotated(float[] actual, double[] expected, int headDim, int half, string what)
    {
        TestData.AssertClose(actual, expected, TestData.RelativeScale(expected, 1), 1e-6, what);
        for (int i = 0; i < actual.Length; i++)
        {
            if (i % headDim >= 2 * half && actual[i] != (float)expected[i])
                Assert.Fail($"{what}: dimension {i % headDim} past the rotary width changed at index {i}: {actual[i]}, was {expected[i]}");
        }
    }
}
