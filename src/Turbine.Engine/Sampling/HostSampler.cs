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
        var probs = scratch[..n];
        TensorPrimitives.Divide(logits, p.Temperature, probs);
        // Softmax after subtracting the maximum, so large logits cannot overflow exp.
        TensorPrimitives.Subtract(probs, TensorPrimitives.Max(probs), probs);
        TensorPrimitives.Exp(probs, probs);
        TensorPrimitives.Divide(probs, TensorPrimitives.Sum(probs), probs);
        // Candidates in (probability descending, index ascending) order: a probability's bits (≥ 0, so ordered like the
        // values) complemented in the high half, the index in the low half; one ascending sort of the keys is that order.
        var order = scratchOrder[..n];
        for (int i = 0; i < n; i++)
            order[i] = ((ulong)~BitConverter.SingleToUInt32Bits(probs[i]) << 32) | (uint)i;
        order.Sort();
        int kept = p.TopK > 0 && p.TopK < n ? p.TopK : n;
        if (p.TopP < 1f)
        {
            float cumulative = 0f;
            for (int i = 0; i < kept; i++)
            {
                cumulative += Prob(order[i]);
                if (cumulative >= p.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }
        }
        float total = 0f;
        for (int i = 0; i < kept; i++)
            total += Prob(order[i]);
        float r = p.Uniform * total;
        int chosen = kept - 1;
        float running = 0f;
        for (int i = 0; i < kept; i++)
        {
            running += Prob(order[i]);
            if (running >= r)
            {
                chosen = i;
                break;
            }
        }
        // Log probability under the filtered, renormalised distribution that was sampled.
        logProb = p.WantLogProb ? MathF.Log(Prob(order[chosen]) / total) : 0f;
        return (int)(uint)order[chosen];
    }

    private static float Prob(ulong key) => BitConverter.UInt32BitsToSingle(~(uint)(key >> 32));

    private static float LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
            sum += Math.Exp(logits[i] - max);
        return max + (float)Math.Log(sum);
    }
}
