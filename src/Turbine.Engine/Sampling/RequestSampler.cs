using System.Numerics.Tensors;

namespace Turbine.Engine.Sampling;

/// <summary>
/// One request's token choice: applies penalties, bad words and min_length to a logits row in place, then picks
/// greedily or samples (temperature, top-k, top-p) from the request's own seeded random stream, and reports the
/// chosen token's log probability under the distribution it was drawn from.
/// </summary>
public sealed class RequestSampler
{
    private readonly SamplingParams _p;
    private readonly Random _random;
    private readonly Dictionary<int, int> _generatedCounts = [];
    private readonly HashSet<int> _promptTokens;

    /// <summary>A sampler for a request with <paramref name="prompt"/>.</summary>
    public RequestSampler(SamplingParams parameters, ReadOnlySpan<int> prompt)
    {
        _p = parameters;
        _random = parameters.Seed is { } seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
        _promptTokens = parameters.RepetitionPenalty != 1f ? [.. prompt] : [];
    }

    /// <summary>
    /// Chooses the next token from <paramref name="logits"/> (modified in place). <paramref name="generated"/> are the
    /// tokens produced so far; <paramref name="endIds"/> are suppressed until min_length; <paramref name="scratch"/> and
    /// <paramref name="order"/> are vocabulary-sized work areas owned by the caller; <paramref name="logProb"/> is 0 unless
    /// <paramref name="wantLogProb"/>.
    /// </summary>
    public int Next(Span<float> logits, ReadOnlySpan<int> generated, ReadOnlySpan<int> endIds, int[][] badWords,
        Span<float> scratch, Span<int> order, bool wantLogProb, out float logProb)
    {
        ApplyPenalties(logits);
        if (generated.Length < _p.MinLength)
            foreach (int e in endIds)
                if ((uint)e < (uint)logits.Length)
                    logits[e] = float.NegativeInfinity;
        BanBadWords(logits, generated, badWords);
        if (_p.IsGreedy)
        {
            int best = TensorPrimitives.IndexOfMax(logits);
            // A vocabulary-wide log-sum-exp per token is only paid for when log probs were asked for.
            logProb = wantLogProb ? logits[best] - LogSumExp(logits) : 0f;
            return best;
        }
        return SampleFrom(logits, scratch, order, out logProb);
    }

    /// <summary>Records a token the request produced, for the penalties of later steps.</summary>
    public void Accept(int token)
    {
        if (_p.PresencePenalty != 0f || _p.FrequencyPenalty != 0f || _p.RepetitionPenalty != 1f)
            _generatedCounts[token] = _generatedCounts.GetValueOrDefault(token) + 1;
    }

    private void ApplyPenalties(Span<float> logits)
    {
        if (_p.RepetitionPenalty != 1f)
        {
            foreach (int t in _promptTokens)
                Penalize(logits, t);
            foreach (var (t, _) in _generatedCounts)
                if (!_promptTokens.Contains(t))
                    Penalize(logits, t);
        }
        if (_p.PresencePenalty != 0f || _p.FrequencyPenalty != 0f)
            foreach (var (t, count) in _generatedCounts)
                if ((uint)t < (uint)logits.Length)
                    logits[t] -= _p.PresencePenalty + _p.FrequencyPenalty * count;
    }

    private void Penalize(Span<float> logits, int t)
    {
        if ((uint)t >= (uint)logits.Length)
            return;
        float v = logits[t];
        logits[t] = v > 0 ? v / _p.RepetitionPenalty : v * _p.RepetitionPenalty;
    }

    private static void BanBadWords(Span<float> logits, ReadOnlySpan<int> generated, int[][] badWords)
    {
        // A bad word's last token is banned when the tokens before it were just generated.
        foreach (var word in badWords)
        {
            int prefix = word.Length - 1;
            if (prefix > generated.Length || !generated[^prefix..].SequenceEqual(word.AsSpan(0, prefix)))
                continue;
            if ((uint)word[^1] < (uint)logits.Length)
                logits[word[^1]] = float.NegativeInfinity;
        }
    }

    private int SampleFrom(Span<float> logits, Span<float> scratch, Span<int> order, out float logProb)
    {
        int n = logits.Length;
        var probs = scratch[..n];
        TensorPrimitives.Divide(logits, _p.Temperature, probs);
        TensorPrimitives.SoftMax(probs, probs);
        var ids = order[..n];
        for (int i = 0; i < n; i++)
            ids[i] = i;
        // Sort candidates by descending probability: negate into the logits row (no longer needed) as sort keys.
        TensorPrimitives.Negate(probs, logits);
        logits.Sort(ids);
        int kept = _p.TopK > 0 && _p.TopK < n ? _p.TopK : n;
        if (_p.TopP < 1f)
        {
            float cumulative = 0f;
            for (int i = 0; i < kept; i++)
            {
                cumulative += -logits[i];
                if (cumulative >= _p.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }
        }
        float total = 0f;
        for (int i = 0; i < kept; i++)
            total += -logits[i];
        float r = (float)_random.NextDouble() * total;
        int chosen = kept - 1;
        for (int i = 0; i < kept; i++)
        {
            r -= -logits[i];
            if (r <= 0f)
            {
                chosen = i;
                break;
            }
        }
        int token = ids[chosen];
        // Log probability under the filtered, renormalised distribution that was sampled.
        logProb = MathF.Log(-logits[chosen] / total);
        return token;
    }

    private static float LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
            sum += Math.Exp(logits[i] - max);
        return max + (float)Math.Log(sum);
    }
}
