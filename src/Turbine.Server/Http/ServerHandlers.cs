using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Hosting;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>Server health and metadata: /v2/health/live, /v2/health/ready, /v2.</summary>
public sealed class ServerHandlers(ModelRegistry registry, ServerLifetime lifetime)
{
    /// <summary>The server's version, reported by server metadata.</summary>
    public static readonly string Version = typeof(ServerHandlers).Assembly.GetName().Version?.ToString(3) ?? "0.1.0";

    /// <summary>KServe v2 extensions this server implements.</summary>
    public static readonly string[] Extensions =
        ["classification", "sequence", "model_repository", "model_repository(unload_dependents)", "schedule_policy", "model_configuration",
         "binary_tensor_data", "parameters", "statistics", "generate", "generate_stream", "logging"];

    /// <summary>200 while the process serves at all.</summary>
    public IResult Live() => Results.Ok();

    /// <summary>200 when every model is ready and the server is not shutting down; 400 otherwise, as tritonserver answers.</summary>
    public IResult Ready() =>
        !lifetime.IsStopping && registry.All.Count > 0 && registry.All.All(m => m.State is ModelState.Ready or ModelState.Unavailable) && registry.All.Any(m => m.State == ModelState.Ready)
            ? Results.Ok() : Results.StatusCode(StatusCodes.Status400BadRequest);

    /// <summary>Server metadata: name, version, extensions.</summary>
    public async Task Metadata(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("name", "triton");
        w.WriteString("version", Version);
        w.WriteStartArray("extensions");
        foreach (var e in Extensions)
            w.WriteStringValue(e);
        w.WriteEndArray();
        w.WriteEndObject();
    }
}

/// <summary>Whether the server is draining for shutdown.</summary>
public sealed class ServerLifetime
{
    private volatile bool _stopping;

    /// <summary>True once shutdown began: readiness fails and new inference is refused with 503.</summary>
    public bool IsStopping => _stopping;

    /// <summary>Marks the server as stopping.</summary>
    public void BeginStopping() => _stopping = true;

    /// <summary>Refuses new inference with 503 once shutdown began.</summary>
    public void ThrowIfStopping()
    {
        if (_stopping)
            throw new InferenceException(InferenceError.Unavailable, "the server is shutting down");
    }
}
