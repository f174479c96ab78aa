using System.Globalization;
using System.Text;

namespace Turbine.Tokenizers.ChatTemplates;

internal enum TokenType
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenType Type, string Text, object? Value, int Offset)
{
    public bool IsName(string name) => Type == TokenType.Name && Text == name;

    public bool IsOperator(string op) => Type == TokenType.Operator && Text == op;

    public string Describe() => Type switch
    {
        TokenType.Eof => "end of template",
        TokenType.VariableEnd => "end of print statement",
        TokenType.BlockEnd => "end of statement block",
        TokenType.Data => "template data",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits a template into data and tag tokens the way jinja2's lexer does with transformers' settings
/// (trim_blocks, lstrip_blocks, newlines normalized to \n, one trailing newline dropped).
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"];

    private readonly string _src;
    private readonly SourceMap _map;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(string source, SourceMap map)
    {
        _src = source;
        _map = map;
    }

    public static List<Token> Tokenize(string source, SourceMap map)
    {
        var lexer = new Lexer(source, map);
        lexer.Run();
        return lexer._tokens;
    }

    /// <summary>Applies jinja2's source preprocessing: \r\n and \r become \n, and one trailing newline is dropped (keep_trailing_newline=False).</summary>
    public static string Normalize(string source)
    {
        var text = source.Replace("\r\n", "\n").Replace('\r', '\n');
        return text.EndsWith('\n') ? text[..^1] : text;
    }

    private ChatTemplateException Error(string message, int offset)
    {
        var (line, column) = _map.Position(offset);
        return new ChatTemplateException(ChatTemplateErrorKind.Syntax, message, line, column);
    }

    private void Run()
    {
        // At the template start and after a tag whose consumed text ends in a newline, a tag preceded only by
        // blanks on its line gets them stripped (lstrip_blocks); jinja2 tracks this as "line_starting".
        var lineStarting = true;
        while (_pos < _src.Length)
        {
            var start = _src.IndexOf('{', _pos);
            while (start >= 0 && (start + 1 >= _src.Length || _src[start + 1] is not ('{' or '%' or '#')))
                start = _src.IndexOf('{', start + 1);
            var dataEnd = start < 0 ? _src.Length : start;
            var text = _src[_pos..dataEnd];
            if (start < 0)
            {
                EmitData(text, _pos);
                break;
            }
            var kind = _src[start + 1];
            var modifier = start + 2 < _src.Length ? _src[start + 2] : '\0';
            if (modifier == '-')
            {
                text = text.TrimEnd();
            }
            else if (kind != '{' && modifier != '+')
            {
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && IsBlank(text.AsSpan(lineStart))) text = text[..lineStart];
            }
            EmitData(text, _pos);
            // "+" (keep blanks) exists for block and comment tags only; in "{{+" it is an operator.
            var bodyStart = start + 2 + (modifier == '-' || (modifier == '+' && kind != '{') ? 1 : 0);
            switch (kind)
            {
                case '#':
                    lineStarting = Comment(start, bodyStart);
                    break;
                case '%' when TryRaw(start, bodyStart, out var rawEndsLine):
                    lineStarting = rawEndsLine;
                    break;
                default:
                    _tokens.Add(new Token(kind == '{' ? TokenType.VariableBegin : TokenType.BlockBegin, _src[start..bodyStart], null, start));
                    _pos = bodyStart;
                    lineStarting = Expression(kind == '{', start);
                    break;
            }
        }
        _tokens.Add(new Token(TokenType.Eof, "", null, _src.Length));
    }

    private void EmitData(string text, int offset)
    {
        if (text.Length > 0) _tokens.Add(new Token(TokenType.Data, text, text, offset));
    }

    private static bool IsBlank(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
            if (!char.IsWhiteSpace(c)) return false;
        return true;
    }

    // Returns whether the text after the comment starts a line.
    private bool Comment(int start, int bodyStart)
    {
        var end = _src.IndexOf("#}", bodyStart, StringComparison.Ordinal);
        if (end < 0) throw Error("missing end of comment tag", start);
        var modifier = end > bodyStart ? _src[end - 1] : '\0';
        _pos = end + 2;
        return EndTag(modifier);
    }

    // After "%}" / "}}" / "#}": '-' strips all following whitespace, '+' keeps everything,
    // a plain block or comment end swallows one newline (trim_blocks); a plain "}}" keeps it.
    // Returns whether the consumed text ends in a newline, i.e. the following text starts a line.
    private bool EndTag(char modifier, bool trimBlocks = true)
    {
        if (modifier == '-')
        {
            var next = _pos;
            while (next < _src.Length && char.IsWhiteSpace(_src[next])) next++;
            var endsLine = next > _pos && _src[next - 1] == '\n';
            _pos = next;
            return endsLine;
        }
        if (modifier != '+' && trimBlocks && _pos < _src.Length && _src[_pos] == '\n')
        {
            _pos++;
            return true;
        }
        return false;
    }

    // {% raw %}...{% endraw %}: the content is data, tags inside are not parsed.
    private bool TryRaw(int start, int bodyStart, out bool lineStarting)
    {
        lineStarting = false;
        var p = SkipSpaces(bodyStart);
        if (string.CompareOrdinal(_src, p, "raw", 0, 3) != 0) return false;
        p = SkipSpaces(p + 3);
        // jinja2 applies no trim_blocks after "{% raw %}"; only "-%}" strips what follows.
        var stripAfter = p < _src.Length && _src[p] == '-';
        if (stripAfter) p++;
        if (string.CompareOrdinal(_src, p, "%}", 0, 2) != 0) return false;
        _pos = p + 2;
        if (stripAfter) EndTag('-');
        var contentStart = _pos;
        for (var search = contentStart; ;)
        {
            var tag = _src.IndexOf("{%", search, StringComparison.Ordinal);
            if (tag < 0) throw Error("missing end of raw directive", start);
            var q = tag + 2;
            var closeModifier = q < _src.Length && _src[q] is '-' or '+' ? _src[q] : '\0';
            if (closeModifier != '\0') q++;
            q = SkipSpaces(q);
            if (string.CompareOrdinal(_src, q, "endraw", 0, 6) == 0)
            {
                q = SkipSpaces(q + 6);
                var endModifier = q < _src.Length && _src[q] is '-' or '+' ? _src[q] : '\0';
                if (endModifier != '\0') q++;
                if (string.CompareOrdinal(_src, q, "%}", 0, 2) == 0)
                {
                    var content = _src[contentStart..tag];
                    if (closeModifier == '-')
                    {
                        content = content.TrimEnd();
                    }
                    else if (closeModifier != '+')
                    {
                        var lineStart = content.LastIndexOf('\n') + 1;
                        if (lineStart > 0 && IsBlank(content.AsSpan(lineStart))) content = content[..lineStart];
                    }
                    EmitData(content, contentStart);
                    _pos = q + 2;
                    lineStarting = EndTag(endModifier);
                    return true;
                }
            }
            search = tag + 2;
        }
    }

    private int SkipSpaces(int p)
    {
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        return p;
    }

    private bool Expression(bool variable, int tagStart)
    {
        // Open brackets: inside them "}}" and "%}" are not the tag end (as jinja2's balancing stack decides).
        var brackets = new Stack<char>();
        while (true)
        {
            _pos = SkipSpaces(_pos);
            if (_pos >= _src.Length)
                throw Error($"unexpected end of template, expected '{(variable ? "end of print statement" : "end of statement block")}'", tagStart);
            if (brackets.Count == 0 && TryEnd(variable, out var modifier, out var endOffset))
            {
                _tokens.Add(new Token(variable ? TokenType.VariableEnd : TokenType.BlockEnd, _src[endOffset.._pos], null, endOffset));
                return EndTag(modifier, trimBlocks: !variable);
            }
            var c = _src[_pos];
            if (c is '\'' or '"') ReadString(c);
            else if (char.IsAsciiDigit(c)) ReadNumber();
            else if (char.IsLetter(c) || c == '_') ReadName();
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                    ?? throw Error($"unexpected char '{c}'", _pos);
                if (op is "(" or "[" or "{")
                {
                    brackets.Push(op is "(" ? ')' : op is "[" ? ']' : '}');
                }
                else if (op is ")" or "]" or "}")
                {
                    if (brackets.Count == 0) throw Error($"unexpected '{op}'", _pos);
                    var expected = brackets.Pop();
                    if (op[0] != expected) throw Error($"unexpected '{op}', expected '{expected}'", _pos);
                }
                _tokens.Add(new Token(TokenType.Operator, op, null, _pos));
                _pos += op.Length;
            }
        }
    }

    private bool TryEnd(bool variable, out char modifier, out int endOffset)
    {
        var close = variable ? "}}" : "%}";
        endOffset = _pos;
        modifier = '\0';
        var p = _pos;
        if (_src[p] is '-' or '+' && p + 1 < _src.Length && string.CompareOrdinal(_src, p + 1, close, 0, 2) == 0)
        {
            // "+}}" is not a jinja2 end tag; it lexes as an operator followed by "}}".
            if (variable && _src[p] == '+') return false;
            modifier = _src[p];
            p++;
        }
        if (string.CompareOrdinal(_src, p, close, 0, 2) != 0) return false;
        _pos = p + 2;
        return true;
    }

    private void ReadName()
    {
        var start = _pos;
        while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
        var name = _src[start.._pos];
        _tokens.Add(new Token(TokenType.Name, name, name, start));
    }

    private void ReadNumber()
    {
        var start = _pos;
        ReadDigits();
        var isFloat = false;
        // A '.' right after a '.' is attribute access by index ("x.0.1"), never a float.
        var afterDot = start > 0 && _src[start - 1] == '.';
        if (!afterDot && _pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
        {
            _pos++;
            ReadDigits();
            isFloat = true;
        }
        if (!afterDot && _pos < _src.Length && _src[_pos] is 'e' or 'E')
        {
            var p = _pos + 1;
            if (p < _src.Length && _src[p] is '+' or '-') p++;
            if (p < _src.Length && char.IsAsciiDigit(_src[p]))
            {
                _pos = p;
                ReadDigits();
                isFloat = true;
            }
        }
        var text = _src[start.._pos];
        var digits = text.Replace("_", "");
        if (isFloat)
        {
            _tokens.Add(new Token(TokenType.Float, text, double.Parse(digits, NumberStyles.Float, CultureInfo.InvariantCulture), start));
        }
        else
        {
            if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                throw Error($"integer literal {text} is too large", start);
            _tokens.Add(new Token(TokenType.Integer, text, value, start));
        }
    }

    private void ReadDigits()
    {
        while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _src.Length && char.IsAsciiDigit(_src[_pos + 1]))))
            _pos++;
    }

    private void ReadString(char quote)
    {
        var start = _pos;
        var sb = new StringBuilder();
        var p = _pos + 1;
        while (true)
        {
            if (p >= _src.Length) throw Error($"unexpected char \"{quote}\" (unterminated string)", start);
            var c = _src[p];
            if (c == quote) break;
            if (c != '\\')
            {
                sb.Append(c);
                p++;
                continue;
            }
            if (p + 1 >= _src.Length) throw Error($"unexpected char \"{quote}\" (unterminated string)", start);
            p = Escape(p + 1, sb);
        }
        _pos = p + 1;
        _tokens.Add(new Token(TokenType.String, _src[start.._pos], sb.ToString(), start));
    }

    // Python's unicode-escape decoding, which jinja2 applies to string literals; unknown escapes keep the backslash.
    private int Escape(int p, StringBuilder sb)
    {
        var c = _src[p];
        switch (c)
        {
            case '\n': return p + 1;
            case '\\': sb.Append('\\'); return p + 1;
            case '\'': sb.Append('\''); return p + 1;
            case '"': sb.Append('"'); return p + 1;
            case 'n': sb.Append('\n'); return p + 1;
            case 't': sb.Append('\t'); return p + 1;
            case 'r': sb.Append('\r'); return p + 1;
            case 'a': sb.Append('\a'); return p + 1;
            case 'b': sb.Append('\b'); return p + 1;
            case 'f': sb.Append('\f'); return p + 1;
            case 'v': sb.Append('\v'); return p + 1;
            case 'x': return HexEscape(p, 2, sb);
            case 'u': return HexEscape(p, 4, sb);
            case 'U': return HexEscape(p, 8, sb);
        }
        if (c == 'N') throw Error("malformed \\N character escape", p - 1);
        if (c is >= '0' and <= '7')
        {
            var value = 0;
            var q = p;
            while (q < p + 3 && q < _src.Length && _src[q] is >= '0' and <= '7') value = value * 8 + (_src[q++] - '0');
            sb.Append((char)value);
            return q;
        }
        sb.Append('\\').Append(c);
        return p + 1;
    }

    private int HexEscape(int p, int digits, StringBuilder sb)
    {
        var hex = _src.AsSpan(p + 1, Math.Min(digits, _src.Length - p - 1));
        if (hex.Length < digits || !int.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code) || code > 0x10FFFF || code < 0)
            throw Error($"truncated \\{_src[p]} escape in string literal", p - 1);
        // Lone surrogates are valid in Python strings; keep them as single UTF-16 units.
        sb.Append(code is >= 0xD800 and <= 0xDFFF ? ((char)code).ToString() : char.ConvertFromUtf32(code));
        return p + 1 + digits;
    }
}

/// <summary>Offsets to 1-based line and column numbers of the normalized source.</summary>
internal sealed class SourceMap
{
    private readonly List<int> _lineStarts = [0];

    public SourceMap(string source)
    {
        for (var i = 0; i < source.Length; i++)
            if (source[i] == '\n') _lineStarts.Add(i + 1);
    }

    public (int Line, int Column) Position(int offset)
    {
        var index = _lineStarts.BinarySearch(offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - _lineStarts[index] + 1);
    }
}
