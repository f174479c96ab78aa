using System.Text.Json;

namespace Turbine.Tokenizers.Configuration;

/// <summary>Typed access to tokenizer JSON that reports the offending file and property instead of a bare JSON error.</summary>
internal readonly struct JsonReading(string path)
{
    public string Path { get; } = path;

    public TokenizerFormatException Error(string problem) => new(Path, problem);

    public JsonElement Required(JsonElement obj, string name, string context)
    {
        if (obj.ValueKind != JsonValueKind.Object || !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            throw Error($"{context} has no \"{name}\"");
        return value;
    }

    public static JsonElement? Optional(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    public string RequiredString(JsonElement obj, string name, string context)
    {
        var value = Required(obj, name, context);
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Error($"{context}: \"{name}\" must be a string");
    }

    public string? OptionalString(JsonElement obj, string name, string context)
    {
        var value = Optional(obj, name);
        if (value is null) return null;
        return value.Value.ValueKind == JsonValueKind.String ? value.Value.GetString() : throw Error($"{context}: \"{name}\" must be a string");
    }

    public bool Bool(JsonElement obj, string name, bool fallback, string context)
    {
        var value = Optional(obj, name);
        if (value is null) return fallback;
        return value.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"{context}: \"{name}\" must be true or false"),
        };
    }

    public int Int(JsonElement obj, string name, int fallback, string context)
    {
        var value = Optional(obj, name);
        if (value is null) return fallback;
        return value.Value.ValueKind == JsonValueKind.Number && value.Value.TryGetInt32(out var n)
            ? n
            : throw Error($"{context}: \"{name}\" must be an integer");
    }

    public static JsonDocument Parse(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerFormatException(path, $"cannot be read ({e.Message})", e);
        }
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, $"is not valid JSON ({e.Message})", e);
        }
    }
}
