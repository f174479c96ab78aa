using System.Numerics.Tensors;
using Turbine.Engine.KvCache;

namespace Turbine.Engine.Executor;

/// <summary>
/// Beam search for one request. After the prompt, the best <see cref="Width"/> first tokens start the beams; each step
/// every live beam proposes its 2·width best continuations, the best width non-ending ones become the next beams, and
/// ending ones (end id or stop word) become finished hypotheses scored by cumulative log probability divided by
/// length^length_penalty. Beams share KV blocks with their parent (reference counted); the executor copies a shared
/// block before a beam writes into it.
/// </summary>
internal sealed class BeamSearch
{
    private readonly KvCacheManager _kv;
    private readonly int _maxTokens;
    private readonly float _lengthPenalty;
    private readonly bool _earlyStopping;
    private readonly int[] _endIds;
    private readonly int[][] _stopWords;
    private readonly bool _keepLogProbs;
    private readonly List<Candidate> _candidates = [];
    private readonly List<Hypothesis> _finished = [];

    public BeamSearch(int width, int maxTokens, float lengthPenalty, bool earlyStopping, int[] endIds, int[][] stopWords,
        bool keepLogProbs, KvCacheManager kv)
    {
        Width = width;
        _maxTokens = maxTokens;
        _lengthPenalty = lengthPenalty;
        _earlyStopping = earlyStopping;
        _endIds = endIds;
        _stopWords = stopWords;
        _keepLogProbs = keepLogProbs;
        _kv = kv;
    }

    /// <summary>Beams kept per step.</summary>
    public int Width { get; }

    /// <summary>The live beams; empty before the prompt is done and after the search ends.</summary>
    public List<Beam> Live { get; } = [];

    /// <summary>True once the search is over.</summary>
    public bool Done { get; private set; }

    /// <summary>Starts the beams from the prompt's last logits; they share <paramref name="prompt"/>'s blocks.</summary>
    public void Start(ReadOnlySpan<float> logits, SequenceBlocks prompt, Span<float> scratch)
    {
        var root = new Beam(new SequenceBlocks(), [], [], 0f);
        _kv.Share(prompt, root.Blocks);
        Live.Add(root);
        Advance(logits, scratch);
    }

