namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>
/// A parsed Hugging Face chat template: the Jinja subset tokenizer_config.json templates use, rendered the way
/// transformers' <c>apply_chat_template</c> renders it (jinja2 with trim_blocks and lstrip_blocks, transformers'
/// <c>tojson</c>, <c>raise_exception</c> and <c>strftime_now</c>).
/// </summary>
/// <remarks>Immutable and thread-safe: parse once, render concurrently.</remarks>
public sealed class ChatTemplate
{
    private readonly List<Stmt> _body;
    private readonly SourceMap _map;
    private readonly IReadOnlyDictionary<string, string> _specialTokens;

    private ChatTemplate(string source, List<Stmt> body, SourceMap map, IReadOnlyDictionary<string, string> specialTokens)
    {
        Source = source;
        _body = body;
        _map = map;
        _specialTokens = specialTokens;
    }

    /// <summary>The template source as given.</summary>
    public string Source { get; }

    /// <summary>Clock for <c>strftime_now</c>; tests pin it.</summary>
    internal Func<DateTime> Now { get; set; } = () => DateTime.Now;

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <param name="source">The Jinja template text.</param>
    /// <param name="specialTokens">
    /// Variables every render gets, e.g. <c>bos_token</c> and <c>eos_token</c> from tokenizer_config.json
    /// (transformers passes the tokenizer's special tokens this way).
    /// </param>
    /// <exception cref="ChatTemplateException">A syntax error, with its line and column.</exception>
    public static ChatTemplate Parse(string source, IReadOnlyDictionary<string, string>? specialTokens = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var normalized = Lexer.Normalize(source);
        var map = new SourceMap(normalized);
        var tokens = Lexer.Tokenize(normalized, map);
        var body = Parser.Parse(tokens, map);
        return new ChatTemplate(source, body, map, specialTokens ?? new Dictionary<string, string>());
    }

    /// <summary>Renders a conversation.</summary>
    /// <param name="messages">The conversation, as the template's <c>messages</c>.</param>
    /// <param name="addGenerationPrompt">The template's <c>add_generation_prompt</c>: end with the assistant turn header.</param>
    /// <param name="extra">
    /// Further variables, e.g. <c>tools</c>, <c>documents</c> or <c>enable_thinking</c>; they override the defaults.
    /// Values may be strings, numbers, booleans, null, <see cref="System.Text.Json.JsonElement"/>,
    /// <see cref="System.Text.Json.Nodes.JsonNode"/>, dictionaries with string keys and enumerables.
    /// <c>tools</c> and <c>documents</c> are None when not given, as in transformers.
    /// </param>
    /// <exception cref="ChatTemplateException">The template raised an exception or failed to render.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => (object?)ValueConversion.FromMessage(m)).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (extra is not null)
            foreach (var (name, value) in extra) variables[name] = value;
        return Render(variables);
    }

    /// <summary>Renders with exactly <paramref name="variables"/> (plus the special tokens), for callers that build <c>messages</c> themselves.</summary>
    /// <exception cref="ChatTemplateException">The template raised an exception or failed to render.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var globals = new Scope(null);
        Builtins.AddGlobals(globals, Now);
        foreach (var (name, token) in _specialTokens) globals.Set(name, token);
        try
        {
            foreach (var (name, value) in variables) globals.Set(name, ValueConversion.FromObject(value));
        }
        catch (ArgumentException e)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Render, e.Message, inner: e);
        }
        return new Renderer(_map).Render(_body, new Scope(globals));
    }
}
