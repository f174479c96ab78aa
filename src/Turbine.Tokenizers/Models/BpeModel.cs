using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Turbine.Tokenizers.Models;

/// <summary>Byte-pair encoding with merge ranks, as tokenizers' BPE model (dropout is ignored: inference is deterministic).</summary>
internal sealed class BpeModel
{
    // tokenizers caches words shorter than 256 bytes, up to 10,000 of them.
    private const int CacheCapacity = 10_000;
    private const int MaxCachedWordLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly Dictionary<long, long> _merges;
    private readonly string[] _idToToken;
    private readonly int _unkId;
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly int[]? _byteFallbackIds;
    private readonly int[]? _bmpCharIds;
    private readonly ConcurrentDictionary<string, int[]> _cache = new();
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cachedWords;
    private readonly bool _splitsBeforeSpaceMarker;

    // SentencePiece's word-start marker "▁".
    private const char SpaceMarker = '\u2581';

    [ThreadStatic] private static WordState? t_word;

    /// <param name="vocab">Token to id.</param>
    /// <param name="merges">Merge pairs in rank order.</param>
    /// <param name="unkToken">Token for unknown chars, or null (then an unknown char is an error).</param>
    /// <param name="prefix">continuing_subword_prefix, or null.</param>
    /// <param name="suffix">end_of_word_suffix, or null.</param>
    /// <param name="fuseUnk">Whether consecutive unknown chars give one unk token.</param>
    /// <param name="byteFallback">Whether unknown chars become &lt;0xXX&gt; byte tokens.</param>
    /// <param name="ignoreMerges">Whether a word found whole in the vocabulary skips merging (Llama-3).</param>
    /// <param name="fail">Builds the exception for a malformed model.</param>
    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string? unkToken, string? prefix,
        string? suffix, bool fuseUnk, bool byteFallback, bool ignoreMerges, Func<string, Exception> fail)
    {
        _vocab = vocab;
        _vocabLookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _prefix = string.IsNullOrEmpty(prefix) ? null : prefix;
        _suffix = string.IsNullOrEmpty(suffix) ? null : suffix;
        _fuseUnk = fuseUnk;
        _ignoreMerges = ignoreMerges;
        _unkId = -1;
        if (unkToken is not null && !vocab.TryGetValue(unkToken, out _unkId))
            throw fail($"model.unk_token \"{unkToken}\" is not in model.vocab");

        var maxId = -1;
        foreach (var id in vocab.Values)
        {
            if (id < 0) throw fail("model.vocab has a negative id");
            maxId = Math.Max(maxId, id);
        }
        _idToToken = new string[maxId + 1];
        foreach (var (token, id) in vocab) _idToToken[id] = token;

        _merges = new Dictionary<long, long>(merges.Count, PairComparer.Instance);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out var leftId) || !vocab.TryGetValue(right, out var rightId))
                throw fail($"model.merges[{rank}] (\"{left}\", \"{right}\") uses a token that is not in model.vocab");
            var merged = _prefix is not null && right.StartsWith(_prefix, StringComparison.Ordinal) ? left + right[_prefix.Length..] : left + right;
            if (!vocab.TryGetValue(merged, out var mergedId))
                throw fail($"model.merges[{rank}]: the merged token \"{merged}\" is not in model.vocab");
            // tokenizers keeps the first rank of a duplicated merge.
            _merges.TryAdd(PairKey(leftId, rightId), ((long)rank << 32) | (uint)mergedId);
        }

        _splitsBeforeSpaceMarker = _prefix is null && _suffix is null && !ignoreMerges && vocab.ContainsKey(SpaceMarker.ToString());
        foreach (var token in vocab.Keys)
        {
            if (!_splitsBeforeSpaceMarker) break;
            for (var i = 1; i < token.Length; i++)
            {
                if (token[i] == SpaceMarker && token[i - 1] != SpaceMarker)
                {
                    _splitsBeforeSpaceMarker = false;
                    break;
                }
            }
        }

        if (byteFallback)
        {
            _byteFallbackIds = new int[256];
            for (var b = 0; b < 256; b++) _byteFallbackIds[b] = vocab.GetValueOrDefault($"<0x{b:X2}>", -1);
        }
        if (_prefix is null && _suffix is null)
        {
            // Direct char → id table: the per-char vocabulary lookup is the inner loop of every uncached word.
            _bmpCharIds = new int[0x10000];
            Array.Fill(_bmpCharIds, -1);
            foreach (var (token, id) in vocab)
                if (token.Length == 1) _bmpCharIds[token[0]] = id;
        }
    }

    public int VocabSize => _vocab.Count;

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocabLookup.TryGetValue(token, out id);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    public void Tokenize(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (_ignoreMerges && _vocabLookup.TryGetValue(word, out var wholeId))
        {
            ids.Add(wholeId);
            return;
        }
        TokenizeCached(word, ids, mayChunk: true);
    }

    private void TokenizeCached(ReadOnlySpan<char> word, List<int> ids, bool mayChunk)
    {
        if (mayChunk && _splitsBeforeSpaceMarker)
        {
            TokenizeChunks(word, ids);
            return;
        }
        if (_cacheLookup.TryGetValue(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var state = t_word ??= new WordState();
        Split(word, state);
        MergeAll(state);
        var start = ids.Count;
        for (var i = 0; i != -1; i = state.Next[i]) ids.Add(state.Ids[i]);
        // A counter of our own: ConcurrentDictionary.Count takes every lock.
        if (word.Length < MaxCachedWordLength && Volatile.Read(ref _cachedWords) < CacheCapacity
            && _cacheLookup.TryAdd(word, ids.GetRange(start, ids.Count - start).ToArray()))
            Interlocked.Increment(ref _cachedWords);
    }

    /// <summary>Tokenizes a word in chunks that each start at a "▁" following another char.</summary>
    /// <remarks>
    /// Only used when no vocabulary token has "▁" right after another char, so no merge can ever join two chunks and
    /// the result equals merging the whole word; but each chunk is short and cacheable (Llama-2 has no pre-tokenizer
    /// and would otherwise merge a whole paragraph at once, with no cache hits).
    /// </remarks>
    private void TokenizeChunks(ReadOnlySpan<char> word, List<int> ids)
    {
        var start = 0;
        for (var i = 1; i < word.Length; i++)
        {
            if (word[i] != SpaceMarker || word[i - 1] == SpaceMarker) continue;
            TokenizeCached(word[start..i], ids, mayChunk: false);
            start = i;
        }
        TokenizeCached(word[start..], ids, mayChunk: false);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Split(ReadOnlySpan<char> word, WordState state)
    {
        state.Clear(word.Length * 4);
        var unkId = -1;
        var unkPending = false;
        var index = 0;
        while (index < word.Length)
        {
            var width = char.IsHighSurrogate(word[index]) && index + 1 < word.Length && char.IsLowSurrogate(word[index + 1]) ? 2 : 1;
            var symbol = word.Slice(index, width);
            var isFirst = index == 0;
            index += width;
            var isLast = index == word.Length;
            var id = LookupSymbol(symbol, isFirst, isLast);
            if (id >= 0)
            {
                if (unkPending)
                {
                    state.Add(unkId);
                    unkPending = false;
                }
                state.Add(id);
                continue;
            }
            if (_byteFallbackIds is not null && TryAddBytes(symbol, isFirst, state)) continue;
            if (_unkId < 0)
                throw new InvalidOperationException($"cannot tokenize \"{symbol}\": it is not in the vocabulary and the model has no unk_token");
            if (unkPending && !_fuseUnk) state.Add(unkId);
            unkId = _unkId;
            unkPending = true;
        }
        if (unkPending) state.Add(unkId);
    }

    private int LookupSymbol(ReadOnlySpan<char> symbol, bool isFirst, bool isLast)
    {
        if (_bmpCharIds is not null && symbol.Length == 1) return _bmpCharIds[symbol[0]];
        var withPrefix = !isFirst && _prefix is not null;
        var withSuffix = isLast && _suffix is not null;
        if (!withPrefix && !withSuffix) return _vocabLookup.TryGetValue(symbol, out var plain) ? plain : -1;
        var key = string.Concat(withPrefix ? _prefix : "", symbol, withSuffix ? _suffix : "");
        return _vocab.TryGetValue(key, out var id) ? id : -1;
    }

    private bool TryAddBytes(ReadOnlySpan<char> symbol, bool isFirst, WordState state)
    {
        // tokenizers falls back on the bytes of the symbol as looked up, prefix included.
        var text = !isFirst && _prefix is not null ? string.Concat(_prefix, symbol) : symbol.ToString();
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        foreach (var b in bytes)
            if (_byteFallbackIds![b] < 0) return false;
        foreach (var b in bytes) state.Add(_byteFallbackIds![b]);
        return true;
    }

    // Fully optimized from the first call: a long word (Llama-2 encodes a whole segment as one) runs this loop
    // many thousands of times in a single call, before tiered compilation would promote it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MergeAll(WordState state)
    {
        var queue = state.Queue;
        queue.Clear();
        for (var i = 0; i + 1 < state.Count; i++)
            if (_merges.TryGetValue(PairKey(state.Ids[i], state.Ids[i + 1]), out var merge)) Enqueue(queue, i, merge);

        // Lowest rank first, then leftmost position; stale entries are recognised and skipped as in tokenizers.
        while (queue.TryDequeue(out var entry, out _))
        {
            var pos = (int)(entry >> 32);
            var newId = (int)entry;
            if (state.Removed[pos]) continue;
            var nextPos = state.Next[pos];
            if (nextPos == -1) continue;
            if (!_merges.TryGetValue(PairKey(state.Ids[pos], state.Ids[nextPos]), out var current) || (int)current != newId) continue;

            state.Ids[pos] = newId;
            state.Removed[nextPos] = true;
            var after = state.Next[nextPos];
            state.Next[pos] = after;
            if (after != -1) state.Prev[after] = pos;

            var before = state.Prev[pos];
            if (before >= 0 && _merges.TryGetValue(PairKey(state.Ids[before], newId), out var left)) Enqueue(queue, before, left);
            if (after != -1 && _merges.TryGetValue(PairKey(newId, state.Ids[after]), out var right)) Enqueue(queue, pos, right);
        }
    }

    private static void Enqueue(PriorityQueue<long, long> queue, int pos, long merge)
    {
        var rank = merge >> 32;
        var newId = (int)merge;
        queue.Enqueue(((long)pos << 32) | (uint)newId, (rank << 32) | (uint)pos);
    }

    /// <summary>Hashes a (left, right) id pair well.</summary>
    /// <remarks>long's own hash XORs the halves, so pairs of ids collide massively and merging slows by 50×.</remarks>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long pair) => (int)(((ulong)pair * 0x9E3779B97F4A7C15UL) >> 32);
    }

    /// <summary>Per-thread scratch for one word: symbols as a doubly linked list over arrays.</summary>
    private sealed class WordState
    {
        public int[] Ids = new int[256];
        public int[] Prev = new int[256];
        public int[] Next = new int[256];
        public bool[] Removed = new bool[256];
        public readonly PriorityQueue<long, long> Queue = new();

        public int Count { get; private set; }

        public void Clear(int capacity)
        {
            if (capacity > Ids.Length)
            {
                Ids = new int[capacity];
                Prev = new int[capacity];
                Next = new int[capacity];
                Removed = new bool[capacity];
            }
            Count = 0;
        }

        public void Add(int id)
        {
            Ids[Count] = id;
            Prev[Count] = Count - 1;
            Next[Count] = -1;
            Removed[Count] = false;
            if (Count > 0) Next[Count - 1] = Count;
            Count++;
        }
    }
}
