using System.Buffers;
using System.Text;

namespace Turbine.Tokenizers.PreTokenizers;

/// <summary>Cuts (and possibly rewrites) the pieces of a normalized segment into the words the model tokenizes.</summary>
internal interface IPreTokenizer
{
    /// <summary>Reads every piece of <paramref name="input"/> and appends the results to <paramref name="output"/>.</summary>
    /// <param name="input">Pieces to cut.</param>
    /// <param name="output">Receives the resulting pieces.</param>
    /// <param name="segmentStartsText">Whether the first input piece begins the whole encoded text (Metaspace "first").</param>
    void PreTokenize(PieceList input, PieceList output, bool segmentStartsText);
}

/// <summary>What Split does with the pattern's matches (tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>Shared splitting logic: turns matches into pieces according to a <see cref="SplitBehavior"/>.</summary>
internal static class Splitter
{
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;
    [ThreadStatic] private static List<(int Start, int End, bool IsMatch)>? t_parts;

    public static void Split(ReadOnlySpan<char> text, ISplitPattern pattern, SplitBehavior behavior, bool invert, PieceList output)
    {
        var matches = t_matches ??= [];
        matches.Clear();
        pattern.FindMatches(text, matches);
        var parts = t_parts ??= [];
        parts.Clear();
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previous) parts.Add((previous, start, invert));
            parts.Add((start, end, !invert));
            previous = end;
        }
        if (previous < text.Length) parts.Add((previous, text.Length, invert));
        Emit(text, parts, behavior, output);
    }

    public static void Split(ReadOnlySpan<char> text, Func<Rune, bool> isDelimiter, SplitBehavior behavior, PieceList output)
    {
        var parts = t_parts ??= [];
        parts.Clear();
        var index = 0;
        while (index < text.Length)
        {
            Rune.DecodeFromUtf16(text[index..], out var rune, out var width);
            var isMatch = isDelimiter(rune);
            // Each delimiter char is its own match, as with tokenizers' char-predicate patterns.
            if (!isMatch && parts.Count > 0 && !parts[^1].IsMatch) parts[^1] = (parts[^1].Start, index + width, false);
            else parts.Add((index, index + width, isMatch));
            index += width;
        }
        Emit(text, parts, behavior, output);
    }

    private static void Emit(ReadOnlySpan<char> text, List<(int Start, int End, bool IsMatch)> parts, SplitBehavior behavior, PieceList output)
    {
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var (start, end, _) in parts) output.Add(text[start..end]);
                break;
            case SplitBehavior.Removed:
                foreach (var (start, end, isMatch) in parts)
                    if (!isMatch) output.Add(text[start..end]);
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var pieceStart = -1;
                var pieceEnd = 0;
                var previousMatch = false;
                foreach (var (start, end, isMatch) in parts)
                {
                    if (isMatch && !previousMatch && pieceStart >= 0)
                    {
                        pieceEnd = end;
                    }
                    else
                    {
                        if (pieceStart >= 0) output.Add(text[pieceStart..pieceEnd]);
                        (pieceStart, pieceEnd) = (start, end);
                    }
                    previousMatch = isMatch;
                }
                if (pieceStart >= 0) output.Add(text[pieceStart..pieceEnd]);
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                // Mirror of MergedWithPrevious, walking from the end.
                var ranges = ArrayPool<(int, int)>.Shared.Rent(parts.Count);
                var count = 0;
                var previousMatch = false;
                for (var i = parts.Count - 1; i >= 0; i--)
                {
                    var (start, end, isMatch) = parts[i];
                    if (isMatch && !previousMatch && count > 0) ranges[count - 1] = (start, ranges[count - 1].Item2);
                    else ranges[count++] = (start, end);
                    previousMatch = isMatch;
                }
                for (var i = count - 1; i >= 0; i--) output.Add(text[ranges[i].Item1..ranges[i].Item2]);
                ArrayPool<(int, int)>.Shared.Return(ranges);
                break;
            }
            case SplitBehavior.Contiguous:
            {
                var pieceStart = -1;
                var pieceEnd = 0;
                var previousMatch = false;
                foreach (var (start, end, isMatch) in parts)
                {
                    if (isMatch == previousMatch && pieceStart >= 0)
                    {
                        pieceEnd = end;
                    }
                    else
                    {
                        if (pieceStart >= 0) output.Add(text[pieceStart..pieceEnd]);
                        (pieceStart, pieceEnd) = (start, end);
                    }
                    previousMatch = isMatch;
                }
                if (pieceStart >= 0) output.Add(text[pieceStart..pieceEnd]);
                break;
            }
        }
    }
}

/// <summary>Splits on a string or regex pattern.</summary>
internal sealed class SplitPreTokenizer(ISplitPattern pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        for (var i = 0; i < input.Count; i++) Splitter.Split(input[i], pattern, behavior, invert, output);
    }
}

