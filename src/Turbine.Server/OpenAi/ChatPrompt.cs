using System.Text.Json;
using Turbine.Server.Models;
using Turbine.Tokenizers;
using Turbine.Tokenizers.ChatTemplates;

namespace Turbine.Server.OpenAi;

/// <summary>One chat message: a role and its text.</summary>
/// <param name="Role">system, user, assistant or tool.</param>
/// <param name="Content">The text (parts of a content array are joined).</param>
public sealed record ChatTurn(string Role, string Content);

/// <summary>Chat messages from OpenAI JSON, and the prompt the model's chat template makes of them.</summary>
public static class ChatPrompt
{
    /// <summary>Parses an OpenAI <c>messages</c> array: content as a string or as text parts.</summary>
    public static IReadOnlyList<ChatTurn> ParseMessages(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw new InferenceException(InferenceError.InvalidArgument, "'messages' must be a non-empty array", "messages");
        var turns = new List<ChatTurn>();
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw new InferenceException(InferenceError.InvalidArgument, "each message needs a 'role' string", "messages");
            string content = "";
            if (m.TryGetProperty("content", out var c))
                content = c.ValueKind switch
                {
                    JsonValueKind.String => c.GetString()!,
                    JsonValueKind.Null => "",
                    JsonValueKind.Array => string.Concat(c.EnumerateArray()
                        .Where(p => p.TryGetProperty("type", out var t) && t.GetString() == "text" && p.TryGetProperty("text", out _))
                        .Select(p => p.GetProperty("text").GetString())),
                    _ => throw new InferenceException(InferenceError.InvalidArgument, "message 'content' must be a string or an array of parts", "messages"),
                };
            turns.Add(new ChatTurn(role.GetString()!, content));
        }
        return turns;
    }

    /// <summary>
    /// Renders <paramref name="turns"/> with the tokenizer's chat template; a model without one is a 400 naming the
    /// missing template.
    /// </summary>
    public static string Render(Tokenizer tokenizer, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt)
    {
        if (string.IsNullOrEmpty(tokenizer.ChatTemplate))
            throw new InferenceException(InferenceError.InvalidArgument,
                "this model has no chat template (tokenizer_config.json has no chat_template); use /v1/completions", "messages");
        try
        {
            return tokenizer.ApplyChatTemplate([.. turns.Select(t => new ChatMessage(t.Role, t.Content))], addGenerationPrompt);
        }
        catch (ChatTemplateException e)
        {
            throw new InferenceException(InferenceError.InvalidArgument, "the chat template failed: " + e.Message, "messages");
        }
    }
}
