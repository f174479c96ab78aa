namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>
/// One message of a conversation as chat templates see it: a dict with <c>role</c>, <c>content</c> and, when set,
/// <c>name</c>, <c>tool_calls</c>, <c>tool_call_id</c> and <c>reasoning_content</c>.
/// </summary>
public sealed record ChatMessage
{
    /// <summary>Creates a message with text content.</summary>
    public ChatMessage(string role, string? content)
    {
        Role = role;
        Content = content;
    }

    /// <summary>"system", "user", "assistant", "tool", ...</summary>
    public string Role { get; init; }

    /// <summary>The text content; ignored when <see cref="ContentParts"/> is set. Null renders as Python's None.</summary>
    public string? Content { get; init; }

    /// <summary>Content as a list of parts (<c>{type: 'text', text: ...}</c>), for templates that handle multi-part content.</summary>
    public IReadOnlyList<ChatContentPart>? ContentParts { get; init; }

    /// <summary>The participant name, if any.</summary>
    public string? Name { get; init; }

    /// <summary>Tool calls made by an assistant message.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>For a "tool" message, the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>The reasoning ("thinking") text of an assistant message, for templates that render it separately.</summary>
    public string? ReasoningContent { get; init; }

    /// <summary>Further fields of the message dict (values as accepted for <c>extra</c> variables).</summary>
    public IReadOnlyDictionary<string, object?>? AdditionalFields { get; init; }
}

/// <summary>One part of multi-part message content.</summary>
/// <param name="Type">The part type, e.g. "text".</param>
/// <param name="Text">The text of a text part.</param>
public sealed record ChatContentPart(string Type, string? Text)
{
    /// <summary>A text part.</summary>
    public static ChatContentPart FromText(string text) => new("text", text);

    /// <summary>Further fields of the part dict.</summary>
    public IReadOnlyDictionary<string, object?>? AdditionalFields { get; init; }
}

/// <summary>A function call made by the assistant; templates see <c>{id, type: 'function', function: {name, arguments}}</c>.</summary>
/// <param name="Id">The call id, if any.</param>
/// <param name="Name">The function name.</param>
/// <param name="Arguments">
/// The arguments: a JSON string as OpenAI clients send it, or a structured value (<see cref="System.Text.Json.JsonElement"/>,
/// dictionary) for templates that iterate or <c>tojson</c> them.
/// </param>
public sealed record ChatToolCall(string? Id, string Name, object? Arguments);
