using System.Text.Json;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Metrics;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>Model metadata, configuration, readiness, statistics and the repository extension.</summary>
public sealed class ModelHandlers(ModelRegistry registry)
{
    private static readonly JsonFormatter ConfigFormatter = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true).WithFormatDefaultValues(true));

    /// <summary>GET /v2/models/{m}[/versions/{v}]: name, versions, platform, inputs and outputs.</summary>
    public async Task Metadata(HttpContext context, string model, string? version)
    {
        var m = registry.Find(model, version);
        await WriteJson(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("name", m.Name);
            w.WriteStartArray("versions");
            w.WriteStringValue(m.Version);
            w.WriteEndArray();
            w.WriteString("platform", m.Platform);
            WriteTensors(w, "inputs", m.Inputs, m.MaxBatchSize > 0);
            WriteTensors(w, "outputs", m.Outputs, m.MaxBatchSize > 0);
            w.WriteEndObject();
        });
    }

    private static void WriteTensors(Utf8JsonWriter w, string name, IReadOnlyList<TensorSpec> specs, bool batched)
    {
        w.WriteStartArray(name);
        foreach (var spec in specs)
        {
            w.WriteStartObject();
            w.WriteString("name", spec.Name);
            w.WriteString("datatype", spec.DataType);
            w.WriteStartArray("shape");
            if (batched)
                w.WriteNumberValue(-1);
            foreach (var d in spec.Dims)
                w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>GET /v2/models/{m}[/versions/{v}]/config: the model configuration as JSON.</summary>
    public async Task Config(HttpContext context, string model, string? version)
    {
        var m = registry.Find(model, version);
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ConfigFormatter.Format(ModelConfigs.Describe(m)), context.RequestAborted);
    }

    /// <summary>GET /v2/models/{m}[/versions/{v}]/ready: 200 when ready, 400 otherwise (tritonserver's answer).</summary>
    public IResult Ready(string model, string? version)
    {
        var m = registry.Find(model, version);
        return m.State == ModelState.Ready ? Results.Ok() : Results.StatusCode(StatusCodes.Status400BadRequest);
    }

    /// <summary>GET /v2/models[/{m}[/versions/{v}]]/stats: the statistics extension.</summary>
    public async Task Statistics(HttpContext context, string? model, string? version)
    {
        var models = model is null ? registry.All.Where(m => m.State == ModelState.Ready).ToList() : [registry.FindReady(model, version)];
        await WriteJson(context, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("model_stats");
            foreach (var m in models)
                WriteStats(w, m);
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private static void WriteStats(Utf8JsonWriter w, ServedModel m)
    {
        var s = m.Statistics;
        w.WriteStartObject();
        w.WriteString("name", m.Name);
        w.WriteString("version", m.Version);
        w.WriteNumber("last_inference", s.LastInferenceMs);
        w.WriteNumber("inference_count", s.InferenceCount);
        w.WriteNumber("execution_count", s.ExecutionCount);
        w.WriteStartObject("inference_stats");
        Duration(w, "success", s.SuccessCount, s.SuccessNs);
        Duration(w, "fail", s.FailCount, s.FailNs);
        Duration(w, "queue", s.QueueCount, s.QueueNs);
        Duration(w, "compute_input", s.ComputeInputCount, s.ComputeInputNs);
        Duration(w, "compute_infer", s.ComputeInferCount, s.ComputeInferNs);
        Duration(w, "compute_output", s.ComputeOutputCount, s.ComputeOutputNs);
        Duration(w, "cache_hit", 0, 0);
        Duration(w, "cache_miss", 0, 0);
        w.WriteEndObject();
        w.WriteStartArray("response_stats");
        w.WriteEndArray();
        w.WriteStartArray("batch_stats");
        if (s.ExecutionCount > 0)
        {
            w.WriteStartObject();
            w.WriteNumber("batch_size", 1);
            Duration(w, "compute_input", s.ComputeInputCount, s.ComputeInputNs);
            Duration(w, "compute_infer", s.ComputeInferCount, s.ComputeInferNs);
            Duration(w, "compute_output", s.ComputeOutputCount, s.ComputeOutputNs);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("memory_usage");
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Duration(Utf8JsonWriter w, string name, long count, long ns)
    {
        w.WriteStartObject(name);
        w.WriteNumber("count", count);
        w.WriteNumber("ns", ns);
        w.WriteEndObject();
    }

    /// <summary>POST /v2/repository/index: every model with its state.</summary>
    public async Task Index(HttpContext context)
    {
        await WriteJson(context, w =>
        {
            w.WriteStartArray();
            foreach (var m in registry.All)
            {
                w.WriteStartObject();
                w.WriteString("name", m.Name);
                w.WriteString("version", m.Version);
                w.WriteString("state", m.State switch
                {
                    ModelState.Ready => "READY",
                    ModelState.Loading => "LOADING",
                    ModelState.Unloading => "UNLOADING",
                    _ => "UNAVAILABLE",
                });
                w.WriteString("reason", m.State == ModelState.Unavailable ? "unloaded" : "");
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
    }

    /// <summary>POST /v2/repository/models/{m}/load or /unload (explicit model control only).</summary>
    public IResult Load(string model, bool load)
    {
        registry.SetLoaded(model, load);
        return Results.Ok();
    }

    private static async Task WriteJson(HttpContext context, Action<Utf8JsonWriter> write)
    {
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        write(w);
        await w.FlushAsync(context.RequestAborted);
    }
}
