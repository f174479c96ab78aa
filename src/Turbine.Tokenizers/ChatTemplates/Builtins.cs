using System.Globalization;
using System.Text;

namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>Attribute and item access, filters, tests, methods and global functions, as jinja2 and transformers provide them.</summary>
internal static partial class Builtins
{
    private static TemplateRuntimeException Error(string message) => new(message);

    // ---- attribute and item access -------------------------------------------------------------------------

    /// <summary><c>obj.name</c>: jinja2 tries the Python attribute first (so methods win over dict keys), then the item.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined undefined:
                throw Error(undefined.Hint);
            case PyDict dict:
                if (DictMethod(dict, name) is { } dictMethod) return dictMethod;
                return dict.TryGetValue(name, out var value) ? value : new Undefined($"'dict object' has no attribute '{name}'");
            case string s:
                return (object?)StringMethod(s, name) ?? new Undefined($"'str object' has no attribute '{name}'");
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var attribute) ? attribute : new Undefined($"'Namespace' object has no attribute '{name}'");
            case LoopContext loop:
                return loop.Get(name);
            case List<object?> list:
                return (object?)ListMethod(list, name) ?? new Undefined($"'list object' has no attribute '{name}'");
            case object?[] tuple:
                return (object?)ListMethod(tuple, name) ?? new Undefined($"'tuple object' has no attribute '{name}'");
            case null:
                return new Undefined($"'None' has no attribute '{name}'");
            default:
                return new Undefined($"'{Py.TypeName(obj)} object' has no attribute '{name}'");
        }
    }

    /// <summary><c>obj[key]</c>: the item first, then (for a string key) the attribute.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined undefined:
                throw Error(undefined.Hint);
            case PyDict dict:
                if (key is not null && dict.TryGetValue(key, out var value)) return value;
                if (key is string name && DictMethod(dict, name) is { } method) return method;
                return new Undefined($"'dict object' has no attribute '{Py.Str(key)}'");
            case string s when key is long or bool:
                {
                    var chars = Py.StringChars(s);
                    var index = Index(key, chars.Count);
                    return index >= 0 ? chars[index] : new Undefined("string index out of range");
                }
            case IReadOnlyList<object?> list when key is long or bool:
                {
                    var index = Index(key, list.Count);
                    return index >= 0 ? list[index] : new Undefined($"{Py.TypeName(obj)} index out of range");
                }
        }
        if (key is string attribute) return GetAttr(obj, attribute);
        return new Undefined($"'{Py.TypeName(obj)} object' has no item {Py.Repr(key)}");
    }

    private static int Index(object? key, int count)
    {
        var i = key is bool b ? (b ? 1 : 0) : (long)key!;
        if (i < 0) i += count;
        return i >= 0 && i < count ? (int)i : -1;
    }

    /// <summary>Python slicing of strings, lists and tuples.</summary>
    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined undefined) throw Error(undefined.Hint);
        var items = obj switch
        {
            string s => Py.StringChars(s),
            IReadOnlyList<object?> list => list,
            _ => throw Error($"'{Py.TypeName(obj)}' object is not subscriptable"),
        };
        var n = items.Count;
        var stride = step is null ? 1 : SliceInt(step);
        if (stride == 0) throw Error("slice step cannot be zero");
        long lo, hi;
        if (stride > 0)
        {
            lo = start is null ? 0 : Clamp(SliceInt(start), n, 0, n);
            hi = stop is null ? n : Clamp(SliceInt(stop), n, 0, n);
        }
        else
        {
            lo = start is null ? n - 1 : Clamp(SliceInt(start), n, -1, n - 1);
            hi = stop is null ? -1 : Clamp(SliceInt(stop), n, -1, n - 1);
        }
        var result = new List<object?>();
        for (var i = lo; stride > 0 ? i < hi : i > hi; i += stride) result.Add(items[(int)i]);
        return obj switch
        {
            string => string.Concat(result.Cast<string>()),
            object?[] => result.ToArray(),
            _ => result,
        };
    }

    private static long SliceInt(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw Error("slice indices must be integers or None"),
    };

    private static long Clamp(long index, int count, long min, long max)
    {
        if (index < 0) index += count;
        return Math.Clamp(index, min, max);
    }

    // ---- methods -------------------------------------------------------------------------------------------

    private static PyFunction Method(string name, Func<List<object?>, Dictionary<string, object?>, object?> body) => new(name, body);

    private static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int index, string name, object? fallback = null)
    {
        if (index < args.Count) return args[index];
        return kwargs.TryGetValue(name, out var value) ? value : fallback;
    }

    private static string? OptionalString(object? value, string what) => value switch
    {
        null or Undefined => null,
        string s => s,
        _ => throw Error($"{what} must be None or a string, not {Py.TypeName(value)}"),
    };

    private static string RequireString(object? value, string what) =>
        value as string ?? throw Error($"{what} must be a string, not {Py.TypeName(value)}");

    private static PyFunction? DictMethod(PyDict dict, string name) => name switch
    {
        "get" => Method(name, (a, k) =>
        {
            var key = Arg(a, k, 0, "key");
            return key is not null && dict.TryGetValue(key, out var value) ? value : Arg(a, k, 1, "default");
        }),
        "items" => Method(name, (_, _) => dict.Select(e => (object?)new object?[] { e.Key, e.Value }).ToList()),
        "keys" => Method(name, (_, _) => dict.Keys.Select(key => (object?)key).ToList()),
        "values" => Method(name, (_, _) => dict.Values.ToList()),
        "copy" => Method(name, (_, _) =>
        {
            var copy = new PyDict(dict.Count);
            foreach (var (key, value) in dict) copy[key] = value;
            return copy;
        }),
        _ => null,
    };

    private static PyFunction? ListMethod(IReadOnlyList<object?> list, string name) => name switch
    {
        "count" => Method(name, (a, _) => (long)list.Count(x => Py.Equal(x, a.FirstOrDefault()))),
        "index" => Method(name, (a, _) =>
        {
            for (var i = 0; i < list.Count; i++)
                if (Py.Equal(list[i], a.FirstOrDefault())) return (long)i;
            throw Error($"{Py.Repr(a.FirstOrDefault())} is not in list");
        }),
        _ => null,
    };

    private static PyFunction? StringMethod(string s, string name) => name switch
    {
        "startswith" => Method(name, (a, k) => Affix(s, Arg(a, k, 0, "prefix"), (text, p) => text.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method(name, (a, k) => Affix(s, Arg(a, k, 0, "suffix"), (text, p) => text.EndsWith(p, StringComparison.Ordinal))),
        "strip" => Method(name, (a, k) => Strip(s, OptionalString(Arg(a, k, 0, "chars"), "strip arg"), true, true)),
        "lstrip" => Method(name, (a, k) => Strip(s, OptionalString(Arg(a, k, 0, "chars"), "lstrip arg"), true, false)),
        "rstrip" => Method(name, (a, k) => Strip(s, OptionalString(Arg(a, k, 0, "chars"), "rstrip arg"), false, true)),
        "split" => Method(name, (a, k) => Split(s, OptionalString(Arg(a, k, 0, "sep"), "sep"), MaxSplit(Arg(a, k, 1, "maxsplit", -1L)), fromRight: false)),
        "rsplit" => Method(name, (a, k) => Split(s, OptionalString(Arg(a, k, 0, "sep"), "sep"), MaxSplit(Arg(a, k, 1, "maxsplit", -1L)), fromRight: true)),
        "splitlines" => Method(name, (_, _) => SplitLines(s)),
        "upper" => Method(name, (_, _) => Upper(s)),
        "lower" => Method(name, (_, _) => s.ToLowerInvariant()),
        "title" => Method(name, (_, _) => PyTitle(s)),
        "capitalize" => Method(name, (_, _) => Capitalize(s)),
        "replace" => Method(name, (a, k) => Replace(s, RequireString(Arg(a, k, 0, "old"), "replace arg 1"), RequireString(Arg(a, k, 1, "new"), "replace arg 2"), MaxSplit(Arg(a, k, 2, "count", -1L)))),
        "find" => Method(name, (a, k) => (long)s.IndexOf(RequireString(Arg(a, k, 0, "sub"), "find arg"), StringComparison.Ordinal)),
        "rfind" => Method(name, (a, k) => (long)s.LastIndexOf(RequireString(Arg(a, k, 0, "sub"), "rfind arg"), StringComparison.Ordinal)),
        "count" => Method(name, (a, k) => CountOccurrences(s, RequireString(Arg(a, k, 0, "sub"), "count arg"))),
        "join" => Method(name, (a, k) => string.Join(s, Py.Iterate(Arg(a, k, 0, "iterable")).Select(x => x as string ?? throw Error($"sequence item: expected str instance, {Py.TypeName(x)} found")))),
        "isdigit" => Method(name, (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => Method(name, (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => Method(name, (_, _) => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => Method(name, (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "islower" => Method(name, (_, _) => IsLower(s)),
        "isupper" => Method(name, (_, _) => IsUpper(s)),
        "format" => Method(name, (a, k) => Format(s, a, k)),
        _ => null,
    };

    private static bool Affix(string s, object? affix, Func<string, string, bool> test) => affix switch
    {
        string a => test(s, a),
        object?[] tuple => tuple.Any(x => test(s, RequireString(x, "tuple item"))),
        _ => throw Error($"startswith/endswith first arg must be str or a tuple of str, not {Py.TypeName(affix)}"),
    };

    private static long MaxSplit(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        null => -1,
        _ => throw Error($"an integer is required, not {Py.TypeName(value)}"),
    };

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        var start = 0;
        var end = s.Length;
        Func<char, bool> strip = chars is null ? char.IsWhiteSpace : chars.Contains;
        if (left)
            while (start < end && strip(s[start])) start++;
        if (right)
            while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    private static List<object?> Split(string s, string? sep, long maxSplit, bool fromRight)
    {
        var parts = new List<string>();
        if (sep is null)
        {
            // No separator: runs of whitespace split, leading and trailing whitespace is dropped.
            var words = new List<(int Start, int End)>();
            var i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                var start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                words.Add((start, i));
            }
            if (maxSplit < 0 || words.Count <= maxSplit + 1) return words.Select(w => (object?)s[w.Start..w.End]).ToList();
            if (!fromRight)
            {
                // The unsplit remainder keeps its inner and outer whitespace, as in Python.
                var head = words.Take((int)maxSplit).Select(w => (object?)s[w.Start..w.End]).ToList();
                head.Add(s[words[(int)maxSplit].Start..]);
                return head;
            }
            var tail = words.Skip(words.Count - (int)maxSplit).Select(w => (object?)s[w.Start..w.End]).ToList();
            tail.Insert(0, s[..words[words.Count - (int)maxSplit - 1].End]);
            return tail;
        }
        if (sep.Length == 0) throw Error("empty separator");
        if (!fromRight)
        {
            var pos = 0;
            while (maxSplit < 0 || parts.Count < maxSplit)
            {
                var next = s.IndexOf(sep, pos, StringComparison.Ordinal);
                if (next < 0) break;
                parts.Add(s[pos..next]);
                pos = next + sep.Length;
            }
            parts.Add(s[pos..]);
            return parts.Select(p => (object?)p).ToList();
        }
        var end = s.Length;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            var next = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (next < 0) break;
            parts.Add(s[(next + sep.Length)..end]);
            end = next;
        }
        parts.Add(s[..end]);
        parts.Reverse();
        return parts.Select(p => (object?)p).ToList();
    }

    private static List<object?> SplitLines(string s)
    {
        var lines = new List<object?>();
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c is not ('\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')) continue;
            lines.Add(s[start..i]);
            if (c == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    /// <summary>Python's str.title: a letter after a non-letter is upper-cased, other letters lower-cased.</summary>
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            if (char.IsLetter(c))
            {
                sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
                previousCased = char.IsUpper(c) || char.IsLower(c);
            }
            else
            {
                sb.Append(c);
                previousCased = false;
            }
        }
        return sb.ToString();
    }

    // Python upper-cases with full case mapping, so "ß" becomes "SS"; .NET's invariant mapping is one-to-one.
    public static string Upper(string s) => s.ToUpperInvariant().Replace("ß", "SS", StringComparison.Ordinal);

    private static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0) return old.Length == 0 ? InsertEverywhere(s, replacement) : s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder();
        var pos = 0;
        for (var done = 0L; done < count; done++)
        {
            var next = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (next < 0 || (old.Length == 0 && next >= s.Length && done > 0)) break;
            sb.Append(s, pos, next - pos).Append(replacement);
            if (old.Length == 0)
            {
                if (next < s.Length) sb.Append(s[next]);
                pos = next + 1;
            }
            else
            {
                pos = next + old.Length;
            }
        }
        if (pos < s.Length) sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    private static string InsertEverywhere(string s, string insert)
    {
        var sb = new StringBuilder(insert);
        foreach (var c in s) sb.Append(c).Append(insert);
        return sb.ToString();
    }

    private static long CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        long count = 0;
        for (var pos = s.IndexOf(sub, StringComparison.Ordinal); pos >= 0; pos = s.IndexOf(sub, pos + sub.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    public static bool IsLower(string s) => s.Any(char.IsLower) && !s.Any(char.IsUpper);

    public static bool IsUpper(string s) => s.Any(char.IsUpper) && !s.Any(char.IsLower);

    // str.format with "{}", "{0}" and "{name}" fields (no format specs).
    private static string Format(string s, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '{' && i + 1 < s.Length && s[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < s.Length && s[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{')
            {
                sb.Append(c);
                continue;
            }
            var close = s.IndexOf('}', i);
            if (close < 0) throw Error("Single '{' encountered in format string");
            var field = s[(i + 1)..close];
            object? value;
            if (field.Length == 0) value = auto < args.Count ? args[auto++] : throw Error("Replacement index out of range");
            else if (int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var index)) value = index < args.Count ? args[index] : throw Error("Replacement index out of range");
            else value = kwargs.TryGetValue(field, out var named) ? named : throw Error($"'{field}'");
            sb.Append(Py.Str(value));
            i = close;
        }
        return sb.ToString();
    }

    // ---- globals -------------------------------------------------------------------------------------------

    /// <summary>The functions jinja2 and transformers make global: range, namespace, dict, raise_exception, strftime_now.</summary>
    public static void AddGlobals(Scope scope, Func<DateTime> now)
    {
        scope.Set("range", new PyFunction("range", (a, _) => Range(a)));
        scope.Set("namespace", new PyFunction("namespace", (a, k) =>
        {
            var ns = new Namespace();
            foreach (var arg in a)
            {
                if (arg is not PyDict initial) throw Error("namespace() takes keyword arguments or a dict");
                foreach (var (key, value) in initial) ns.Attributes[Py.Str(key)] = value;
            }
            foreach (var (key, value) in k) ns.Attributes[key] = value;
            return ns;
        }));
        scope.Set("dict", new PyFunction("dict", (a, k) =>
        {
            var dict = new PyDict();
            foreach (var arg in a)
                if (arg is PyDict initial)
                    foreach (var (key, value) in initial) dict[key] = value;
            foreach (var (key, value) in k) dict[key] = value;
            return dict;
        }));
        scope.Set("raise_exception", new PyFunction("raise_exception", (a, k) =>
            throw new ChatTemplateException(ChatTemplateErrorKind.Raised, Py.Str(Arg(a, k, 0, "message")))));
        scope.Set("strftime_now", new PyFunction("strftime_now", (a, k) => StrFTime(now(), RequireString(Arg(a, k, 0, "format"), "strftime_now format"))));
    }

    private static List<object?> Range(List<object?> args)
    {
        long start = 0, step = 1, stop;
        switch (args.Count)
        {
            case 1: stop = SliceInt(args[0]); break;
            case 2: start = SliceInt(args[0]); stop = SliceInt(args[1]); break;
            case 3: start = SliceInt(args[0]); stop = SliceInt(args[1]); step = SliceInt(args[2]); break;
            default: throw Error($"range expected 1 to 3 arguments, got {args.Count}");
        }
        if (step == 0) throw Error("range() arg 3 must not be zero");
        var result = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= 100_000) throw Error("range too big, maximum size for range is 100000");
            result.Add(i);
        }
        return result;
    }

    /// <summary>Python's strftime for the directives templates use (C locale names).</summary>
    public static string StrFTime(DateTime time, string format)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var d = format[++i];
            var noPad = false;
            if (d == '-' && i + 1 < format.Length)
            {
                noPad = true;
                d = format[++i];
            }
            string Pad(int value, int width) => noPad ? value.ToString(c) : value.ToString(new string('0', width), c);
            sb.Append(d switch
            {
                'a' => time.ToString("ddd", c),
                'A' => time.ToString("dddd", c),
                'b' or 'h' => time.ToString("MMM", c),
                'B' => time.ToString("MMMM", c),
                'd' => Pad(time.Day, 2),
                'e' => time.Day.ToString(c).PadLeft(2),
                'm' => Pad(time.Month, 2),
                'y' => Pad(time.Year % 100, 2),
                'Y' => time.Year.ToString(c),
                'H' => Pad(time.Hour, 2),
                'I' => Pad(time.Hour % 12 == 0 ? 12 : time.Hour % 12, 2),
                'M' => Pad(time.Minute, 2),
                'S' => Pad(time.Second, 2),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => Pad(time.DayOfYear, 3),
                'f' => (time.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", c),
                'w' => ((int)time.DayOfWeek).ToString(c),
                'u' => (time.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)time.DayOfWeek).ToString(c),
                'F' => time.ToString("yyyy-MM-dd", c),
                'T' => time.ToString("HH:mm:ss", c),
                'D' => time.ToString("MM/dd/yy", c),
                'R' => time.ToString("HH:mm", c),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + d,
            });
        }
        return sb.ToString();
    }
}
