using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>Converts .NET inputs to template values, and template values to JSON as transformers' <c>tojson</c> writes it.</summary>
internal static class ValueConversion
{
    /// <summary>
    /// Strings, numbers, booleans, null, <see cref="JsonElement"/>, <see cref="JsonNode"/>, <see cref="ChatMessage"/>,
    /// dictionaries with string keys and other enumerables (as lists).
    /// </summary>
    public static object? FromObject(object? value) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        ulong u when u <= long.MaxValue => (long)u,
        float f => (double)f,
        decimal m => (double)m,
        JsonElement element => FromJson(element),
        JsonNode node => FromJson(JsonSerializer.SerializeToElement(node)),
        ChatMessage message => FromMessage(message),
        ChatToolCall call => FromToolCall(call),
        ChatContentPart part => FromPart(part),
        IDictionary dictionary => FromDictionary(dictionary),
        IEnumerable enumerable => FromEnumerable(enumerable),
        _ => throw new ArgumentException($"a {value.GetType().Name} cannot be passed to a chat template"),
    };

    private static PyDict FromDictionary(IDictionary dictionary)
    {
        var dict = new PyDict(dictionary.Count);
        foreach (DictionaryEntry entry in dictionary) dict[FromObject(entry.Key) ?? "None"] = FromObject(entry.Value);
        return dict;
    }

    private static List<object?> FromEnumerable(IEnumerable enumerable)
    {
        var list = new List<object?>();
        foreach (var item in enumerable) list.Add(FromObject(item));
        return list;
    }

    public static object? FromJson(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var dict = new PyDict();
                foreach (var property in element.EnumerateObject()) dict[property.Name] = FromJson(property.Value);
                return dict;
            case JsonValueKind.Array:
                return element.EnumerateArray().Select(FromJson).ToList();
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Number:
                // JSON numbers without a fraction or exponent are Python ints, the rest floats, as json.loads decides.
                var raw = element.GetRawText();
                if (raw.IndexOfAny(['.', 'e', 'E']) < 0 && element.TryGetInt64(out var integer)) return integer;
                return element.GetDouble();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }

    public static PyDict FromMessage(ChatMessage message)
    {
        var dict = new PyDict { ["role"] = message.Role };
        dict["content"] = message.ContentParts is { } parts ? parts.Select(p => (object?)FromPart(p)).ToList() : message.Content;
        if (message.Name is not null) dict["name"] = message.Name;
        if (message.ToolCalls is { Count: > 0 } calls) dict["tool_calls"] = calls.Select(c => (object?)FromToolCall(c)).ToList();
        if (message.ToolCallId is not null) dict["tool_call_id"] = message.ToolCallId;
        if (message.ReasoningContent is not null) dict["reasoning_content"] = message.ReasoningContent;
        if (message.AdditionalFields is { } extra)
            foreach (var (key, value) in extra) dict[key] = FromObject(value);
        return dict;
    }

    private static PyDict FromPart(ChatContentPart part)
    {
        var dict = new PyDict { ["type"] = part.Type };
        if (part.Text is not null) dict["text"] = part.Text;
        if (part.AdditionalFields is { } extra)
            foreach (var (key, value) in extra) dict[key] = FromObject(value);
        return dict;
    }

    private static PyDict FromToolCall(ChatToolCall call)
    {
        var dict = new PyDict();
        if (call.Id is not null) dict["id"] = call.Id;
        dict["type"] = "function";
        dict["function"] = new PyDict { ["name"] = call.Name, ["arguments"] = FromObject(call.Arguments) };
        return dict;
    }

    /// <summary>Python's <c>json.dumps</c> with transformers' defaults (ensure_ascii=False).</summary>
    public static string ToJson(object? value, string? indent, bool sortKeys, bool ensureAscii, string? itemSeparator, string? keySeparator)
    {
        var sb = new StringBuilder();
        itemSeparator ??= indent is null ? ", " : ",";
        keySeparator ??= ": ";
        Write(sb, value, indent, 0, sortKeys, ensureAscii, itemSeparator, keySeparator);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, string? indent, int level, bool sortKeys, bool ascii, string itemSep, string keySep)
    {
        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d));
                break;
            case string s: WriteString(sb, s, ascii); break;
            case IReadOnlyList<object?> list:
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, level + 1, sortKeys, ascii, itemSep, keySep);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                break;
            case PyDict dict:
                if (dict.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                var entries = dict.Select(e => (Key: JsonKey(e.Key), e.Value)).ToList();
                if (sortKeys) entries.Sort((x, y) => string.CompareOrdinal(x.Key, y.Key));
                sb.Append('{');
                for (var i = 0; i < entries.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, entries[i].Key, ascii);
                    sb.Append(keySep);
                    Write(sb, entries[i].Value, indent, level + 1, sortKeys, ascii, itemSep, keySep);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                break;
            default:
                throw Py.TypeError($"Object of type {Py.TypeName(value)} is not JSON serializable");
        }
    }

    private static string JsonKey(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Py.FloatRepr(d),
        _ => throw Py.TypeError($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
    };

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent is null) return;
        sb.Append('\n');
        for (var i = 0; i < level; i++) sb.Append(indent);
    }

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7f)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
