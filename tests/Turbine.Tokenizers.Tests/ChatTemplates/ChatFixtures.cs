using System.Collections.Concurrent;
using System.Text.Json;
using Turbine.Tokenizers.ChatTemplates;

namespace Turbine.Tokenizers.Tests.ChatTemplates;

/// <summary>The reference renders in tests/fixtures/chat (made by tools/reference/make_chat_references.py with transformers).</summary>
internal static class ChatFixtures
{
    public static readonly string[] TemplateNames =
        ["llama3", "qwen3", "demo", "chatml-qwen2", "mistral-instruct", "llama2-chat", "chatglm3", "zephyr", "gemma"];

    public sealed record Case(
        string Name, IReadOnlyList<ChatMessage> Messages, bool AddGenerationPrompt, Dictionary<string, object?> Extra,
        string? Expected, string? Error, string? ErrorType, string? Template);

    public sealed record Fixture(string Name, string Template, string? BosToken, string? EosToken, Case[] Cases)
    {
        public Dictionary<string, string> SpecialTokens()
        {
            var tokens = new Dictionary<string, string>();
            if (BosToken is not null) tokens["bos_token"] = BosToken;
            if (EosToken is not null) tokens["eos_token"] = EosToken;
            return tokens;
        }
    }

    private static readonly ConcurrentDictionary<string, Fixture> Loaded = new();

    public static Fixture Load(string name) => Loaded.GetOrAdd(name, n =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TestData.RepoRoot, "tests", "fixtures", "chat", n + ".json")));
        var root = doc.RootElement;
        return new Fixture(n,
            root.TryGetProperty("template", out var t) ? t.GetString()! : "",
            OptionalString(root, "bos_token"), OptionalString(root, "eos_token"),
            root.GetProperty("cases").EnumerateArray().Select(ReadCase).ToArray());
    });

    private static string? OptionalString(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static Case ReadCase(JsonElement c)
    {
        var extra = new Dictionary<string, object?>();
        foreach (var property in c.GetProperty("extra").EnumerateObject()) extra[property.Name] = property.Value.Clone();
        return new Case(
            c.GetProperty("name").GetString()!,
            c.GetProperty("messages").EnumerateArray().Select(ReadMessage).ToList(),
            c.GetProperty("add_generation_prompt").GetBoolean(),
            extra,
            OptionalString(c, "expected"), OptionalString(c, "error"), OptionalString(c, "error_type"), OptionalString(c, "template"));
    }

    /// <summary>A message dict as JSON to a <see cref="ChatMessage"/>, as the server would build it from a request.</summary>
    public static ChatMessage ReadMessage(JsonElement m)
    {
        var content = m.GetProperty("content");
        return new ChatMessage(m.GetProperty("role").GetString()!, content.ValueKind == JsonValueKind.String ? content.GetString() : null)
        {
            ContentParts = content.ValueKind == JsonValueKind.Array
                ? content.EnumerateArray().Select(p => new ChatContentPart(p.GetProperty("type").GetString()!, OptionalString(p, "text"))).ToList()
                : null,
            Name = OptionalString(m, "name"),
            ReasoningContent = OptionalString(m, "reasoning_content"),
            ToolCallId = OptionalString(m, "tool_call_id"),
            ToolCalls = m.TryGetProperty("tool_calls", out var calls)
                ? calls.EnumerateArray().Select(call =>
                {
                    var function = call.GetProperty("function");
                    var arguments = function.GetProperty("arguments");
                    return new ChatToolCall(OptionalString(call, "id"), function.GetProperty("name").GetString()!,
                        arguments.ValueKind == JsonValueKind.String ? arguments.GetString() : arguments.Clone());
                }).ToList()
                : null,
        };
    }

    public static TheoryData<string, string> AllTemplateCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in TemplateNames)
            foreach (var c in Load(name).Cases) data.Add(name, c.Name);
        return data;
    }

    public static TheoryData<string> AllSnippets()
    {
        var data = new TheoryData<string>();
        foreach (var c in Load("snippets").Cases) data.Add(c.Name);
        return data;
    }

    public static string Show(string? text) => text is null ? "null" : JsonSerializer.Serialize(text);
}
