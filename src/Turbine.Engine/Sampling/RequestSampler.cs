namespace Turbine.Engine.Sampling;

/// <summary>
/// One request's sampling state: its seeded random stream, the tokens it generated (for penalties) and its prompt.
/// Each step it describes its row for <see cref="Backends.IComputeBackend.Sample"/> (penalties, bad words, min_length
/// end-id bans, one uniform draw), or chooses on the host from a downloaded logits row with the same math.
/// </summary>
public sealed class RequestSampler
{
    private readonly SamplingParams _p;
    private readonly Random _random;
    private readonly Dictionary<int, int> _generatedCounts = [];
    private readonly HashSet<int> _promptTokens;
    private readonly SamplingBatch _own = new();

    /// <summary>A sampler for a request with <paramref name="prompt"/>.</summary>
    public RequestSampler(SamplingParams parameters, ReadOnlySpan<int> prompt)
    {
        _p = parameters;
        _random = parameters.Seed is { } seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
        _promptTokens = parameters.RepetitionPenalty != 1f ? [.. prompt] : [];
    }

    /// <summary>
    /// Appends this request's next row to <paramref name="batch"/>: its parameters, penalised tokens and bans.
    /// <paramref name="generated"/> are the tokens produced so far; <paramref name="endIds"/> are banned until min_length;
    /// a sampled row draws its uniform number from the request's stream here, once per step.
    /// </summary>
    public void Prepare(SamplingBatch batch, ReadOnlySpan<int> generated, ReadOnlySpan<int> endIds, int[][] badWords, bool wantLogProb)
    {
        if (_p.RepetitionPenalty != 1f)
        {
            foreach (int t in _promptTokens)
                batch.AddPenalty(t, _generatedCounts.GetValueOrDefault(t));
            foreach (var (t, count) in _generatedCounts)
                if (!_promptTokens.Contains(t))
                    batch.AddPenalty(t, count);
        }
        else if (_p.PresencePenalty != 0f || _p.FrequencyPenalty != 0f)
            foreach (var (t, count) in _generatedCounts)
                batch.AddPenalty(t, count);
        if (generated.Length < _p.MinLength)
            foreach (int e in endIds)
                batch.AddBan(e);
        // A bad word's last token is banned when the tokens before it were just generated.
        foreach (var word in badWords)
        {
            int prefix = word.Length - 1;
            if (prefix <= generated.Length && generated[^prefix..].SequenceEqual(word.AsSpan(0, prefix)))
                batch.AddBan(word[^1]);
        }
        float u = _p.IsGreedy ? 0f : (float)_random.NextDouble();
        batch.EndRow(new SamplingRow(_p.Temperature, _p.TopK, _p.TopP, _p.RepetitionPenalty, _p.PresencePenalty, _p.FrequencyPenalty, u, wantLogProb));
    }

    /// <summary>
    /// Chooses the next token on the host from <paramref name="logits"/> (modified in place), exactly as
    /// <see cref="Backends.IComputeBackend.Sample"/> would; the arguments are <see cref="Prepare"/>'s, and
    /// <paramref name="probs"/> and <paramref name="order"/> are vocabulary-sized work areas owned by the caller.
    /// </summary>
    public int Next(Span<float> logits, ReadOnlySpan<int> generated, ReadOnlySpan<int> endIds, int[][] badWords,
        Span<float> probs, Span<ulong> order, bool wantLogProb, out float logProb)
    {
        _own.Clear();
        Prepare(_own, generated, endIds, badWords, wantLogProb);
        return HostSampler.SampleRow(logits, _own, 0, probs, order, out logProb);
    }

    /// <summary>Records a token the request produced, for the penalties of later steps.</summary>
    public void Accept(int token)
    {
        if (_p.PresencePenalty != 0f || _p.FrequencyPenalty != 0f || _p.RepetitionPenalty != 1f)
            _generatedCounts[token] = _generatedCounts.GetValueOrDefault(token) + 1;
    }
}
