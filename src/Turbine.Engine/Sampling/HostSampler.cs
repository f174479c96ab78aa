using System.Numerics.Tensors;

namespace Turbine.Engine.Sampling;

/// <summary>
/// The host implementation of <see cref="Backends.IComputeBackend.Sample"/> for one row: the CPU backend and
/// <see cref="RequestSampler"/> both choose tokens here, so there is one definition of the math.
/// </summary>
public static class HostSampler
{
    /// <summary>
    /// Chooses row <paramref name="row"/> of <paramref name="batch"/>'s token from <paramref name="logits"/> (overwritten).
    /// <paramref name="probs"/> and <paramref name="order"/> are work areas of at least the row's width.
    /// </summary>
    public static int SampleRow(Span<float> logits, SamplingBatch batch, int row, Span<float> probs, Span<ulong> order, out float logProb)
    {
        var p = batch.Rows[row];
        ApplyPenalties(logits, p, batch.PenaltyTokensOf(row), batch.PenaltyCountsOf(row));
        foreach (int t in batch.BanTokensOf(row))
            if ((uint)t < (uint)logits.Length)
                logits[t] = float.NegativeInfinity;
        if (p.IsGreedy)
        {
            int best = TensorPrimitives.IndexOfMax(logits);
            // A vocabulary-wide log-sum-exp per token is only paid for when log probs were asked for.
            logProb = p.WantLogProb ? logits[best] - LogSumExp(logits) : 0f;
            return best;
        }
        return Draw(logits, p, probs, order, out logProb);
    }

    private static void ApplyPenalties(Span<float> logits, in SamplingRow p, ReadOnlySpan<int> tokens, ReadOnlySpan<int> counts)
    {
        for (int i = 0; i < tokens.Length; i++)
        {
            int t = tokens[i];
            if ((uint)t >= (uint)logits.Length)
                continue;
            float v = logits[t];
            v = v > 0 ? v / p.RepetitionPenalty : v * p.RepetitionPenalty;
            if (counts[i] > 0)
                v -= p.PresencePenalty + p.FrequencyPenalty * counts[i];
            logits[t] = v;
        }
    }

    private static int Draw(Span<float> logits, in SamplingRow p, Span<float> scratch, Span<ulong> scratchOrder, out float logProb)
    {
        int n = logits.Length;
        // Unnormalised weights e = exp(x / T − max): probs are e / Σe, so e orders the candidates and every cut below
        // compares sums of e, as the CUDA kernel does; sums run in double, close to the exact definition.
        var e = scratch[..n];
        TensorPrimitives.Divide(logits, p.Temperature, e);
        TensorPrimitives.Subtract(e, TensorPrimitives.Max(e), e);
        TensorPrimitives.Exp(e, e);
        // Candidates in (weight descending, index ascending) order: a weight's bits (≥ 0, so ordered like the values)
        // complemented in the high half, the index in the low half; one ascending sort of the keys is that order.
        var order = scratchOrder[..n];
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += e[i];
            order[i] = ((ulong)~BitConverter.SingleToUInt32Bits(e[i]) << 32) | (uint)i;
        }
        order.Sort();
        int kept = p.TopK > 0 && p.TopK < n ? p.TopK : n;
        if (p.TopP < 1f)
        {
            double mass = p.TopP * sum, cumulative = 0;
            for (int i = 0; i < kept; i++)
            {
                cumulative += Weight(order[i]);
                if (cumulative >= mass)
                {
                    kept = i + 1;
                    break;
                }
            }
        }
        double total = 0;
        for (int i = 0; i < kept; i++)
            total += Weight(order[i]);
        double r = p.Uniform * total, running = 0;
        int chosen = kept - 1;
        for (int i = 0; i < kept; i++)
        {
            running += Weight(order[i]);
            if (running >= r)
            {
                chosen = i;
                break;
            }
        }
        // Log probability under the filtered, renormalised distribution that was sampled.
        logProb = p.WantLogProb ? (float)Math.Log(Weight(order[chosen]) / total) : 0f;
        return (int)(uint)order[chosen];
    }

    private static float Weight(ulong key) => BitConverter.UInt32BitsToSingle(~(uint)(key >> 32));

    private static float LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
            sum += Math.Exp(logits[i] - max);
        return max + (float)Math.Log(sum);
    }
}
