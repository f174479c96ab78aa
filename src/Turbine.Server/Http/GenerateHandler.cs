using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Hosting;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>
/// Triton's generate extension: POST /v2/models/{m}[/versions/{v}]/generate answers one JSON object, /generate_stream
/// one server-sent event per response. Body keys other than <c>id</c> and <c>parameters</c> name input tensors.
/// </summary>
public sealed class GenerateHandler(ModelRegistry registry, ServerOptions options, ServerLifetime lifetime)
{
    private static readonly byte[] EventStart = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();

    /// <summary>Runs one generate or generate_stream request.</summary>
    public async Task Handle(HttpContext context, string model, string? version, bool stream)
    {
        var m = registry.FindReady(model, version);
        lifetime.ThrowIfStopping();
        var body = await HttpIo.ReadBodyAsync(context, options.MaxRequestBodyBytes);
        using var document = HttpIo.ParseObject(body);
        var request = ParseRequest(m, document.RootElement, stream);
        var responses = ModelRegistry.RunAsync(m, request, context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
        try
        {
            // The first response (or the model's refusal) comes before any byte is sent, so errors keep their status code.
            if (!await responses.MoveNextAsync())
                throw new InferenceException(InferenceError.Internal, $"model '{m.Name}' sent no response");
            if (!stream)
            {
                var only = responses.Current;
                if (!only.IsFinal)
                    throw new InferenceException(InferenceError.Unprocessable, $"model '{m.Name}' streams its responses; use generate_stream");
                context.Response.ContentType = "application/json";
                await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
                WriteResponse(w, m, request, only);
                return;
            }
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            var sse = context.Response.BodyWriter;
            await using var writer = new Utf8JsonWriter(sse, TensorJson.WriterOptions);
            do
            {
                sse.Write(EventStart);
                writer.Reset(sse);
                WriteResponse(writer, m, request, responses.Current);
                writer.Flush();
                sse.Write(EventEnd);
                await sse.FlushAsync(context.RequestAborted);
            }
            while (await responses.MoveNextAsync());
        }
        catch (InferenceException e) when (stream && context.Response.HasStarted)
        {
            // Once events are flowing, an error is reported as one more event, as tritonserver does.
            var sse = context.Response.BodyWriter;
            sse.Write(EventStart);
            await using (var w = new Utf8JsonWriter(sse, TensorJson.WriterOptions))
            {
                w.WriteStartObject();
                w.WriteString("error", e.Message);
                w.WriteEndObject();
            }
            sse.Write(EventEnd);
            await sse.FlushAsync(context.RequestAborted);
        }
        finally
        {
            await responses.DisposeAsync();
        }
    }

    private static InferRequest ParseRequest(ServedModel m, JsonElement root, bool stream)
    {
        var tensors = new Dictionary<string, InferTensor>(StringComparer.Ordinal);
        string? id = null;
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name == "id")
            {
                id = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.GetRawText();
                continue;
            }
            if (property.Name == "parameters")
                continue;
            var spec = m.FindInput(property.Name)
                ?? throw new InferenceException(InferenceError.InvalidArgument, $"unexpected inference input '{property.Name}' for model '{m.Name}'");
            tensors[spec.Name] = TensorJson.FromGenerateValue(spec, property.Value);
        }
        foreach (var spec in m.Inputs)
            if (!spec.Optional && !tensors.ContainsKey(spec.Name))
                throw new InferenceException(InferenceError.InvalidArgument, $"expected input '{spec.Name}' is missing for model '{m.Name}'");
        return new InferRequest { Id = id, Inputs = tensors, Streaming = stream };
    }

    private static void WriteResponse(Utf8JsonWriter w, ServedModel m, InferRequest request, InferResponse response)
    {
        w.WriteStartObject();
        if (request.Id is not null)
            w.WriteString("id", request.Id);
        w.WriteString("model_name", m.Name);
        w.WriteString("model_version", m.Version);
        foreach (var output in response.Outputs)
        {
            w.WritePropertyName(output.Name);
            TensorJson.WriteGenerateValue(w, output);
        }
        w.WriteEndObject();
    }
}