/// <summary>GPT-2 byte-level: optional prefix space, optional GPT-2 word split, then every UTF-8 byte mapped to a printable char.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    [ThreadStatic] private static PieceList? t_split;
    [ThreadStatic] private static char[]? t_prefixed;

    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        var words = input;
        if (addPrefixSpace || useRegex)
        {
            words = t_split ??= new PieceList();
            words.Clear();
            for (var i = 0; i < input.Count; i++)
            {
                var piece = input[i];
                if (addPrefixSpace && piece[0] != ' ')
                {
                    var prefixed = t_prefixed is { } buffer && buffer.Length > piece.Length ? buffer : t_prefixed = new char[piece.Length * 2 + 16];
                    prefixed[0] = ' ';
                    piece.CopyTo(prefixed.AsSpan(1));
                    piece = prefixed.AsSpan(0, piece.Length + 1);
                }
                if (useRegex) Splitter.Split(piece, WordScannerPattern.GptTwo, SplitBehavior.Isolated, false, words);
                else words.Add(piece);
            }
        }
        for (var i = 0; i < words.Count; i++) MapBytes(words[i], output);
    }

    /// <summary>Appends <paramref name="word"/>'s UTF-8 bytes as byte-level chars.</summary>
    public static void MapBytes(ReadOnlySpan<char> word, PieceList output)
    {
        var maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
        byte[]? rented = null;
        var bytes = maxBytes <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        var count = Encoding.UTF8.GetBytes(word, bytes);
        var target = output.Reserve(count);
        var table = ByteLevelAlphabet.ByteToChar;
        for (var i = 0; i < count; i++) target[i] = table[bytes[i]];
        output.Commit(count);
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
    }
}

/// <summary>GPT-2's reversible map between bytes and printable chars.</summary>
internal static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = CreateByteToChar();

    /// <summary>Byte for each byte-level char, or -1; indexed by char below 512.</summary>
    public static readonly short[] CharToByte = CreateCharToByte();

    private static char[] CreateByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static short[] CreateCharToByte()
    {
        var map = new short[512];
        Array.Fill(map, (short)-1);
        for (var b = 0; b < 256; b++) map[ByteToChar[b]] = (short)b;
        return map;
    }
}

/// <summary>SentencePiece style: spaces become the replacement char ("▁"), optionally prepended, then split before each.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : IPreTokenizer
{
    [ThreadStatic] private static PieceList? t_replaced;
    private readonly LiteralPattern _delimiter = new(replacement.ToString());

    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        var target = split ? (t_replaced ??= new PieceList()) : output;
        if (split) target.Clear();
        for (var i = 0; i < input.Count; i++)
        {
            var piece = input[i];
            var prepend = prependScheme switch
            {
                "always" => true,
                "first" => i == 0 && segmentStartsText,
                _ => false,
            };
            // A leading space becomes the replacement char, so it already counts as the prefix.
            if (prepend && (piece[0] == ' ' || piece[0] == replacement)) prepend = false;
            var span = target.Reserve(piece.Length + 1);
            var length = 0;
            if (prepend) span[length++] = replacement;
            foreach (var c in piece) span[length++] = c == ' ' ? replacement : c;
            target.Commit(length);
        }
        if (!split) return;
        for (var i = 0; i < target.Count; i++) Splitter.Split(target[i], _delimiter, SplitBehavior.MergedWithNext, false, output);
    }
}

/// <summary>Splits digits from the rest, each on its own or as contiguous runs.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : IPreTokenizer
{
    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        var behavior = individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous;
        for (var i = 0; i < input.Count; i++) Splitter.Split(input[i], Rune.IsNumber, behavior, output);
    }
}

/// <summary>Whitespace (<c>\w+|[^\w\s]+</c>) or WhitespaceSplit (on whitespace only).</summary>
internal sealed class WhitespacePreTokenizer(bool splitOnWhitespaceOnly) : IPreTokenizer
{
    private static readonly RegexPattern Words = new(@"\w+|[^\w\s]+");

    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        for (var i = 0; i < input.Count; i++)
        {
            if (splitOnWhitespaceOnly) Splitter.Split(input[i], Rune.IsWhiteSpace, SplitBehavior.Removed, output);
            else Splitter.Split(input[i], Words, SplitBehavior.Removed, invert: true, output);
        }
    }
}

/// <summary>Applies pre-tokenizers in order.</summary>
internal sealed class SequencePreTokenizer(IPreTokenizer[] preTokenizers) : IPreTokenizer
{
    private readonly ThreadLocal<PieceList[]> _scratch = new(() => [new PieceList(), new PieceList()]);

    public void PreTokenize(PieceList input, PieceList output, bool segmentStartsText)
    {
        if (preTokenizers.Length == 0)
        {
            for (var i = 0; i < input.Count; i++) output.Add(input[i]);
            return;
        }
        var scratch = _scratch.Value!;
        var current = input;
        for (var i = 0; i < preTokenizers.Length; i++)
        {
            var target = i == preTokenizers.Length - 1 ? output : scratch[i % 2];
            if (target != output) target.Clear();
            preTokenizers[i].PreTokenize(current, target, segmentStartsText);
            current = target;
        }
    }
}
