using System.Buffers;
using System.Text;

namespace Turbine.Tokenizers.AddedTokens;

/// <summary>Finds added tokens in text: leftmost match, longest content first, as tokenizers' Aho-Corasick LeftmostLongest.</summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Content, AddedToken Token)[]> _byFirstChar = [];
    private readonly SearchValues<char> _firstChars;

    /// <param name="tokens">The tokens with the text to look for (content, normalized where the token says so).</param>
    public AddedTokenMatcher(IEnumerable<(string Content, AddedToken Token)> tokens)
    {
        var groups = new Dictionary<char, List<(string, AddedToken)>>();
        foreach (var (content, token) in tokens)
        {
            if (content.Length == 0) continue;
            if (!groups.TryGetValue(content[0], out var list)) groups[content[0]] = list = [];
            list.Add((content, token));
        }
        foreach (var (first, list) in groups)
        {
            list.Sort((a, b) => b.Item1.Length.CompareTo(a.Item1.Length));
            _byFirstChar[first] = [.. list];
        }
        _firstChars = SearchValues.Create([.. groups.Keys]);
        IsEmpty = groups.Count == 0;
    }

    public bool IsEmpty { get; }

    /// <summary>Appends (start, end, token id) for <paramref name="text"/>: plain stretches carry id -1.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int End, int TokenId)> segments)
    {
        var consumed = 0;
        var search = 0;
        while (search < text.Length)
        {
            var found = text[search..].IndexOfAny(_firstChars);
            if (found < 0) break;
            var start = search + found;
            var match = LongestAt(text, start);
            if (match is null)
            {
                search = start + 1;
                continue;
            }
            var (content, token) = match.Value;
            var stop = start + content.Length;
            search = stop;
            if (token.SingleWord && (EndsWithWordChar(text[..start]) || StartsWithWordChar(text[stop..]))) continue;
            if (token.LStrip)
            {
                var newStart = start;
                while (newStart > consumed && char.IsWhiteSpace(text[newStart - 1])) newStart--;
                start = newStart;
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop])) stop++;
                search = stop;
            }
            if (start > consumed) segments.Add((consumed, start, -1));
            segments.Add((start, stop, token.Id));
            consumed = stop;
        }
        if (consumed < text.Length) segments.Add((consumed, text.Length, -1));
    }

    private (string Content, AddedToken Token)? LongestAt(ReadOnlySpan<char> text, int start)
    {
        foreach (var candidate in _byFirstChar[text[start]])
            if (text[start..].StartsWith(candidate.Content, StringComparison.Ordinal)) return candidate;
        return null;
    }

    private static bool IsWordChar(Rune rune) => Rune.IsLetterOrDigit(rune) || rune.Value == '_';

    private static bool EndsWithWordChar(ReadOnlySpan<char> text) =>
        !text.IsEmpty && Rune.DecodeLastFromUtf16(text, out var rune, out _) == OperationStatus.Done && IsWordChar(rune);

    private static bool StartsWithWordChar(ReadOnlySpan<char> text) =>
        !text.IsEmpty && Rune.DecodeFromUtf16(text, out var rune, out _) == OperationStatus.Done && IsWordChar(rune);
}
