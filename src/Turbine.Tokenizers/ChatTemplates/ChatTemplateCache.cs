using System.Collections.Concurrent;
using Turbine.Tokenizers.Configuration;

namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>A tokenizer's chat templates, each parsed once on first use.</summary>
internal sealed class ChatTemplateCache(TokenizerConfig config)
{
    private readonly ConcurrentDictionary<string, ChatTemplate> _parsed = new();
    private readonly Dictionary<string, string> _specialTokens = SpecialTokens(config);

    private static Dictionary<string, string> SpecialTokens(TokenizerConfig config)
    {
        var tokens = new Dictionary<string, string>();
        if (config.BosToken is { } bos) tokens["bos_token"] = bos;
        if (config.EosToken is { } eos) tokens["eos_token"] = eos;
        if (config.UnkToken is { } unk) tokens["unk_token"] = unk;
        if (config.PadToken is { } pad) tokens["pad_token"] = pad;
        return tokens;
    }

    /// <summary>
    /// The template named <paramref name="name"/>; without a name, transformers' choice: "tool_use" when tools are given
    /// and the model has it, else the default.
    /// </summary>
    public ChatTemplate Get(string? name, bool hasTools)
    {
        var templates = config.ChatTemplates;
        if (name is null)
        {
            name = hasTools && templates.ContainsKey("tool_use") ? "tool_use" : "default";
            if (!templates.ContainsKey(name))
            {
                throw new ChatTemplateException(ChatTemplateErrorKind.Missing, templates.Count == 0
                    ? "the model has no chat template (tokenizer_config.json has no chat_template)"
                    : $"the model has no default chat template; name one of: {string.Join(", ", templates.Keys)}");
            }
        }
        else if (!templates.ContainsKey(name))
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Missing, templates.Count == 0
                ? "the model has no chat template (tokenizer_config.json has no chat_template)"
                : $"the model has no chat template named '{name}'; it has: {string.Join(", ", templates.Keys)}");
        }
        return _parsed.GetOrAdd(name, n => ChatTemplate.Parse(templates[n], _specialTokens));
    }
}
