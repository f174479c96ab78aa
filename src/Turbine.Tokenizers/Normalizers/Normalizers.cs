using System.Text;
using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers.Normalizers;

/// <summary>Rewrites the text of a segment (the part between added tokens) before pre-tokenization.</summary>
/// <remarks>Works on whole segments, so allocating the result string costs once per segment, not per word.</remarks>
internal interface INormalizer
{
    string Normalize(string text);
}

/// <summary>NFC, NFD, NFKC or NFKD.</summary>
internal sealed class UnicodeFormNormalizer(NormalizationForm form) : INormalizer
{
    public string Normalize(string text) => UnicodeNormalization.Normalize(text, form);
}

/// <summary>Lowercases every character.</summary>
internal sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => text.ToLowerInvariant();
}

/// <summary>Prepends a fixed string to non-empty text (Llama-2's "▁").</summary>
internal sealed class PrependNormalizer(string prefix) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : string.Concat(prefix, text);
}

/// <summary>Replaces every match of a pattern with fixed content.</summary>
internal sealed class ReplaceNormalizer(ISplitPattern pattern, string content) : INormalizer
{
    public string Normalize(string text) => pattern.Replace(text, content);
}

/// <summary>Strips whitespace on the left and/or right.</summary>
internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text)
    {
        var span = text.AsSpan();
        if (left) span = span.TrimStart();
        if (right) span = span.TrimEnd();
        return span.Length == text.Length ? text : span.ToString();
    }
}

/// <summary>Removes combining marks after canonical decomposition.</summary>
internal sealed class StripAccentsNormalizer : INormalizer
{
    public string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
            if (Rune.GetUnicodeCategory(rune) != System.Globalization.UnicodeCategory.NonSpacingMark) builder.Append(rune.ToString());
        return builder.ToString();
    }
}

/// <summary>Applies normalizers in order.</summary>
internal sealed class SequenceNormalizer(INormalizer[] normalizers) : INormalizer
{
    public string Normalize(string text)
    {
        foreach (var normalizer in normalizers) text = normalizer.Normalize(text);
        return text;
    }
}
