using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Http;

namespace Turbine.Server.OpenAi;

/// <summary>OpenAI's error shape: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
public static class OpenAiErrors
{
    /// <summary>True for the routes that answer in OpenAI's shape (/v1, /tokenize, /detokenize).</summary>
    public static bool Owns(PathString path) =>
        path.StartsWithSegments("/v1") || path.StartsWithSegments("/tokenize") || path.StartsWithSegments("/detokenize");

    /// <summary>Writes an error with <paramref name="status"/>; the type follows OpenAI's naming for the status.</summary>
    public static async Task WriteAsync(HttpContext context, int status, string message, string? param = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", status switch
        {
            401 => "authentication_error",
            404 => "not_found_error",
            413 or 400 or 422 => "invalid_request_error",
            503 or 429 => "server_overloaded",
            _ => "internal_server_error",
        });
        if (param is null)
            w.WriteNull("param");
        else
            w.WriteString("param", param);
        w.WriteNumber("code", status);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
