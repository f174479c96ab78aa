namespace Turbine.Engine.KvCache;

/// <summary>
/// Hands out fixed-size KV blocks from a pool of <see cref="TotalBlocks"/> and keeps each sequence's block table.
/// Reservation is all-or-nothing, so a sequence never holds part of what a step needs.
/// </summary>
public sealed class KvCacheManager
{
    private readonly Stack<int> _free;

    /// <summary>A pool of <paramref name="totalBlocks"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    public KvCacheManager(int totalBlocks, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        TotalBlocks = totalBlocks;
        BlockSize = blockSize;
        _free = new Stack<int>(totalBlocks);
        for (int b = totalBlocks - 1; b >= 0; b--)
            _free.Push(b);
    }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }
    /// <summary>Blocks in the pool.</summary>
    public int TotalBlocks { get; }
    /// <summary>Blocks not held by any sequence.</summary>
    public int FreeBlocks => _free.Count;
    /// <summary>Blocks held by sequences.</summary>
    public int UsedBlocks => TotalBlocks - _free.Count;

    /// <summary>Blocks needed to hold <paramref name="tokens"/> tokens.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>Grows <paramref name="sequence"/>'s table to cover <paramref name="tokens"/> tokens; false (and no change) when the pool is short.</summary>
    public bool TryReserve(SequenceBlocks sequence, int tokens)
    {
        int need = BlocksFor(tokens) - sequence.Count;
        if (need <= 0)
            return true;
        if (need > _free.Count)
            return false;
        for (int i = 0; i < need; i++)
            sequence.Append(_free.Pop());
        return true;
    }

    /// <summary>Returns every block of <paramref name="sequence"/> to the pool.</summary>
    public void Release(SequenceBlocks sequence)
    {
        for (int i = sequence.Count - 1; i >= 0; i--)
            _free.Push(sequence.Table[i]);
        sequence.Clear();
    }
}

/// <summary>A sequence's block table: block ids in order, the i-th covering tokens [i·blockSize, (i+1)·blockSize).</summary>
public sealed class SequenceBlocks
{
    private int[] _table = new int[4];

    /// <summary>Block ids; entries past <see cref="Count"/> are unused.</summary>
    public int[] Table => _table;

    /// <summary>Blocks held.</summary>
    public int Count { get; private set; }

    internal void Append(int block)
    {
        if (Count == _table.Length)
            Array.Resize(ref _table, _table.Length * 2);
        _table[Count++] = block;
    }

    internal void Clear() => Count = 0;
}
