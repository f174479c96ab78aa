using System.Runtime.InteropServices;

namespace Turbine.Tokenizers;

/// <summary>
/// Streams the text of generated ids: <see cref="Push"/> one id at a time and get the new text.
/// </summary>
/// <remarks>
/// Decodes a short window (the tokens since the last emitted text plus the ones before it, for context) and emits
/// what the new tokens added. Text ending in U+FFFD is held back because a later byte token may complete the
/// character; <see cref="Flush"/> releases it at the end. Every delta concatenated equals
/// <see cref="Tokenizer.Decode(ReadOnlySpan{int}, bool)"/> of all ids, including decoders (Llama-2's Strip,
/// Metaspace) that treat the first token specially, because both texts compared start at the same token.
/// </remarks>
public sealed class IncrementalDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<int> _ids = [];
    private int _prefixOffset;
    private int _readOffset;

    internal IncrementalDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>All ids pushed so far.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>Adds one id and returns the text it completes (possibly empty).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        var ids = CollectionsMarshal.AsSpan(_ids);
        var prefixText = _tokenizer.Decode(ids[_prefixOffset.._readOffset], _skipSpecialTokens);
        var newText = _tokenizer.Decode(ids[_prefixOffset..], _skipSpecialTokens);
        if (newText.Length <= prefixText.Length || newText[^1] == '\uFFFD' || !newText.StartsWith(prefixText, StringComparison.Ordinal))
            return "";
        _prefixOffset = _readOffset;
        _readOffset = _ids.Count;
        return newText[prefixText.Length..];
    }

    /// <summary>Returns the text still held back (e.g. a final U+FFFD that no later token will complete).</summary>
    public string Flush()
    {
        var ids = CollectionsMarshal.AsSpan(_ids);
        var prefixText = _tokenizer.Decode(ids[_prefixOffset.._readOffset], _skipSpecialTokens);
        var newText = _tokenizer.Decode(ids[_prefixOffset..], _skipSpecialTokens);
        _prefixOffset = _readOffset = _ids.Count;
        return newText.Length > prefixText.Length ? newText[prefixText.Length..] : "";
    }
}
