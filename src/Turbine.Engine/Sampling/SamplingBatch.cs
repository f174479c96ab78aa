namespace Turbine.Engine.Sampling;

/// <summary>
/// The per-row inputs of one <see cref="Backends.IComputeBackend.Sample"/> call: a <see cref="SamplingRow"/> per logit row
/// and two token lists per row in CSR form (row r's entries are [offsets[r], offsets[r + 1]) of the flat arrays):
/// penalised tokens, each distinct within its row, with how many times the request generated it (0: prompt only), and
/// banned tokens. Built on the host each step into arrays that only grow, so a step allocates nothing once warm.
/// </summary>
public sealed class SamplingBatch
{
    private SamplingRow[] _rows = new SamplingRow[8];
    private int[] _penaltyOffsets = new int[9];
    private int[] _penaltyTokens = new int[64];
    private int[] _penaltyCounts = new int[64];
    private int[] _banOffsets = new int[9];
    private int[] _banTokens = new int[16];
    private int _penalties, _bans;

    /// <summary>Rows added since <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    /// <summary>Each row's parameters.</summary>
    public ReadOnlySpan<SamplingRow> Rows => _rows.AsSpan(0, Count);

    /// <summary>Where each row's penalised tokens start, and (last) where they end: <see cref="Count"/> + 1 entries.</summary>
    public ReadOnlySpan<int> PenaltyOffsets => _penaltyOffsets.AsSpan(0, Count + 1);

    /// <summary>Penalised token ids of all rows, row after row.</summary>
    public ReadOnlySpan<int> PenaltyTokens => _penaltyTokens.AsSpan(0, _penaltyOffsets[Count]);

    /// <summary>For each penalised token, how many times its request generated it (0: it is only in the prompt).</summary>
    public ReadOnlySpan<int> PenaltyCounts => _penaltyCounts.AsSpan(0, _penaltyOffsets[Count]);

    /// <summary>Where each row's banned tokens start, and (last) where they end: <see cref="Count"/> + 1 entries.</summary>
    public ReadOnlySpan<int> BanOffsets => _banOffsets.AsSpan(0, Count + 1);

    /// <summary>Banned token ids of all rows, row after row (repeats allowed).</summary>
    public ReadOnlySpan<int> BanTokens => _banTokens.AsSpan(0, _banOffsets[Count]);

    /// <summary>Row <paramref name="row"/>'s penalised tokens.</summary>
    public ReadOnlySpan<int> PenaltyTokensOf(int row) => _penaltyTokens.AsSpan(_penaltyOffsets[row], _penaltyOffsets[row + 1] - _penaltyOffsets[row]);

    /// <summary>Row <paramref name="row"/>'s generation counts, one per penalised token.</summary>
    public ReadOnlySpan<int> PenaltyCountsOf(int row) => _penaltyCounts.AsSpan(_penaltyOffsets[row], _penaltyOffsets[row + 1] - _penaltyOffsets[row]);

    /// <summary>Row <paramref name="row"/>'s banned tokens.</summary>
    public ReadOnlySpan<int> BanTokensOf(int row) => _banTokens.AsSpan(_banOffsets[row], _banOffsets[row + 1] - _banOffsets[row]);

    /// <summary>Forgets every row.</summary>
    public void Clear()
    {
        Count = 0;
        _penalties = _bans = 0;
    }

    /// <summary>Adds a penalised token, generated <paramref name="count"/> times, to the row being built.</summary>
    public void AddPenalty(int token, int count)
    {
        if (_penalties == _penaltyTokens.Length)
        {
            Array.Resize(ref _penaltyTokens, 2 * _penalties);
            Array.Resize(ref _penaltyCounts, 2 * _penalties);
        }
        _penaltyTokens[_penalties] = token;
        _penaltyCounts[_penalties++] = count;
    }

    /// <summary>Bans <paramref name="token"/> in the row being built.</summary>
    public void AddBan(int token)
    {
        if (_bans == _banTokens.Length)
            Array.Resize(ref _banTokens, 2 * _bans);
        _banTokens[_bans++] = token;
    }

    /// <summary>Ends the row being built (its tokens are those added since the previous row) with <paramref name="row"/>.</summary>
    public void EndRow(in SamplingRow row)
    {
        if (Count == _rows.Length)
        {
            Array.Resize(ref _rows, 2 * Count);
            Array.Resize(ref _penaltyOffsets, 2 * Count + 1);
            Array.Resize(ref _banOffsets, 2 * Count + 1);
        }
        _rows[Count++] = row;
        _penaltyOffsets[Count] = _penalties;
        _banOffsets[Count] = _bans;
    }
}
