using System.Globalization;
using System.Text;

namespace Turbine.Server.Configuration;

/// <summary>Kinds of lexical tokens in protobuf text format.</summary>
internal enum TextTokenKind
{
    Identifier,
    Integer,
    Float,
    String,
    Symbol,
    /// <summary>A <c>${name}</c> template placeholder that fill_template.py was supposed to replace.</summary>
    Placeholder,
    End,
}

/// <summary>One token; <see cref="StringBytes"/> holds the unescaped bytes of a string literal.</summary>
internal readonly record struct TextToken(TextTokenKind Kind, string Text, int Line, int Column, byte[]? StringBytes = null)
{
    public bool IsSymbol(char symbol) => Kind == TextTokenKind.Symbol && Text.Length == 1 && Text[0] == symbol;

    public string Describe() => Kind switch
    {
        TextTokenKind.End => "end of file",
        TextTokenKind.String => $"string \"{Text}\"",
        TextTokenKind.Placeholder => $"unfilled placeholder {Text}",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits protobuf text format into tokens: identifiers, numbers, quoted strings (adjacent literals concatenated),
/// single-character symbols and <c>${...}</c> placeholders; skips whitespace and <c>#</c> comments.
/// </summary>
internal sealed class TextFormatTokenizer
{
    private readonly string _text;
    private readonly string _file;
    private int _position;
    private int _line = 1;
    private int _column = 1;

    public TextFormatTokenizer(string text, string file)
    {
        _text = text;
        _file = file;
        Current = ReadToken();
    }

    /// <summary>The token not yet consumed.</summary>
    public TextToken Current { get; private set; }

    /// <summary>Consumes <see cref="Current"/> and returns it.</summary>
    public TextToken Next()
    {
        var token = Current;
        Current = ReadToken();
        return token;
    }

    public TextFormatException Error(TextToken at, string problem) => new(_file, at.Line, at.Column, problem);

    private TextFormatException ErrorHere(string problem) => new(_file, _line, _column, problem);

    private char Peek(int ahead = 0) => _position + ahead < _text.Length ? _text[_position + ahead] : '\0';

    private bool AtEnd => _position >= _text.Length;

    private void Advance()
    {
        if (_text[_position] == '\n')
        {
            _line++;
            _column = 1;
        }
        else
        {
            _column++;
        }
        _position++;
    }

    private void SkipWhitespaceAndComments()
    {
        while (!AtEnd)
        {
            char c = Peek();
            if (c == '#')
            {
                while (!AtEnd && Peek() != '\n') Advance();
            }
            else if (char.IsWhiteSpace(c) || c == '\uFEFF')
            {
                Advance();
            }
            else
            {
                return;
            }
        }
    }

    private TextToken ReadToken()
    {
        SkipWhitespaceAndComments();
        int line = _line, column = _column;
        if (AtEnd) return new TextToken(TextTokenKind.End, "", line, column);
        char c = Peek();
        if (char.IsAsciiLetter(c) || c == '_')
        {
            int start = _position;
            while (!AtEnd && (char.IsAsciiLetterOrDigit(Peek()) || Peek() == '_')) Advance();
            return new TextToken(TextTokenKind.Identifier, _text[start.._position], line, column);
        }
        if (char.IsAsciiDigit(c) || (c == '.' && char.IsAsciiDigit(Peek(1))))
        {
            return ReadNumber(line, column);
        }
        if (c == '"' || c == '\'')
        {
            var bytes = new List<byte>();
            // Adjacent literals ("a" "b") form one string, as in C++ protobuf.
            while (!AtEnd && (Peek() == '"' || Peek() == '\''))
            {
                ReadQuoted(bytes);
                SkipWhitespaceAndComments();
            }
            var array = bytes.ToArray();
            return new TextToken(TextTokenKind.String, Encoding.UTF8.GetString(array), line, column, array);
        }
        if (c == '$' && Peek(1) == '{')
        {
            int start = _position;
            while (!AtEnd && Peek() != '}' && Peek() != '\n') Advance();
            if (Peek() != '}') throw new TextFormatException(_file, line, column, "unterminated ${...} placeholder");
            Advance();
            return new TextToken(TextTokenKind.Placeholder, _text[start.._position], line, column);
        }
        if ("{}<>[]:;,-".Contains(c))
        {
            Advance();
            return new TextToken(TextTokenKind.Symbol, c.ToString(), line, column);
        }
        throw ErrorHere($"unexpected character '{c}'");
    }

    private TextToken ReadNumber(int line, int column)
    {
        int start = _position;
        bool hex = Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X');
        while (!AtEnd)
        {
            char c = Peek();
            bool exponentSign = !hex && (c == '+' || c == '-') && _position > start && (_text[_position - 1] is 'e' or 'E');
            if (char.IsAsciiLetterOrDigit(c) || c == '.' || c == '_' || exponentSign) Advance();
            else break;
        }
        string text = _text[start.._position];
        if (hex) return new TextToken(TextTokenKind.Integer, text, line, column);
        bool isFloat = text.Contains('.') || text.Contains('e') || text.Contains('E') || text.EndsWith('f') || text.EndsWith('F');
        return new TextToken(isFloat ? TextTokenKind.Float : TextTokenKind.Integer, text, line, column);
    }

    private void ReadQuoted(List<byte> bytes)
    {
        int line = _line, column = _column;
        char quote = Peek();
        Advance();
        Span<byte> utf8 = stackalloc byte[4];
        while (true)
        {
            if (AtEnd || Peek() == '\n') throw new TextFormatException(_file, line, column, "unterminated string literal");
            char c = Peek();
            if (c == quote)
            {
                Advance();
                return;
            }
            if (c != '\\')
            {
                if (char.IsHighSurrogate(c) && char.IsLowSurrogate(Peek(1)))
                {
                    int written = Encoding.UTF8.GetBytes(_text.AsSpan(_position, 2), utf8);
                    bytes.AddRange(utf8[..written].ToArray());
                    Advance();
                    Advance();
                }
                else
                {
                    int written = Encoding.UTF8.GetBytes(_text.AsSpan(_position, 1), utf8);
                    bytes.AddRange(utf8[..written].ToArray());
                    Advance();
                }
                continue;
            }
            ReadEscape(bytes, utf8);
        }
    }

    private void ReadEscape(List<byte> bytes, Span<byte> utf8)
    {
        int line = _line, column = _column;
        Advance();
        if (AtEnd) throw new TextFormatException(_file, line, column, "unterminated escape sequence");
        char e = Peek();
        Advance();
        switch (e)
        {
            case 'n': bytes.Add((byte)'\n'); return;
            case 't': bytes.Add((byte)'\t'); return;
            case 'r': bytes.Add((byte)'\r'); return;
            case 'a': bytes.Add(0x07); return;
            case 'b': bytes.Add(0x08); return;
            case 'f': bytes.Add(0x0C); return;
            case 'v': bytes.Add(0x0B); return;
            case '\\': case '\'': case '"': case '?': bytes.Add((byte)e); return;
            case 'x' or 'X':
            {
                int value = 0, digits = 0;
                while (digits < 2 && char.IsAsciiHexDigit(Peek()))
                {
                    value = value * 16 + Convert.ToInt32(Peek().ToString(), 16);
                    Advance();
                    digits++;
                }
                if (digits == 0) throw new TextFormatException(_file, line, column, "expected hex digits after \\x");
                bytes.Add((byte)value);
                return;
            }
            case 'u' or 'U':
            {
                int length = e == 'u' ? 4 : 8;
                var hexDigits = new StringBuilder();
                for (int i = 0; i < length; i++)
                {
                    if (!char.IsAsciiHexDigit(Peek())) throw new TextFormatException(_file, line, column, $"expected {length} hex digits after \\{e}");
                    hexDigits.Append(Peek());
                    Advance();
                }
                int codePoint = int.Parse(hexDigits.ToString(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (codePoint > 0x10FFFF || (codePoint >= 0xD800 && codePoint <= 0xDFFF))
                    throw new TextFormatException(_file, line, column, $"\\{e}{hexDigits} is not a Unicode scalar value");
                int written = Encoding.UTF8.GetBytes(char.ConvertFromUtf32(codePoint), utf8);
                bytes.AddRange(utf8[..written].ToArray());
                return;
            }
            default:
                if (e is >= '0' and <= '7')
                {
                    int value = e - '0', digits = 1;
                    while (digits < 3 && Peek() is >= '0' and <= '7')
                    {
                        value = value * 8 + (Peek() - '0');
                        Advance();
                        digits++;
                    }
                    if (value > 255) throw new TextFormatException(_file, line, column, "octal escape is larger than \\377");
                    bytes.Add((byte)value);
                    return;
                }
                throw new TextFormatException(_file, line, column, $"invalid escape sequence '\\{e}'");
        }
    }
}
