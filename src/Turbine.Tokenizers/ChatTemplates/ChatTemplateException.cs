namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>What went wrong in a chat template.</summary>
public enum ChatTemplateErrorKind
{
    /// <summary>The template source is not valid Jinja (or uses a construct Turbine does not support).</summary>
    Syntax,

    /// <summary>The template called <c>raise_exception</c>, typically because the conversation has a shape the model does not accept.</summary>
    Raised,

    /// <summary>Rendering failed (undefined attribute, type error, ...), as it would in Jinja.</summary>
    Render,

    /// <summary>The model has no chat template (or no template of the requested name).</summary>
    Missing,
}

/// <summary>
/// A chat template could not be parsed or rendered. All kinds are caused by the request or the model's template,
/// never by the server, so an HTTP front end answers them with 400.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    /// <summary>Creates the exception; <paramref name="line"/> and <paramref name="column"/> are 1-based, 0 when unknown.</summary>
    public ChatTemplateException(ChatTemplateErrorKind kind, string message, int line = 0, int column = 0, Exception? inner = null)
        : base(Format(message, line, column), inner)
    {
        Kind = kind;
        Detail = message;
        Line = line;
        Column = column;
    }

    /// <summary>What went wrong.</summary>
    public ChatTemplateErrorKind Kind { get; }

    /// <summary>The message without the position (for <see cref="ChatTemplateErrorKind.Raised"/>, exactly the template's text).</summary>
    public string Detail { get; }

    /// <summary>1-based line in the template source, or 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source, or 0 when unknown.</summary>
    public int Column { get; }

    private static string Format(string message, int line, int column) =>
        line <= 0 ? message : column <= 0 ? $"{message} (line {line})" : $"{message} (line {line}, column {column})";
}
