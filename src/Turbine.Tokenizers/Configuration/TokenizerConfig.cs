using System.Text.Json;

namespace Turbine.Tokenizers.Configuration;

/// <summary>The parts of a Hugging Face tokenizer_config.json that Turbine uses.</summary>
public sealed class TokenizerConfig
{
    /// <summary>Beginning-of-sequence token text, if any.</summary>
    public string? BosToken { get; init; }

    /// <summary>End-of-sequence token text, if any.</summary>
    public string? EosToken { get; init; }

    /// <summary>Padding token text, if any.</summary>
    public string? PadToken { get; init; }

    /// <summary>Unknown token text, if any.</summary>
    public string? UnkToken { get; init; }

    /// <summary>add_bos_token, when the file gives it (transformers' slow-tokenizer flag; tokenizer.json's post-processor decides for Encode).</summary>
    public bool? AddBosToken { get; init; }

    /// <summary>add_eos_token, when the file gives it.</summary>
    public bool? AddEosToken { get; init; }

    /// <summary>The default chat template (Jinja source), or null.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>All named chat templates; a single-string chat_template is named "default".</summary>
    public IReadOnlyDictionary<string, string> ChatTemplates { get; init; } = new Dictionary<string, string>();

    /// <summary>model_max_length, saturated to <see cref="long.MaxValue"/> (files often hold 1e30 for "no limit").</summary>
    public long? ModelMaxLength { get; init; }

    /// <summary>An empty configuration, for a tokenizer.json without a tokenizer_config.json.</summary>
    public static TokenizerConfig Empty { get; } = new();

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="TokenizerFormatException">The file cannot be read or a field has the wrong shape.</exception>
    public static TokenizerConfig Load(string path)
    {
        using var document = JsonReading.Parse(path);
        var json = new JsonReading(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw json.Error("the top level must be a JSON object");
        var templates = new Dictionary<string, string>();
        string? defaultTemplate = null;
        if (JsonReading.Optional(root, "chat_template") is { } chatTemplate)
        {
            if (chatTemplate.ValueKind == JsonValueKind.String)
            {
                defaultTemplate = chatTemplate.GetString()!;
                templates["default"] = defaultTemplate;
            }
            else if (chatTemplate.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in chatTemplate.EnumerateArray())
                {
                    var name = json.RequiredString(item, "name", "chat_template[]");
                    templates[name] = json.RequiredString(item, "template", "chat_template[]");
                }
                defaultTemplate = templates.GetValueOrDefault("default");
            }
            else
            {
                throw json.Error("chat_template must be a string or an array of {\"name\", \"template\"}");
            }
        }
        return new TokenizerConfig
        {
            BosToken = ReadToken(json, root, "bos_token"),
            EosToken = ReadToken(json, root, "eos_token"),
            PadToken = ReadToken(json, root, "pad_token"),
            UnkToken = ReadToken(json, root, "unk_token"),
            AddBosToken = JsonReading.Optional(root, "add_bos_token") is null ? null : json.Bool(root, "add_bos_token", false, "the config"),
            AddEosToken = JsonReading.Optional(root, "add_eos_token") is null ? null : json.Bool(root, "add_eos_token", false, "the config"),
            ChatTemplate = defaultTemplate,
            ChatTemplates = templates,
            ModelMaxLength = ReadMaxLength(json, root),
        };
    }

    // A special token is written either as its text or as an AddedToken object {"content": ..., ...}.
    private static string? ReadToken(JsonReading json, JsonElement root, string name)
    {
        if (JsonReading.Optional(root, name) is not { } value) return null;
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object => json.RequiredString(value, "content", $"\"{name}\""),
            _ => throw json.Error($"\"{name}\" must be a string or an object with \"content\""),
        };
    }

    private static long? ReadMaxLength(JsonReading json, JsonElement root)
    {
        if (JsonReading.Optional(root, "model_max_length") is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Number) throw json.Error("\"model_max_length\" must be a number");
        if (value.TryGetInt64(out var exact)) return exact;
        var approximate = value.GetDouble();
        return approximate >= long.MaxValue ? long.MaxValue : (long)approximate;
    }
}