    /// <summary>
    /// One step: <paramref name="logits"/> holds one vocabulary row per live beam, in order. Chooses the next beams,
    /// releases the old ones' blocks, and records finished hypotheses.
    /// </summary>
    public void Advance(ReadOnlySpan<float> logits, Span<float> scratch)
    {
        int vocab = logits.Length / Live.Count;
        _candidates.Clear();
        for (int b = 0; b < Live.Count; b++)
        {
            var row = scratch[..vocab];
            logits.Slice(b * vocab, vocab).CopyTo(row);
            float lse = LogSumExp(row);
            TopCandidates(row, lse, b, Live[b].CumLogProb, 2 * Width);
        }
        // Best first; ties by beam, then token, so the order is deterministic.
        _candidates.Sort(static (x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Beam != y.Beam ? x.Beam.CompareTo(y.Beam) : x.Token.CompareTo(y.Token));
        var next = new List<Beam>(Width);
        for (int rank = 0; rank < _candidates.Count && next.Count < Width; rank++)
        {
            var c = _candidates[rank];
            var parent = Live[c.Beam];
            if (Array.IndexOf(_endIds, c.Token) >= 0)
            {
                // An end among the best width candidates finishes that hypothesis; further down it is ignored.
                if (rank < Width)
                    AddFinished([.. parent.Tokens], Append(parent.LogProbs, null), c.Score, FinishReason.EndId);
                continue;
            }
            int[] tokens = [.. parent.Tokens, c.Token];
            float[] logProbs = Append(parent.LogProbs, c.LogProb);
            if (EndsWithStopWord(tokens, out int stop))
            {
                if (rank < Width)
                    AddFinished(tokens[..^stop], logProbs[..^stop], c.Score, FinishReason.StopWords);
                continue;
            }
            var child = new Beam(new SequenceBlocks(), tokens, logProbs, c.Score);
            _kv.Share(parent.Blocks, child.Blocks);
            next.Add(child);
        }
        foreach (var beam in Live)
            _kv.Release(beam.Blocks);
        Live.Clear();
        Live.AddRange(next);
        if (Live.Count == 0 || Live[0].Tokens.Length >= _maxTokens)
            Finish(FinishReason.Length);
        else if (IsSettled())
        {
            // Settled: no live beam can enter the best width, so they are dropped, as transformers does.
            foreach (var beam in Live)
                _kv.Release(beam.Blocks);
            Live.Clear();
            Done = true;
        }
    }

    /// <summary>Ends the search (also on cancellation): live beams become hypotheses, blocks are released.</summary>
    public void Finish(FinishReason reason)
    {
        foreach (var beam in Live)
        {
            AddFinished(beam.Tokens, beam.LogProbs, beam.CumLogProb, reason);
            _kv.Release(beam.Blocks);
        }
        Live.Clear();
        Done = true;
    }

    /// <summary>Releases every block without recording anything (preemption restarts the search).</summary>
    public void Abandon()
    {
        foreach (var beam in Live)
            _kv.Release(beam.Blocks);
        Live.Clear();
        _finished.Clear();
        Done = false;
    }

    /// <summary>The best <see cref="Width"/> hypotheses, best first.</summary>
    public IReadOnlyList<Hypothesis> Best()
    {
        var ordered = new List<Hypothesis>(_finished);
        ordered.Sort(static (x, y) => y.Score.CompareTo(x.Score));
        if (ordered.Count > Width)
            ordered.RemoveRange(Width, ordered.Count - Width);
        return ordered;
    }

    private bool IsSettled()
    {
        if (_finished.Count < Width)
            return false;
        if (_earlyStopping)
            return true;
        // Without early stopping, go on while a live beam could still beat the worst kept hypothesis.
        float worstKept = Best()[^1].Score;
        float bestLive = float.NegativeInfinity;
        foreach (var beam in Live)
            bestLive = Math.Max(bestLive, Score(beam.CumLogProb, beam.Tokens.Length));
        return bestLive <= worstKept;
    }

    private void AddFinished(int[] tokens, float[] logProbs, float cumLogProb, FinishReason reason) =>
        _finished.Add(new Hypothesis(tokens, logProbs, cumLogProb, Score(cumLogProb, tokens.Length), reason));

    private float Score(float cumLogProb, int length) => cumLogProb / MathF.Pow(Math.Max(1, length), _lengthPenalty);

    private float[] Append(float[] logProbs, float? value) =>
        !_keepLogProbs ? [] : value is float v ? [.. logProbs, v] : logProbs;

    private bool EndsWithStopWord(int[] tokens, out int length)
    {
        foreach (var w in _stopWords)
            if (tokens.AsSpan().EndsWith(w))
            {
                length = w.Length;
                return true;
            }
        length = 0;
        return false;
    }

    private void TopCandidates(ReadOnlySpan<float> row, float lse, int beam, float cum, int count)
    {
        // Selection of the best `count` tokens of one row: small count, so a running minimum over a short list suffices.
        int start = _candidates.Count;
        for (int t = 0; t < row.Length; t++)
        {
            float lp = row[t] - lse;
            if (float.IsNegativeInfinity(lp))
                continue;
            float score = cum + lp;
            if (_candidates.Count - start < count)
            {
                _candidates.Add(new Candidate(beam, t, lp, score));
                continue;
            }
            int worst = start;
            for (int i = start + 1; i < _candidates.Count; i++)
                if (_candidates[i].Score < _candidates[worst].Score)
                    worst = i;
            if (score > _candidates[worst].Score)
                _candidates[worst] = new Candidate(beam, t, lp, score);
        }
    }

    private static float LogSumExp(ReadOnlySpan<float> row)
    {
        float max = TensorPrimitives.Max(row);
        double sum = 0;
        foreach (float v in row)
            sum += Math.Exp(v - max);
        return max + (float)Math.Log(sum);
    }

    private readonly record struct Candidate(int Beam, int Token, float LogProb, float Score);
}

/// <summary>A live beam: its KV blocks, its generated tokens and their log probabilities.</summary>
internal sealed record Beam(SequenceBlocks Blocks, int[] Tokens, float[] LogProbs, float CumLogProb);

/// <summary>A finished beam-search hypothesis.</summary>
internal sealed record Hypothesis(int[] Tokens, float[] LogProbs, float CumLogProb, float Score, FinishReason Reason);
