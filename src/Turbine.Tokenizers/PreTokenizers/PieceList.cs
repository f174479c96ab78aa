namespace Turbine.Tokenizers.PreTokenizers;

/// <summary>The pieces of a segment as pre-tokenizers cut it: one reusable char buffer plus (start, length) ranges.</summary>
/// <remarks>Reused across calls (one per thread and stage) so pre-tokenizing allocates nothing in steady state.</remarks>
internal sealed class PieceList
{
    private char[] _chars = new char[1024];
    private int _used;
    private (int Start, int Length)[] _pieces = new (int, int)[128];

    public int Count { get; private set; }

    public ReadOnlySpan<char> this[int index]
    {
        get
        {
            var (start, length) = _pieces[index];
            return _chars.AsSpan(start, length);
        }
    }

    public void Clear()
    {
        _used = 0;
        Count = 0;
    }

    /// <summary>Adds a copy of <paramref name="text"/> as a new piece; empty text adds nothing.</summary>
    public void Add(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return;
        text.CopyTo(Reserve(text.Length));
        Commit(text.Length);
    }

    /// <summary>Space for a piece of at most <paramref name="maxLength"/> chars; finish with <see cref="Commit"/>.</summary>
    public Span<char> Reserve(int maxLength)
    {
        if (_used + maxLength > _chars.Length) Array.Resize(ref _chars, Math.Max(_chars.Length * 2, _used + maxLength));
        return _chars.AsSpan(_used, maxLength);
    }

    /// <summary>Adds the first <paramref name="length"/> chars written into the last <see cref="Reserve"/>d span.</summary>
    public void Commit(int length)
    {
        if (length == 0) return;
        if (Count == _pieces.Length) Array.Resize(ref _pieces, _pieces.Length * 2);
        _pieces[Count++] = (_used, length);
        _used += length;
    }
}
