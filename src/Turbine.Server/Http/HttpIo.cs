using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>Reading request bodies under the size limit, and Triton's error responses.</summary>
public static class HttpIo
{
    /// <summary>Reads the whole body; a body over <paramref name="limit"/> bytes is a 413 (as an <see cref="HttpStatusException"/>).</summary>
    public static async Task<byte[]> ReadBodyAsync(HttpContext context, long limit)
    {
        if (context.Request.ContentLength > limit)
            throw TooLarge(limit);
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit)
                throw TooLarge(limit);
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    /// <summary>Parses <paramref name="body"/> as a JSON object; anything else is a 400 with the parser's message.</summary>
    public static JsonDocument ParseObject(ReadOnlyMemory<byte> body)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new InferenceException(InferenceError.InvalidArgument, $"failed to parse the request JSON buffer: {e.Message}");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new InferenceException(InferenceError.InvalidArgument, "the request body must be a JSON object");
        }
        return document;
    }

    /// <summary>The HTTP status of an inference failure.</summary>
    public static int StatusOf(InferenceError error) => error switch
    {
        InferenceError.InvalidArgument => StatusCodes.Status400BadRequest,
        InferenceError.NotFound => StatusCodes.Status404NotFound,
        InferenceError.Unavailable => StatusCodes.Status503ServiceUnavailable,
        InferenceError.Unprocessable => StatusCodes.Status422UnprocessableEntity,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>Writes Triton's error body <c>{"error": message}</c>.</summary>
    public static async Task WriteErrorAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("error", message);
        w.WriteEndObject();
    }

    private static HttpStatusException TooLarge(long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, $"request body is larger than the limit of {limit} bytes");
}

/// <summary>A failure with a specific HTTP status.</summary>
public sealed class HttpStatusException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status code.</summary>
    public int Status { get; } = status;
}
