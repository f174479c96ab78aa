using System.Globalization;
using System.Text;

namespace Turbine.Tokenizers.ChatTemplates;

// Runtime values model Python's, because templates are written against jinja2 running on Python:
// null = None, bool, long = int, double = float, string = str, List<object?> = list, object?[] = tuple,
// PyDict = dict (insertion-ordered), plus the jinja objects below.

/// <summary>Jinja's default Undefined: renders as "", is falsy and iterates as empty; most other uses fail.</summary>
internal sealed class Undefined(string hint)
{
    /// <summary>What was undefined, for the error when the value is used in a way that needs it.</summary>
    public string Hint { get; } = hint;
}

/// <summary>The object <c>namespace(...)</c> makes: the one thing a template can assign attributes of.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = [];
}

/// <summary>A callable: a global function, a macro or a bound method.</summary>
internal sealed class PyFunction(string name, Func<List<object?>, Dictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;

    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>A dict; the comparer makes 1, 1.0 and True the same key, as in Python.</summary>
internal sealed class PyDict : Dictionary<object, object?>
{
    public PyDict() : base(PyKeyComparer.Instance) { }

    public PyDict(int capacity) : base(capacity, PyKeyComparer.Instance) { }
}

internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => Py.Equal(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && Math.Abs(d) < 9e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        object?[] tuple => tuple.Aggregate(17, (h, item) => h * 31 + (item is null ? 0 : GetHashCode(item))),
        _ => obj.GetHashCode(),
    };
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new PyFunction("cycle", (args, _) =>
            args.Count == 0 ? throw new InvalidOperationException("no items for cycling given") : args[Index0 % args.Count]),
        "changed" => new PyFunction("changed", (_, _) => throw new InvalidOperationException("loop.changed is not supported")),
        _ => new Undefined($"'LoopContext' object has no attribute '{name}'"),
    };
}

/// <summary>A value error that the renderer reports with the line of the node being evaluated.</summary>
internal sealed class TemplateRuntimeException(string message) : Exception(message);

