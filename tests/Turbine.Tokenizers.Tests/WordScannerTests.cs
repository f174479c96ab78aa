using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers.Tests;

/// <summary>
/// The dedicated scanners against splits made by Python's <c>regex</c> module (Unicode code-point semantics, as the Rust
/// engines): astral letters and digits, emoji before letters, contractions, whitespace and line-break runs.
/// </summary>
public sealed class WordScannerTests
{
    private static readonly string[] Texts =
    [
        "😀abc 𝐀𝐁c 😀abc", "I'M HERE'S 'Re they'll", "12345 𝟘𝟙𝟚𝟛 x", "  \n\n  hi\t\tthere \r\n", "a  b   ", "𠀀𠀁中文 文字!!\n\n",
        " ?!?\n\nx", "\u00a0\u3000x  \u2028y",
    ];

    private static readonly string[][] Llama3 =
    [
        ["😀abc", " 𝐀𝐁c", " 😀", "abc"], ["I", "'M", " HERE", "'S", " '", "Re", " they", "'ll"], ["123", "45", " ", "𝟘𝟙𝟚", "𝟛", " x"],
        ["  \n\n", " ", " hi", "\t", "\tthere", " \r\n"], ["a", " ", " b", "   "], ["𠀀𠀁中文", " 文字", "!!\n\n"], [" ?!?\n\n", "x"],
        ["\u00a0", "\u3000x", "  ", "\u2028y"],
    ];

    private static readonly string[][] Qwen2 =
    [
        ["😀abc", " 𝐀𝐁c", " 😀", "abc"], ["I", "'M", " HERE", "'S", " '", "Re", " they", "'ll"],
        ["1", "2", "3", "4", "5", " ", "𝟘", "𝟙", "𝟚", "𝟛", " x"], ["  \n\n", " ", " hi", "\t", "\tthere", " \r\n"], ["a", " ", " b", "   "],
        ["𠀀𠀁中文", " 文字", "!!\n\n"], [" ?!?\n\n", "x"], ["\u00a0", "\u3000x", "  ", "\u2028y"],
    ];

    private static readonly string[][] Gpt2 =
    [
        ["😀", "abc", " 𝐀𝐁c", " 😀", "abc"], ["I", "'", "M", " HERE", "'", "S", " '", "Re", " they", "'ll"], ["12345", " 𝟘𝟙𝟚𝟛", " x"],
        ["  \n\n ", " hi", "\t", "\t", "there", " \r\n"], ["a", " ", " b", "   "], ["𠀀𠀁中文", " 文字", "!!", "\n\n"], [" ?!?", "\n", "\n", "x"],
        ["\u00a0", "\u3000", "x", "  ", "\u2028", "y"],
    ];

    private static string[] Split(string pattern, string text)
    {
        var scanner = WordScannerPattern.TryCreate(pattern);
        Assert.NotNull(scanner);
        var matches = new List<(int Start, int End)>();
        scanner.FindMatches(text, matches);
        return [.. matches.Select(m => text[m.Start..m.End])];
    }

    [Fact]
    public void Llama3Scanner_SplitsLikeTheUnicodeRegex()
    {
        for (var i = 0; i < Texts.Length; i++) Assert.Equal(Llama3[i], Split(WordScannerPattern.Llama3, Texts[i]));
    }

    [Fact]
    public void Qwen2Scanner_SplitsDigitsOneByOneLikeTheUnicodeRegex()
    {
        for (var i = 0; i < Texts.Length; i++) Assert.Equal(Qwen2[i], Split(WordScannerPattern.Qwen2, Texts[i]));
    }

    [Fact]
    public void Gpt2Scanner_SplitsLikeTheUnicodeRegex()
    {
        for (var i = 0; i < Texts.Length; i++) Assert.Equal(Gpt2[i], Split(WordScannerPattern.Gpt2, Texts[i]));
    }

    [Fact]
    public void Scanners_AreUsedOnlyForTheirExactPatterns()
    {
        Assert.Null(WordScannerPattern.TryCreate(@"\p{L}+"));
    }
}
