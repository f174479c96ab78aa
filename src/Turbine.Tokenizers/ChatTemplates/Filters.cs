using System.Globalization;
using System.Text;

namespace Turbine.Tokenizers.ChatTemplates;

internal static partial class Builtins
{
    private delegate object? FilterFunc(object? value, List<object?> args, Dictionary<string, object?> kwargs);

    private static readonly Dictionary<string, FilterFunc> Filters = new()
    {
        ["trim"] = (v, a, k) => Strip(Py.Str(v), OptionalString(Arg(a, k, 0, "chars"), "trim chars"), true, true),
        ["upper"] = (v, _, _) => Upper(Py.Str(v)),
        ["lower"] = (v, _, _) => Py.Str(v).ToLowerInvariant(),
        ["capitalize"] = (v, _, _) => Capitalize(Py.Str(v)),
        ["title"] = (v, _, _) => JinjaTitle(Py.Str(v)),
        ["length"] = (v, _, _) => Py.Length(v),
        ["count"] = (v, _, _) => Py.Length(v),
        ["wordcount"] = (v, _, _) => (long)Split(Py.Str(v), null, -1, false).Count,
        ["string"] = (v, _, _) => Py.Str(v),
        ["safe"] = (v, _, _) => v,
        ["escape"] = (v, _, _) => Escape(v),
        ["e"] = (v, _, _) => Escape(v),
        ["tojson"] = ToJson,
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (v, _, _) => v switch
        {
            long l => (object)Math.Abs(l),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw Error($"bad operand type for abs(): '{Py.TypeName(v)}'"),
        },
        ["round"] = Round,
        ["join"] = Join,
        ["first"] = (v, _, _) => Py.Iterate(v) is { Count: > 0 } items ? items[0] : new Undefined("No first item, sequence was empty."),
        ["last"] = (v, _, _) => Py.Iterate(v) is { Count: > 0 } items ? items[^1] : new Undefined("No last item, sequence was empty."),
        ["default"] = Default,
        ["d"] = Default,
        ["items"] = (v, _, _) => v switch
        {
            PyDict dict => dict.Select(e => (object?)new object?[] { e.Key, e.Value }).ToList(),
            Undefined => new List<object?>(),
            _ => throw Error($"Can only get item pairs from a mapping, not {Py.TypeName(v)}"),
        },
        ["dictsort"] = DictSort,
        ["replace"] = (v, a, k) => Replace(Py.Str(v), Py.Str(Arg(a, k, 0, "old")), Py.Str(Arg(a, k, 1, "new")), MaxSplit(Arg(a, k, 2, "count", -1L))),
        ["list"] = (v, _, _) => new List<object?>(Py.Iterate(v)),
        ["reverse"] = (v, _, _) => v is string s ? string.Concat(Py.StringChars(s).AsEnumerable().Reverse()) : Py.Iterate(v).Reverse().ToList(),
        ["sort"] = Sort,
        ["unique"] = Unique,
        ["min"] = (v, a, k) => MinMax(v, a, k, max: false),
        ["max"] = (v, a, k) => MinMax(v, a, k, max: true),
        ["sum"] = Sum,
        ["indent"] = Indent,
        ["select"] = (v, a, _) => SelectOrReject(v, a, select: true, attribute: false),
        ["reject"] = (v, a, _) => SelectOrReject(v, a, select: false, attribute: false),
        ["selectattr"] = (v, a, _) => SelectOrReject(v, a, select: true, attribute: true),
        ["rejectattr"] = (v, a, _) => SelectOrReject(v, a, select: false, attribute: true),
        ["map"] = Map,
        ["attr"] = (v, a, k) => GetAttr(v, RequireString(Arg(a, k, 0, "name"), "attr name")),
        ["batch"] = Batch,
        ["center"] = (v, a, k) => Center(Py.Str(v), (int)MaxSplit(Arg(a, k, 0, "width", 80L))),
        ["format"] = (v, a, _) => PercentFormat(Py.Str(v), a),
    };

    public static bool HasFilter(string name) => Filters.ContainsKey(name);

    public static object? Filter(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (!Filters.TryGetValue(name, out var filter)) throw Error($"No filter named '{name}'.");
        return filter(value, args, kwargs);
    }

    // Python's str.center: an odd margin puts the extra space on the left when the width is odd.
    private static string Center(string s, int width)
    {
        var margin = width - s.Length;
        if (margin <= 0) return s;
        var left = margin / 2 + (margin & width & 1);
        return new string(' ', left) + s + new string(' ', margin - left);
    }

