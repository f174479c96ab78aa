namespace Turbine.Server.Models;

/// <summary>Classes of inference failure; each frontend maps them to its own status codes.</summary>
public enum InferenceError
{
    /// <summary>The request is malformed or its values are out of range (HTTP 400).</summary>
    InvalidArgument,
    /// <summary>No such model or version (HTTP 404).</summary>
    NotFound,
    /// <summary>The model is not ready or the server is over capacity (HTTP 503).</summary>
    Unavailable,
    /// <summary>The request is well formed but cannot be served as asked (HTTP 422).</summary>
    Unprocessable,
    /// <summary>A failure inside the server (HTTP 500).</summary>
    Internal,
}

/// <summary>An inference that failed for a reason the client should see.</summary>
public sealed class InferenceException(InferenceError error, string message, string? param = null) : Exception(message)
{
    /// <summary>The request field at fault, when known (OpenAI's <c>param</c>).</summary>
    public string? Param { get; } = param;

    /// <summary>What kind of failure.</summary>
    public InferenceError Error { get; } = error;
}