/// <summary>Python semantics for the runtime values.</summary>
internal static class Py
{
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        PyDict => "dict",
        Namespace => "Namespace",
        PyFunction => "function",
        LoopContext => "LoopContext",
        _ => value.GetType().Name,
    };

    public static TemplateRuntimeException TypeError(string message) => new(message);

    public static bool Truthy(object? value) => value switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        PyDict d => d.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw TypeError($"expected a number, got {TypeName(value)}"),
    };

    /// <summary>Python's str(); Undefined gives "" as jinja2 prints it.</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's repr().</summary>
    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value)
    {
        switch (value)
        {
            case null: sb.Append("None"); break;
            case Undefined: break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case List<object?> list:
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i]);
                }
                sb.Append(']');
                break;
            case object?[] tuple:
                sb.Append('(');
                for (var i = 0; i < tuple.Length; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, tuple[i]);
                }
                if (tuple.Length == 1) sb.Append(',');
                sb.Append(')');
                break;
            case PyDict dict:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in dict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, k);
                    sb.Append(": ");
                    AppendRepr(sb, v);
                }
                sb.Append('}');
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendRepr(sb, ToDict(ns.Attributes));
                sb.Append('>');
                break;
            case PyFunction f: sb.Append("<function ").Append(f.Name).Append('>'); break;
            default: sb.Append(value); break;
        }
    }

    private static PyDict ToDict(Dictionary<string, object?> attributes)
    {
        var dict = new PyDict();
        foreach (var (k, v) in attributes) dict[k] = v;
        return dict;
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == quote || c == '\\') sb.Append('\\').Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                var code = char.ConvertToUtf32(c, s[i + 1]);
                if (IsPrintable(code)) sb.Append(c).Append(s[i + 1]);
                else sb.Append("\\U").Append(code.ToString("x8", CultureInfo.InvariantCulture));
                i++;
            }
            else if (c < 0x7f || IsPrintable(c)) sb.Append(c);
            else if (c <= 0xff) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
        }
        sb.Append(quote);
    }

    // Python's str.isprintable: everything but "Other" and "Separator" categories, except the ASCII space.
    private static bool IsPrintable(int code)
    {
        if (code == ' ') return true;
        if (code is >= 0xD800 and <= 0xDFFF) return false;
        var category = CharUnicodeInfo.GetUnicodeCategory(code);
        return category is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.SpaceSeparator
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator);
    }

    /// <summary>Python's float repr: the shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var text = d.ToString("R", CultureInfo.InvariantCulture);
        var negative = text.StartsWith('-');
        if (negative) text = text[1..];
        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }
        var dot = text.IndexOf('.');
        var intPart = dot < 0 ? text : text[..dot];
        var fracPart = dot < 0 ? "" : text[(dot + 1)..];
        var digits = intPart + fracPart;
        var point = intPart.Length + exponent;
        var lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') lead++;
        digits = digits[lead..];
        point -= lead;
        digits = digits.TrimEnd('0');
        var sign = negative ? "-" : "";
        if (digits.Length == 0) return sign + "0.0";
        var x = point - 1;
        if (x < -4 || x >= 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return $"{sign}{mantissa}e{(x < 0 ? "-" : "+")}{Math.Abs(x):00}";
        }
        if (point <= 0) return sign + "0." + new string('0', -point) + digits;
        if (point >= digits.Length) return sign + digits + new string('0', point - digits.Length) + ".0";
        return sign + digits[..point] + "." + digits[point..];
    }

    public static bool Equal(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string s: return b is string other && s == other;
            case Undefined: return b is Undefined;
            case List<object?> l: return b is List<object?> m && SequenceEqual(l, m);
            case object?[] t: return b is object?[] u && SequenceEqual(t, u);
            case PyDict d:
                if (b is not PyDict e || d.Count != e.Count) return false;
                foreach (var (k, v) in d)
                    if (!e.TryGetValue(k, out var w) || !Equal(v, w)) return false;
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    private static bool SequenceEqual(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count) return false;
        for (var i = 0; i < a.Count; i++)
            if (!Equal(a[i], b[i])) return false;
        return true;
    }

    private static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw TypeError($"expected an integer, got {TypeName(value)}"),
    };

    /// <summary>Python's ordering (&lt; is negative); strings compare by code unit.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string s && b is string t) return Math.Sign(string.CompareOrdinal(s, t));
        if (a is IReadOnlyList<object?> l && b is IReadOnlyList<object?> m && a.GetType() == b.GetType())
        {
            for (var i = 0; i < Math.Min(l.Count, m.Count); i++)
                if (!Equal(l[i], m[i])) return Compare(l[i], m[i], op);
            return l.Count.CompareTo(m.Count);
        }
        if (a is Undefined u) throw new TemplateRuntimeException(u.Hint);
        if (b is Undefined v) throw new TemplateRuntimeException(v.Hint);
        throw TypeError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (item is not string t) throw TypeError($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return s.Contains(t, StringComparison.Ordinal);
            case PyDict d: return item is not null && d.ContainsKey(item);
            case IReadOnlyList<object?> list:
                foreach (var x in list)
                    if (Equal(x, item)) return true;
                return false;
            case Undefined: return false;
            default: throw TypeError($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    /// <summary>The items a for loop or a filter iterates: list and tuple items, string characters, dict keys.</summary>
    public static IReadOnlyList<object?> Iterate(object? value) => value switch
    {
        List<object?> l => l,
        object?[] t => t,
        string s => StringChars(s),
        PyDict d => [.. d.Keys],
        Undefined => [],
        _ => throw TypeError($"'{TypeName(value)}' object is not iterable"),
    };

    // Splits into code points, so a surrogate pair stays one "character" as it is in Python.
    public static List<object?> StringChars(string s)
    {
        var chars = new List<object?>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                chars.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                chars.Add(s[i].ToString());
            }
        }
        return chars;
    }

    public static long Length(object? value) => value switch
    {
        string s => StringChars(s).Count,
        IReadOnlyList<object?> l => l.Count,
        PyDict d => d.Count,
        Undefined => 0,
        _ => throw TypeError($"object of type '{TypeName(value)}' has no len()"),
    };

    public static object? Binary(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw new TemplateRuntimeException(ua.Hint);
        if (b is Undefined ub) throw new TemplateRuntimeException(ub.Hint);
        if (IsNumber(a) && IsNumber(b))
        {
            var integers = a is not double && b is not double;
            if (integers)
            {
                long x = ToLong(a), y = ToLong(b);
                switch (op)
                {
                    case "+": return x + y;
                    case "-": return x - y;
                    case "*": return x * y;
                    case "/":
                        if (y == 0) throw TypeError("division by zero");
                        return (double)x / y;
                    case "//":
                        if (y == 0) throw TypeError("integer division or modulo by zero");
                        return FloorDiv(x, y);
                    case "%":
                        if (y == 0) throw TypeError("integer division or modulo by zero");
                        return x - FloorDiv(x, y) * y;
                    case "**":
                        return y >= 0 ? (object)IntPow(x, y) : Math.Pow(x, y);
                }
            }
            double p = ToDouble(a), q = ToDouble(b);
            switch (op)
            {
                case "+": return p + q;
                case "-": return p - q;
                case "*": return p * q;
                case "/":
                    if (q == 0) throw TypeError("float division by zero");
                    return p / q;
                case "//":
                    if (q == 0) throw TypeError("float floor division by zero");
                    return Math.Floor(p / q);
                case "%":
                    if (q == 0) throw TypeError("float modulo");
                    var r = p % q;
                    return r != 0 && (r < 0) != (q < 0) ? r + q : r;
                case "**": return Math.Pow(p, q);
            }
        }
        switch (op)
        {
            case "+" when a is string s && b is string t: return s + t;
            case "+" when a is List<object?> l && b is List<object?> m: return new List<object?>([.. l, .. m]);
            case "+" when a is object?[] t1 && b is object?[] t2: return (object?[])[.. t1, .. t2];
            case "*" when a is string s && b is long or bool: return Repeat(s, ToLong(b));
            case "*" when b is string s && a is long or bool: return Repeat(s, ToLong(a));
            case "*" when a is List<object?> l && b is long or bool: return RepeatList(l, ToLong(b));
        }
        if (op == "+" && a is string) throw TypeError($"can only concatenate str (not \"{TypeName(b)}\") to str");
        if (op == "+" && a is List<object?>) throw TypeError($"can only concatenate list (not \"{TypeName(b)}\") to list");
        throw TypeError($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static long IntPow(long x, long y)
    {
        var result = 1L;
        for (; y > 0; y >>= 1, x *= x)
            if ((y & 1) != 0) result *= x;
        return result;
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    // Repetition is capped so that a template cannot exhaust the server's memory with one expression.
    private const long MaxRepeatedLength = 1 << 24;

    private static string Repeat(string s, long n)
    {
        if (n <= 0) return "";
        if (s.Length * n > MaxRepeatedLength) throw TypeError($"repeating a string of length {s.Length} {n} times is too large");
        return new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();
    }

    private static List<object?> RepeatList(List<object?> l, long n)
    {
        if (l.Count * n > MaxRepeatedLength) throw TypeError($"repeating a list of length {l.Count} {n} times is too large");
        var result = new List<object?>();
        for (var i = 0; i < n; i++) result.AddRange(l);
        return result;
    }
}