    // The "%" operator the format filter applies: %s, %r, %d, %i, %f and %% without flags.
    private static string PercentFormat(string format, List<object?> args)
    {
        var sb = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var spec = format[++i];
            if (spec == '%')
            {
                sb.Append('%');
                continue;
            }
            if (next >= args.Count) throw Error("not enough arguments for format string");
            var arg = args[next++];
            sb.Append(spec switch
            {
                's' => Py.Str(arg),
                'r' => Py.Repr(arg),
                'd' or 'i' => ((long)Math.Truncate(Py.ToDouble(arg))).ToString(CultureInfo.InvariantCulture),
                'f' => Py.ToDouble(arg).ToString("F6", CultureInfo.InvariantCulture),
                _ => throw Error($"unsupported format character '{spec}'"),
            });
        }
        if (next < args.Count) throw Error("not all arguments converted during string formatting");
        return sb.ToString();
    }

    // jinja2's title filter: words start after whitespace, '-', or an opening bracket.
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var wordStart = true;
        foreach (var c in s)
        {
            sb.Append(wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
        }
        return sb.ToString();
    }

    private static string Escape(object? value) => Py.Str(value)
        .Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    // transformers replaces jinja2's tojson with json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...).
    private static object? ToJson(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var indent = Arg(args, kwargs, 0, "indent") switch
        {
            null => null,
            long n => new string(' ', (int)Math.Max(0, n)),
            string s => s,
            var other => throw Error($"indent must be an int or a string, not {Py.TypeName(other)}"),
        };
        var ensureAscii = Py.Truthy(kwargs.GetValueOrDefault("ensure_ascii", false));
        var sortKeys = Py.Truthy(kwargs.GetValueOrDefault("sort_keys", false));
        string? itemSeparator = null, keySeparator = null;
        if (kwargs.TryGetValue("separators", out var separators) && separators is IReadOnlyList<object?> { Count: 2 } pair)
        {
            itemSeparator = RequireString(pair[0], "separator");
            keySeparator = RequireString(pair[1], "separator");
        }
        return ValueConversion.ToJson(value, indent, sortKeys, ensureAscii, itemSeparator, keySeparator);
    }

    private static object? ToInt(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var fallback = Arg(args, kwargs, 0, "default", 0L);
        switch (value)
        {
            case long or bool: return value is bool b ? (b ? 1L : 0L) : value;
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var text = s.Trim().Replace("_", "");
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)) return parsed;
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && double.IsFinite(real)) return (long)Math.Truncate(real);
                return fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var fallback = Arg(args, kwargs, 0, "default", 0.0);
        return value switch
        {
            long or bool or double => Py.ToDouble(value),
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            _ => fallback,
        };
    }

    private static object? Round(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var precision = (int)MaxSplit(Arg(args, kwargs, 0, "precision", 0L));
        var method = Py.Str(Arg(args, kwargs, 1, "method", "common"));
        var d = Py.ToDouble(value);
        var scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => Math.Round(d, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
            "ceil" => Math.Ceiling(d * scale) / scale,
            "floor" => Math.Floor(d * scale) / scale,
            _ => throw Error("method must be common, ceil or floor"),
        };
    }

    private static object? Join(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var separator = Py.Str(Arg(args, kwargs, 0, "d", ""));
        var attribute = Arg(args, kwargs, 1, "attribute");
        var items = Py.Iterate(value).Select(x => attribute is null ? x : AttributePath(x, attribute));
        return string.Join(separator, items.Select(Py.Str));
    }

    private static object? Default(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var fallback = Arg(args, kwargs, 0, "default_value", "");
        var boolean = Py.Truthy(Arg(args, kwargs, 1, "boolean", false));
        return value is Undefined || (boolean && !Py.Truthy(value)) ? fallback : value;
    }

    private static object? DictSort(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (value is not PyDict dict) throw Error("dictsort expects a mapping");
        var caseSensitive = Py.Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
        var byValue = Py.Str(Arg(args, kwargs, 1, "by", "key")) == "value";
        var reverse = Py.Truthy(Arg(args, kwargs, 2, "reverse", false));
        var pairs = dict.Select(e => new object?[] { e.Key, e.Value }).ToList();
        var sorted = StableSort(pairs, p => SortKey(byValue ? p[1] : p[0], caseSensitive), reverse);
        return sorted.Select(p => (object?)p).ToList();
    }

    private static object? SortKey(object? value, bool caseSensitive) =>
        !caseSensitive && value is string s ? s.ToLowerInvariant() : value;

    private static List<T> StableSort<T>(List<T> items, Func<T, object?> key, bool reverse)
    {
        var keyed = items.Select((item, index) => (item, key: key(item), index)).ToList();
        keyed.Sort((x, y) =>
        {
            var c = Py.Compare(x.key, y.key);
            if (reverse) c = -c;
            return c != 0 ? c : x.index.CompareTo(y.index);
        });
        return keyed.Select(k => k.item).ToList();
    }

    private static object? Sort(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var reverse = Py.Truthy(Arg(args, kwargs, 0, "reverse", false));
        var caseSensitive = Py.Truthy(Arg(args, kwargs, 1, "case_sensitive", false));
        var attribute = Arg(args, kwargs, 2, "attribute");
        return StableSort(Py.Iterate(value).ToList(), x => SortKey(attribute is null ? x : AttributePath(x, attribute), caseSensitive), reverse);
    }

    private static object? Unique(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var caseSensitive = Py.Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
        var attribute = Arg(args, kwargs, 1, "attribute");
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in Py.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : AttributePath(item, attribute), caseSensitive);
            if (seen.Any(s => Py.Equal(s, key))) continue;
            seen.Add(key);
            result.Add(item);
        }
        return result;
    }

    private static object? MinMax(object? value, List<object?> args, Dictionary<string, object?> kwargs, bool max)
    {
        var caseSensitive = Py.Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
        var attribute = Arg(args, kwargs, 1, "attribute");
        var items = Py.Iterate(value);
        if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
        var best = items[0];
        foreach (var item in items.Skip(1))
        {
            var c = Py.Compare(SortKey(attribute is null ? item : AttributePath(item, attribute), caseSensitive),
                SortKey(attribute is null ? best : AttributePath(best, attribute), caseSensitive));
            if (max ? c > 0 : c < 0) best = item;
        }
        return best;
    }

    private static object? Sum(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var attribute = Arg(args, kwargs, 0, "attribute");
        var total = Arg(args, kwargs, 1, "start", 0L);
        foreach (var item in Py.Iterate(value)) total = Py.Binary("+", total, attribute is null ? item : AttributePath(item, attribute));
        return total;
    }

    private static object? Indent(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var width = Arg(args, kwargs, 0, "width", 4L);
        var indentation = width is string w ? w : new string(' ', (int)MaxSplit(width));
        var first = Py.Truthy(Arg(args, kwargs, 1, "first", false));
        var blank = Py.Truthy(Arg(args, kwargs, 2, "blank", false));
        var lines = SplitLines(Py.Str(value) + "\n").Select(l => (string)l!).ToList();
        string result;
        if (blank)
        {
            result = string.Join("\n" + indentation, lines);
        }
        else
        {
            result = lines[0];
            if (lines.Count > 1) result += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indentation + l : l));
        }
        return first ? indentation + result : result;
    }

    private static object? Batch(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var size = (int)MaxSplit(Arg(args, kwargs, 0, "linecount"));
        if (size <= 0) throw Error("batch size must be positive");
        var fill = kwargs.TryGetValue("fill_with", out var f) ? f : args.Count > 1 ? args[1] : null;
        var hasFill = kwargs.ContainsKey("fill_with") || args.Count > 1;
        var result = new List<object?>();
        var items = Py.Iterate(value);
        for (var i = 0; i < items.Count; i += size)
        {
            var chunk = items.Skip(i).Take(size).ToList();
            while (hasFill && chunk.Count < size) chunk.Add(fill);
            result.Add(chunk);
        }
        return result;
    }

    private static object? SelectOrReject(object? value, List<object?> args, bool select, bool attribute)
    {
        var offset = attribute ? 1 : 0;
        var attributeName = attribute ? (args.Count > 0 ? args[0] : throw Error("missing parameter for attribute name")) : null;
        var testName = args.Count > offset ? RequireString(args[offset], "test name") : null;
        var testArgs = args.Skip(offset + 1).ToList();
        var result = new List<object?>();
        foreach (var item in Py.Iterate(value))
        {
            var subject = attribute ? AttributePath(item, attributeName!) : item;
            var passes = testName is null ? Py.Truthy(subject) : Test(testName, subject, testArgs);
            if (passes == select) result.Add(item);
        }
        return result;
    }

    private static object? Map(object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var items = Py.Iterate(value);
        if (kwargs.TryGetValue("attribute", out var attribute))
        {
            var hasDefault = kwargs.TryGetValue("default", out var fallback);
            return items.Select(item =>
            {
                var result = AttributePath(item, attribute);
                return hasDefault && result is Undefined ? fallback : result;
            }).ToList();
        }
        if (args.Count == 0) throw Error("map requires a filter name or attribute=");
        var filterName = RequireString(args[0], "filter name");
        var filterArgs = args.Skip(1).ToList();
        return items.Select(item => Filter(filterName, item, filterArgs, new Dictionary<string, object?>(kwargs))).ToList();
    }

    // jinja2's make_attrgetter: "a.b.0" looks up each part as an item (integers for digits), then as an attribute.
    private static object? AttributePath(object? item, object? attribute)
    {
        if (attribute is long index) return GetItem(item, index);
        foreach (var part in Py.Str(attribute).Split('.'))
        {
            object? key = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : part;
            if (item is Undefined) return item;
            item = GetItem(item, key);
        }
        return item;
    }
}
