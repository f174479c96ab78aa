using System.Text;
using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers.Decoders;

/// <summary>Turns token strings back into text; each decoder rewrites the list in place (tokenizers' decode_chain).</summary>
internal interface IDecoder
{
    void DecodeChain(List<string> tokens);
}

/// <summary>Maps byte-level chars back to bytes and decodes them as UTF-8, invalid sequences becoming U+FFFD.</summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>(tokens.Count * 4);
        foreach (var token in tokens)
        {
            var start = bytes.Count;
            var mapped = true;
            foreach (var c in token)
            {
                var b = c < 512 ? ByteLevelAlphabet.CharToByte[c] : (short)-1;
                if (b < 0)
                {
                    mapped = false;
                    break;
                }
                bytes.Add((byte)b);
            }
            if (mapped) continue;
            // A token outside the byte-level alphabet (an added token such as "<think>" in CJK) stands for its own UTF-8.
            bytes.RemoveRange(start, bytes.Count - start);
            bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        tokens.Clear();
        tokens.Add(Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)));
    }
}

/// <summary>Replaces a pattern in every token.</summary>
internal sealed class ReplaceDecoder(ISplitPattern pattern, string content) : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        for (var i = 0; i < tokens.Count; i++) tokens[i] = pattern.Replace(tokens[i], content);
    }
}

/// <summary>Turns runs of &lt;0xXX&gt; tokens into their UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8.</summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    public void DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (TryParseByte(token, out var b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        tokens.Clear();
        tokens.AddRange(result);
    }

    private static bool TryParseByte(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0) return;
        try
        {
            result.Add(StrictUtf8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending)));
        }
        catch (DecoderFallbackException)
        {
            for (var i = 0; i < pending.Count; i++) result.Add("\uFFFD");
        }
        pending.Clear();
    }
}

/// <summary>Concatenates all tokens into one.</summary>
internal sealed class FuseDecoder : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        var fused = string.Concat(tokens);
        tokens.Clear();
        tokens.Add(fused);
    }
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of a char from every token.</summary>
internal sealed class StripDecoder(char content, int start, int stop) : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var head = 0;
            while (head < start && head < token.Length && token[head] == content) head++;
            var tail = 0;
            while (tail < stop && tail < token.Length - head && token[token.Length - 1 - tail] == content) tail++;
            if (head != 0 || tail != 0) tokens[i] = token.Substring(head, token.Length - head - tail);
        }
    }
}

/// <summary>Turns the replacement char back into spaces; in the first token it is dropped unless prepending is off.</summary>
internal sealed class MetaspaceDecoder(char replacement, bool prepends) : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        var builder = new StringBuilder();
        for (var i = 0; i < tokens.Count; i++)
        {
            builder.Clear();
            foreach (var c in tokens[i])
            {
                if (c != replacement) builder.Append(c);
                else if (i != 0 || !prepends) builder.Append(' ');
            }
            tokens[i] = builder.ToString();
        }
    }
}

/// <summary>Applies decoders in order.</summary>
internal sealed class SequenceDecoder(IDecoder[] decoders) : IDecoder
{
    public void DecodeChain(List<string> tokens)
    {
        foreach (var decoder in decoders) decoder.DecodeChain(tokens);
    }
}
