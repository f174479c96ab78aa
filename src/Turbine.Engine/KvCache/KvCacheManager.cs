namespace Turbine.Engine.KvCache;

/// <summary>
/// Hands out fixed-size KV blocks and keeps each sequence's block table. With reuse enabled, full blocks of prompt
/// tokens are registered under a hash of (previous block, tokens), so a later prompt with the same prefix shares
/// them (reference counted) instead of recomputing them; blocks no sequence holds stay cached and are evicted
/// least-recently-used first when the pool runs dry. Matches are verified token by token, never trusted to a hash.
/// Not thread-safe: the executor's loop thread owns it.
/// </summary>
public sealed class KvCacheManager
{
    private const int None = -1;
    private readonly Stack<int> _free;
    private readonly int[] _refCount;
    private readonly ulong[] _hash;
    private readonly int[] _parent;
    private readonly bool[] _registered;
    private readonly int[] _tokens;
    private readonly Dictionary<ulong, int> _byHash = [];
    // Intrusive doubly linked LRU list of cached blocks nobody holds: head is the least recently used.
    private readonly int[] _prev, _next;
    private int _lruHead = None, _lruTail = None;

    /// <summary>A pool of <paramref name="totalBlocks"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    public KvCacheManager(int totalBlocks, int blockSize, bool enableReuse = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        TotalBlocks = totalBlocks;
        BlockSize = blockSize;
        ReuseEnabled = enableReuse;
        _free = new Stack<int>(totalBlocks);
        for (int b = totalBlocks - 1; b >= 0; b--)
            _free.Push(b);
        _refCount = new int[totalBlocks];
        _hash = new ulong[totalBlocks];
        _parent = new int[totalBlocks];
        _registered = new bool[totalBlocks];
        _tokens = enableReuse ? new int[(long)totalBlocks * blockSize] : [];
        _prev = new int[totalBlocks];
        _next = new int[totalBlocks];
    }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }
    /// <summary>Blocks in the pool.</summary>
    public int TotalBlocks { get; }
    /// <summary>Whether prompt prefixes are shared between sequences.</summary>
    public bool ReuseEnabled { get; }
    /// <summary>Blocks a new reservation can take: empty ones plus cached ones nobody holds.</summary>
    public int FreeBlocks => _free.Count + CachedBlocks;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks => TotalBlocks - FreeBlocks;
    /// <summary>Blocks that hold a reusable prefix but no sequence.</summary>
    public int CachedBlocks { get; private set; }
    /// <summary>Prompt blocks found in the cache, since start.</summary>
    public long ReuseHits { get; private set; }

    /// <summary>Blocks needed to hold <paramref name="tokens"/> tokens.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>
    /// Gives an empty <paramref name="sequence"/> the cached blocks of the longest prefix of <paramref name="prompt"/>
    /// that is in the cache, leaving at least one prompt token to compute. Returns the tokens covered.
    /// </summary>
    public int AttachCachedPrefix(SequenceBlocks sequence, ReadOnlySpan<int> prompt)
    {
        if (!ReuseEnabled || sequence.Count != 0)
            return 0;
        int parent = None;
        ulong parentHash = 0;
        int full = (prompt.Length - 1) / BlockSize;
        for (int i = 0; i < full; i++)
        {
            var chunk = prompt.Slice(i * BlockSize, BlockSize);
            ulong h = Hash(parentHash, chunk);
            if (!_byHash.TryGetValue(h, out int block) || _parent[block] != parent || !_tokens.AsSpan(block * BlockSize, BlockSize).SequenceEqual(chunk))
                break;
            Acquire(block);
            sequence.Append(block);
            parent = block;
            parentHash = h;
            ReuseHits++;
        }
        return sequence.Count * BlockSize;
    }

    /// <summary>
    /// Registers the full blocks of <paramref name="sequence"/> that hold the first <paramref name="computed"/> of
    /// <paramref name="tokens"/>, so later prompts can reuse them. Call after their K/V were written.
    /// </summary>
    public void RegisterComputed(SequenceBlocks sequence, ReadOnlySpan<int> tokens, int computed)
    {
        if (!ReuseEnabled)
            return;
        int full = Math.Min(computed / BlockSize, sequence.Count);
        int parent = None;
        ulong parentHash = 0;
        for (int i = 0; i < full; i++)
        {
            int block = sequence.Table[i];
            var chunk = tokens.Slice(i * BlockSize, BlockSize);
            ulong h = Hash(parentHash, chunk);
            if (!_registered[block])
            {
                if (_byHash.ContainsKey(h))
                    return; // The same content lives in another block already; keep that one as the cached copy.
                _byHash[h] = block;
                _hash[block] = h;
                _parent[block] = parent;
                chunk.CopyTo(_tokens.AsSpan(block * BlockSize, BlockSize));
                _registered[block] = true;
            }
            parent = block;
            parentHash = h;
        }
    }

    /// <summary>Grows <paramref name="sequence"/>'s table to cover <paramref name="tokens"/> tokens; false (and no change) when the pool is short.</summary>
    public bool TryReserve(SequenceBlocks sequence, int tokens)
    {
        int need = BlocksFor(tokens) - sequence.Count;
        if (need <= 0)
            return true;
        if (need > FreeBlocks)
            return false;
        for (int i = 0; i < need; i++)
        {
            int block = TakeEmptyBlock();
            _refCount[block] = 1;
            sequence.Append(block);
        }
        return true;
    }

    /// <summary>Gives the empty <paramref name="destination"/> the same blocks as <paramref name="source"/>, shared (a beam forking from its parent).</summary>
    public void Share(SequenceBlocks source, SequenceBlocks destination)
    {
        if (destination.Count != 0)
            throw new InvalidOperationException("a sequence can only share into an empty block table");
        for (int i = 0; i < source.Count; i++)
        {
            _refCount[source.Table[i]]++;
            destination.Append(source.Table[i]);
        }
    }

    /// <summary>
    /// Makes block <paramref name="index"/> of <paramref name="sequence"/> its own before it is written: a block shared
    /// with another sequence is replaced by a fresh one, whose contents the caller must copy from <paramref name="copyFrom"/>.
    /// Returns false when no block is free; <paramref name="copyFrom"/> is -1 when nothing needs copying.
    /// </summary>
    public bool TryMakeWritable(SequenceBlocks sequence, int index, out int copyFrom)
    {
        copyFrom = None;
        int block = sequence.Table[index];
        if (_refCount[block] == 1 && !_registered[block])
            return true;
        if (FreeBlocks == 0)
            return false;
        int fresh = TakeEmptyBlock();
        _refCount[fresh] = 1;
        if (--_refCount[block] == 0)
        {
            LinkTail(block);
            CachedBlocks++;
        }
        sequence.Table[index] = fresh;
        copyFrom = block;
        return true;
    }

    /// <summary>Returns every block of <paramref name="sequence"/>: unshared ones go back to the pool, registered ones stay cached.</summary>
    public void Release(SequenceBlocks sequence)
    {
        for (int i = sequence.Count - 1; i >= 0; i--)
        {
            int block = sequence.Table[i];
            if (--_refCount[block] > 0)
                continue;
            if (_registered[block])
            {
                LinkTail(block);
                CachedBlocks++;
            }
            else
                _free.Push(block);
        }
        sequence.Clear();
    }

    private void Acquire(int block)
    {
        if (_refCount[block]++ == 0)
        {
            Unlink(block);
            CachedBlocks--;
        }
    }

    private int TakeEmptyBlock()
    {
        if (_free.Count > 0)
            return _free.Pop();
        // Evict the least recently released cached block.
        int block = _lruHead;
        Unlink(block);
        CachedBlocks--;
        _byHash.Remove(_hash[block]);
        _registered[block] = false;
        return block;
    }

    private void LinkTail(int block)
    {
        _prev[block] = _lruTail;
        _next[block] = None;
        if (_lruTail != None)
            _next[_lruTail] = block;
        else
            _lruHead = block;
        _lruTail = block;
    }

    private void Unlink(int block)
    {
        int p = _prev[block], n = _next[block];
        if (p != None) _next[p] = n; else _lruHead = n;
        if (n != None) _prev[n] = p; else _lruTail = p;
    }

    private static ulong Hash(ulong parent, ReadOnlySpan<int> tokens)
    {
        // FNV-1a over the parent hash and the tokens: cheap, and matches are verified against the stored tokens.
        ulong h = 14695981039346656037UL ^ parent;
        foreach (int t in tokens)
        {
            h ^= (uint)t;
            h *= 1099511628211UL;
        }
        return h;
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
