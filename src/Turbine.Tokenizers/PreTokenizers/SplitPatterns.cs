using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Turbine.Tokenizers.PreTokenizers;

/// <summary>Finds non-overlapping, non-empty matches left to right (a Split/Replace "pattern" of tokenizer.json).</summary>
internal interface ISplitPattern
{
    void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches);

    string Replace(string text, string content)
    {
        var matches = new List<(int Start, int End)>();
        FindMatches(text, matches);
        if (matches.Count == 0) return text;
        var builder = new StringBuilder(text.Length + matches.Count * content.Length);
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            builder.Append(text.AsSpan(previous, start - previous)).Append(content);
            previous = end;
        }
        return builder.Append(text.AsSpan(previous)).ToString();
    }

    /// <summary>The pattern for a tokenizer.json {"String": ...} or {"Regex": ...}; known word-splitting regexes get a dedicated scanner.</summary>
    static ISplitPattern Create(string? literal, string? regex)
    {
        if (literal is not null) return new LiteralPattern(literal);
        return (ISplitPattern?)WordScannerPattern.TryCreate(regex!) ?? new RegexPattern(regex!);
    }
}

/// <summary>A literal string.</summary>
internal sealed class LiteralPattern(string literal) : ISplitPattern
{
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        if (literal.Length == 0) return;
        var offset = 0;
        while (true)
        {
            var index = text[offset..].IndexOf(literal, StringComparison.Ordinal);
            if (index < 0) return;
            matches.Add((offset + index, offset + index + literal.Length));
            offset += index + literal.Length;
        }
    }

    public string Replace(string text, string content) => text.Replace(literal, content, StringComparison.Ordinal);
}

/// <summary>A .NET regular expression; Hugging Face patterns use the common Perl/Oniguruma subset .NET understands.</summary>
internal sealed class RegexPattern(string pattern) : ISplitPattern
{
    private readonly Regex _regex = new(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        foreach (var match in _regex.EnumerateMatches(text))
            if (match.Length > 0) matches.Add((match.Index, match.Index + match.Length));
    }
}

/// <summary>
/// Hand-written matcher for the GPT-2 (ByteLevel use_regex) and Llama-3/Qwen2 word-splitting regexes.
/// </summary>
/// <remarks>
/// .NET Regex classifies UTF-16 code units, so an astral letter would not be <c>\p{L}</c> and a surrogate pair could be
/// split or joined differently from the Rust regex engines; this scanner classifies whole code points and is faster.
/// </remarks>
internal sealed class WordScannerPattern : ISplitPattern
{
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private enum Kind : byte { Other, Letter, Number, Space }

    private static readonly Kind[] AsciiKinds = CreateAsciiKinds();

    private readonly bool _gpt2;
    private readonly int _maxDigits;

    private WordScannerPattern(bool gpt2, int maxDigits)
    {
        _gpt2 = gpt2;
        _maxDigits = maxDigits;
    }

    public static WordScannerPattern GptTwo { get; } = new(true, int.MaxValue);

    public static WordScannerPattern? TryCreate(string regex) => regex switch
    {
        Gpt2 => GptTwo,
        Llama3 => new WordScannerPattern(false, 3),
        Qwen2 => new WordScannerPattern(false, 1),
        _ => null,
    };

    private static Kind[] CreateAsciiKinds()
    {
        var kinds = new Kind[128];
        for (var c = 0; c < 128; c++) kinds[c] = Classify(new Rune(c));
        return kinds;
    }

    private static Kind Classify(Rune rune) =>
        Rune.IsLetter(rune) ? Kind.Letter : Rune.IsNumber(rune) ? Kind.Number : Rune.IsWhiteSpace(rune) ? Kind.Space : Kind.Other;

    private static Kind KindAt(ReadOnlySpan<char> text, int index, out int width)
    {
        var c = text[index];
        width = 1;
        if (c < 128) return AsciiKinds[c];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            width = 2;
            return Classify(new Rune(c, text[index + 1]));
        }
        return char.IsSurrogate(c) ? Kind.Other : Classify(new Rune(c));
    }

    private static int ScanRun(ReadOnlySpan<char> text, int index, Kind kind)
    {
        while (index < text.Length && KindAt(text, index, out var width) == kind) index += width;
        return index;
    }

    private static bool IsNewline(char c) => c is '\r' or '\n';

    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        var index = 0;
        while (index < text.Length)
        {
            var end = _gpt2 ? MatchGpt2(text, index) : MatchLlama3(text, index);
            matches.Add((index, end));
            index = end;
        }
    }

    private static int Contraction(ReadOnlySpan<char> text, int index, bool ignoreCase)
    {
        if (text[index] != '\'' || index + 1 >= text.Length) return 0;
        var first = Fold(text[index + 1], ignoreCase);
        if (first is 's' or 't' or 'm' or 'd') return 2;
        if (index + 2 >= text.Length) return 0;
        var second = Fold(text[index + 2], ignoreCase);
        return (first, second) is ('r', 'e') or ('v', 'e') or ('l', 'l') ? 3 : 0;
    }

    // (?i) in the Rust engines uses Unicode simple case folding: LATIN SMALL LETTER LONG S folds to 's'.
    private static char Fold(char c, bool ignoreCase) =>
        !ignoreCase ? c : c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c == '\u017F' ? 's' : c;

    private static int MatchWhitespace(ReadOnlySpan<char> text, int index, bool newlineRule)
    {
        var end = ScanRun(text, index, Kind.Space);
        if (newlineRule)
        {
            // \s*[\r\n]+ : the whitespace run up to and including its last line break.
            for (var k = end - 1; k >= index; k--)
                if (IsNewline(text[k])) return k + 1;
        }
        // \s+(?!\S) leaves the last space to the next word; \s+ takes a lone space.
        if (end == text.Length || end - index == 1) return end;
        return end - 1;
    }

    private static int MatchGpt2(ReadOnlySpan<char> text, int index)
    {
        var contraction = Contraction(text, index, ignoreCase: false);
        if (contraction > 0) return index + contraction;
        var start = index;
        if (text[index] == ' ' && index + 1 < text.Length && KindAt(text, index + 1, out _) != Kind.Space) start = index + 1;
        var kind = KindAt(text, start, out _);
        return kind == Kind.Space ? MatchWhitespace(text, index, newlineRule: false) : ScanRun(text, start, kind);
    }

    private int MatchLlama3(ReadOnlySpan<char> text, int index)
    {
        var contraction = Contraction(text, index, ignoreCase: true);
        if (contraction > 0) return index + contraction;
        var kind = KindAt(text, index, out var width);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (kind == Kind.Letter) return ScanRun(text, index, Kind.Letter);
        if (kind != Kind.Number && !IsNewline(text[index]) && index + width < text.Length && KindAt(text, index + width, out _) == Kind.Letter)
            return ScanRun(text, index + width, Kind.Letter);
        // \p{N}{1,maxDigits}
        if (kind == Kind.Number)
        {
            var end = index;
            for (var count = 0; count < _maxDigits && end < text.Length && KindAt(text, end, out var w) == Kind.Number; count++) end += w;
            return end;
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var start = index;
        if (text[index] == ' ' && index + 1 < text.Length && KindAt(text, index + 1, out _) == Kind.Other) start = index + 1;
        if (KindAt(text, start, out _) == Kind.Other)
        {
            var end = ScanRun(text, start, Kind.Other);
            while (end < text.Length && IsNewline(text[end])) end++;
            return end;
        }
        return MatchWhitespace(text, index, newlineRule: true);
    }
}
