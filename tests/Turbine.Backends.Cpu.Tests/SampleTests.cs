using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Backends.Cpu.Tests;

/// <summary>
/// CpuBackend.Sample against a brute-force reference of IComputeBackend.Sample's definition: penalties and bans, then a
/// full sort with LINQ in double precision. Ids must agree except where the reference's r or top-p cut lies within 1e-4
/// (relative) of a candidate boundary, which float rounding may move.
/// </summary>
public sealed unsafe class SampleTests
{
    private const double Boundary = 1e-4;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(1000)]
    [InlineData(5003)]
    public void RandomRowsMatchTheReference(int width)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        int[] topKs = [0, 1, 3, 40, width, width + 5];
        float[] topPs = [1f, 0.9f, 0.5f, 1e-6f, 0.999999f];
        float[] temperatures = [0f, 0.7f, 1.3f, 1f];
        int skipped = 0, rows = 0;
        for (int round = 0; round < 12; round++)
        {
            int count = rng.Next(1, 9);
            var logits = new float[count * width];
            var batch = new SamplingBatch();
            for (int r = 0; r < count; r++)
            {
                var row = logits.AsSpan(r * width, width);
                // Quantised rows tie often (big ties), continuous rows rarely; both are well away from overflow.
                bool quantised = rng.Next(2) == 0;
                for (int i = 0; i < width; i++)
                    row[i] = quantised ? rng.Next(-6, 7) / 4f : (float)(rng.NextDouble() * 16 - 8);
                foreach (int t in Distinct(rng, width + 3, rng.Next(0, Math.Min(width, 12) + 1)))
                    batch.AddPenalty(t, rng.Next(0, 4));
                // Bans only where they cannot ban a whole row, whose token the definition leaves open.
                for (int b = width >= 8 ? rng.Next(0, 4) : 0; b > 0; b--)
                    batch.AddBan(rng.Next(-1, width + 2));
                float u = rng.Next(8) switch { 0 => 0f, 1 => 1f, 2 => 0.99999994f, _ => (float)rng.NextDouble() };
                batch.EndRow(new SamplingRow(temperatures[rng.Next(temperatures.Length)], topKs[rng.Next(topKs.Length)], topPs[rng.Next(topPs.Length)],
                    rng.Next(2) == 0 ? 1f : 1.3f, rng.Next(2) == 0 ? 0f : 0.4f, rng.Next(2) == 0 ? 0f : 0.25f, u, WantLogProb: rng.Next(3) > 0));
            }
            var (ids, logProbs) = RunCpu(logits, count, width, batch);
            for (int r = 0; r < count; r++)
            {
                rows++;
                var expected = Reference(logits.AsSpan(r * width, width), batch, r, out double expectedLogProb, out bool nearBoundary);
                if (ids[r] != expected && nearBoundary)
                {
                    // u near 1 lands where float and double running sums stop growing: a boundary by nature, not counted.
                    skipped += batch.Rows[r].Uniform < 0.999f ? 1 : 0;
                    continue;
                }
                string where = $"seed {seed} round {round} row {r} ({batch.Rows[r]})";
                Assert.True(expected == ids[r], $"{where}: id {ids[r]}, expected {expected}");
                if (batch.Rows[r].WantLogProb)
                    Assert.True(Math.Abs(logProbs[r] - expectedLogProb) <= 1e-4 * Math.Max(1, Math.Abs(expectedLogProb)),
                        $"{where}: log prob {logProbs[r]}, expected {expectedLogProb}");
                else
                    Assert.Equal(0f, logProbs[r]);
            }
        }
        Assert.True(skipped * 20 <= rows, $"{skipped} of {rows} rows sat on a boundary (seed {seed})");
    }

    [Fact]
    public void TiesGoToTheLowerIndexInOrder()
    {
        // Ten equal logits: candidate j is index j, so u picks index floor(u × 10) (away from the boundaries), greedy picks 0.
        const int width = 10;
        float[] us = [0f, 0.05f, 0.15f, 0.55f, 0.95f, 1f];
        var batch = new SamplingBatch();
        foreach (float u in us)
            batch.EndRow(new SamplingRow(1f, 0, 1f, 1f, 0f, 0f, u, WantLogProb: true));
        batch.EndRow(new SamplingRow(0f, 0, 1f, 1f, 0f, 0f, 0.5f, WantLogProb: true));
        var logits = new float[batch.Count * width];
        Array.Fill(logits, 3f);
        var (ids, logProbs) = RunCpu(logits, batch.Count, width, batch);
        Assert.Equal([0, 0, 1, 5, 9, 9, 0], ids);
        Assert.All(logProbs, lp => Assert.Equal(MathF.Log(0.1f), lp, 1e-5f));
    }

    [Fact]
    public void TopKAndTopPEdgesKeepTheExpectedCandidates()
    {
        // Probabilities in order: index 2 (largest), then 0 and 3 tied, then 1.
        float[] row = [1f, 0f, 2f, 1f];
        var batch = new SamplingBatch();
        batch.EndRow(new SamplingRow(1f, 1, 1f, 1f, 0f, 0f, 0.99f, WantLogProb: false)); // top_k 1: greedy
        batch.EndRow(new SamplingRow(1f, 0, 1e-6f, 1f, 0f, 0f, 0.99f, WantLogProb: true)); // tiny top_p: only the first
        batch.EndRow(new SamplingRow(1f, 2, 1f, 1f, 0f, 0f, 0.99f, WantLogProb: false)); // top_k 2 keeps 2 and 0 (tie: lower index)
        batch.EndRow(new SamplingRow(1f, 3, 1f, 1f, 0f, 0f, 0.99f, WantLogProb: false)); // top_k 3 keeps 2, 0, 3
        batch.EndRow(new SamplingRow(1f, 0, 1f, 1f, 0f, 0f, 0.99f, WantLogProb: false)); // everything: the last is 1
        var logits = new float[batch.Count * 4];
        for (int r = 0; r < batch.Count; r++)
            row.CopyTo(logits, r * 4);
        var (ids, logProbs) = RunCpu(logits, batch.Count, 4, batch);
        Assert.Equal([2, 2, 0, 3, 1], ids);
        Assert.Equal(0f, logProbs[1]);
    }

    [Fact]
    public void PenaltiesAndBansApplyAsDefined()
    {
        float[] row = [2f, 1.5f, -1f, 1.2f, 0.5f];
        var batch = new SamplingBatch();
        // Repetition 2 halves token 0 (2 → 1) and doubles token 2; token 1 generated twice: 1.5 / 2 − (0.1 + 0.3 · 2) = 0.05.
        batch.AddPenalty(0, 0);
        batch.AddPenalty(1, 2);
        batch.AddPenalty(2, 0);
        batch.EndRow(new SamplingRow(0f, 0, 1f, 2f, 0.1f, 0.3f, 0f, WantLogProb: true));
        // Banning 0 and 3 (and an id outside the row) leaves 1 the largest.
        batch.AddBan(0);
        batch.AddBan(3);
        batch.AddBan(99);
        batch.EndRow(new SamplingRow(0f, 0, 1f, 1f, 0f, 0f, 0f, WantLogProb: false));
        var logits = new float[2 * 5];
        row.CopyTo(logits, 0);
        row.CopyTo(logits, 5);
        var (ids, logProbs) = RunCpu(logits, 2, 5, batch);
        Assert.Equal([3, 1], ids);
        double[] penalised = [1, 1.5f / 2f - (0.1f + 0.3f * 2), -2, 1.2, 0.5];
        double lse = Math.Log(penalised.Sum(Math.Exp));
        Assert.Equal(1.2 - lse, logProbs[0], 1e-5);
    }

    // Runs CpuBackend.Sample over a copy of logits placed in a backend buffer (through Embed, as the engine fills buffers).
    private static (int[] Ids, float[] LogProbs) RunCpu(float[] logits, int rows, int width, SamplingBatch batch)
    {
        using var backend = new CpuBackend(1);
        var step = new ForwardBatch(rows, 1, rows, 1);
        step.Add(Enumerable.Range(0, rows).ToArray(), 0, [0], rows, allLogits: true);
        backend.BeginStep(step);
        using var buffer = backend.Allocate((long)rows * width);
        fixed (float* data = logits)
        {
            var table = backend.Upload(new TensorSlice("logits", "test", DType.F32, [rows, width], (byte*)data, (long)logits.Length * sizeof(float)));
            backend.Embed(table, buffer);
        }
        var ids = new int[rows];
        var logProbs = new float[rows];
        backend.Sample(buffer, width, batch, ids, logProbs);
        return (ids, logProbs);
    }

    private static IEnumerable<int> Distinct(Random rng, int range, int count) =>
        Enumerable.Range(-1, range + 1).OrderBy(_ => rng.Next()).Take(count);

    // The definition, written plainly: float penalties and bans, then double-precision softmax and a full stable sort.
    private static int Reference(ReadOnlySpan<float> input, SamplingBatch batch, int row, out double logProb, out bool nearBoundary)
    {
        var p = batch.Rows[row];
        var x = input.ToArray();
        var tokens = batch.PenaltyTokensOf(row);
        var counts = batch.PenaltyCountsOf(row);
        for (int j = 0; j < tokens.Length; j++)
        {
            int t = tokens[j];
            if (t < 0 || t >= x.Length)
                continue;
            float v = x[t] > 0 ? x[t] / p.RepetitionPenalty : x[t] * p.RepetitionPenalty;
            if (counts[j] > 0)
                v -= p.PresencePenalty + p.FrequencyPenalty * counts[j];
            x[t] = v;
        }
        foreach (int t in batch.BanTokensOf(row))
            if (t >= 0 && t < x.Length)
                x[t] = float.NegativeInfinity;
        nearBoundary = false;
        if (p.IsGreedy)
        {
            int best = 0;
            for (int i = 1; i < x.Length; i++)
                if (x[i] > x[best])
                    best = i;
            double max = x[best];
            logProb = max - (max + Math.Log(x.Sum(v => Math.Exp(v - max))));
            return best;
        }
        double m = x.Max(v => (double)v / p.Temperature);
        var e = x.Select(v => Math.Exp((double)v / p.Temperature - m)).ToArray();
        double sum = e.Sum();
        var probs = e.Select(v => v / sum).ToArray();
        var order = Enumerable.Range(0, x.Length).OrderByDescending(i => probs[i]).ThenBy(i => i).ToArray();
        int kept = p.TopK > 0 && p.TopK < x.Length ? p.TopK : x.Length;
        if (p.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < kept; i++)
            {
                cumulative += probs[order[i]];
                nearBoundary |= Math.Abs(cumulative - p.TopP) <= Boundary * p.TopP;
                if (cumulative >= p.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }
        }
        double total = order.Take(kept).Sum(i => probs[i]);
        double r = p.Uniform * total, running = 0;
        int chosen = kept - 1;
        for (int i = 0; i < kept; i++)
        {
            running += probs[order[i]];
            nearBoundary |= Math.Abs(running - r) <= Boundary * total;
            if (running >= r)
            {
                chosen = i;
                break;
            }
        }
        // Candidates whose weights exp(x/T − max) are equal in float but not in double sort differently here: also a boundary.
        for (int i = 1; i < kept + 1 && i < order.Length; i++)
            nearBoundary |= (float)e[order[i - 1]] == (float)e[order[i]] && e[order[i - 1]] != e[order[i]];
        logProb = Math.Log(probs[order[chosen]] / total);
        return order[chosen];
    }
}
