using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Hosting;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>POST /v2/models/{m}[/versions/{v}]/infer: KServe v2 JSON tensors and the binary tensor extension.</summary>
public sealed class InferHandler(ModelRegistry registry, ServerOptions options, ServerLifetime lifetime)
{
    /// <summary>The header giving the JSON part's length when binary tensors follow it.</summary>
    public const string HeaderLength = "Inference-Header-Content-Length";

    /// <summary>Runs one inference and writes its response.</summary>
    public async Task Handle(HttpContext context, string model, string? version)
    {
        var m = registry.FindReady(model, version);
        lifetime.ThrowIfStopping();
        var body = await HttpIo.ReadBodyAsync(context, options.MaxRequestBodyBytes);
        int jsonLength = body.Length;
        if (context.Request.Headers.TryGetValue(HeaderLength, out var header))
            if (!int.TryParse(header.ToString(), out jsonLength) || jsonLength < 0 || jsonLength > body.Length)
                throw new InferenceException(InferenceError.InvalidArgument, $"{HeaderLength} '{header}' is not a length within the body of {body.Length} bytes");
        using var document = HttpIo.ParseObject(body.AsMemory(0, jsonLength));
        var root = document.RootElement;
        var (request, binaryOutputs, binaryAll) = ParseRequest(m, root, body.AsMemory(jsonLength));
        InferResponse? response = null;
        await foreach (var r in ModelRegistry.RunAsync(m, request, context.RequestAborted))
        {
            if (response is not null)
                throw new InferenceException(InferenceError.Unprocessable, $"model '{m.Name}' sent more than one response; use generate_stream or gRPC streaming for decoupled models");
            response = r;
        }
        if (response is null)
            throw new InferenceException(InferenceError.Internal, $"model '{m.Name}' sent no response");
        await WriteResponse(context, m, request, response, binaryOutputs, binaryAll);
    }

    private static (InferRequest Request, HashSet<string> BinaryOutputs, bool BinaryAll) ParseRequest(ServedModel m, JsonElement root, ReadOnlyMemory<byte> binary)
    {
        if (!root.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.Array)
            throw Invalid("the request must have an 'inputs' array");
        var tensors = new Dictionary<string, InferTensor>(StringComparer.Ordinal);
        int offset = 0;
        foreach (var input in inputs.EnumerateArray())
        {
            string name = RequiredString(input, "name", "input");
            string dataType = RequiredString(input, "datatype", $"input '{name}'");
            var spec = m.FindInput(name) ?? throw Invalid($"unexpected inference input '{name}' for model '{m.Name}'");
            if (dataType != spec.DataType)
                throw Invalid($"inference input '{name}' data-type is '{dataType}', but model '{m.Name}' expects '{spec.DataType}'");
            if (!input.TryGetProperty("shape", out var shapeJson) || shapeJson.ValueKind != JsonValueKind.Array)
                throw Invalid($"input '{name}' has no 'shape' array");
            var shape = new long[shapeJson.GetArrayLength()];
            long count = 1;
            int i = 0;
            foreach (var d in shapeJson.EnumerateArray())
            {
                if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out shape[i]) || shape[i] < 0)
                    throw Invalid($"input '{name}' has an invalid shape {shapeJson.GetRawText()}");
                count *= shape[i++];
                if (count > int.MaxValue)
                    throw Invalid($"input '{name}' has too many elements");
            }
            CheckShape(m, spec, shape);
            Array data;
            if (input.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object && p.TryGetProperty("binary_data_size", out var sizeJson))
            {
                if (!sizeJson.TryGetInt32(out int size) || size < 0 || size > binary.Length - offset)
                    throw Invalid($"input '{name}' binary_data_size {sizeJson.GetRawText()} goes past the body's end");
                data = TensorJson.ReadBinary(name, dataType, binary.Span.Slice(offset, size), (int)count);
                offset += size;
            }
            else if (input.TryGetProperty("data", out var dataJson))
                data = TensorJson.ReadData(name, dataType, dataJson, (int)count);
            else
                throw Invalid($"input '{name}' has neither 'data' nor binary_data_size");
            if (!tensors.TryAdd(name, new InferTensor(name, dataType, shape, data)))
                throw Invalid($"input '{name}' is given twice");
        }
        if (offset != binary.Length)
            throw Invalid($"the body has {binary.Length - offset} bytes of binary data no input claims");
        foreach (var spec in m.Inputs)
            if (!spec.Optional && !tensors.ContainsKey(spec.Name))
                throw Invalid($"expected {m.Inputs.Count(s => !s.Optional)} inputs but got {tensors.Count} inputs for model '{m.Name}'; missing input '{spec.Name}'");
        bool binaryAll = root.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object
            && parameters.TryGetProperty("binary_data_output", out var b) && b.ValueKind == JsonValueKind.True;
        var requested = new List<string>();
        var binaryOutputs = new HashSet<string>(StringComparer.Ordinal);
        if (root.TryGetProperty("outputs", out var outputs) && outputs.ValueKind == JsonValueKind.Array)
            foreach (var output in outputs.EnumerateArray())
            {
                string name = RequiredString(output, "name", "output");
                if (!m.Outputs.Any(o => o.Name == name))
                    throw Invalid($"unexpected inference output '{name}' for model '{m.Name}'");
                requested.Add(name);
                if (output.TryGetProperty("parameters", out var op) && op.ValueKind == JsonValueKind.Object
                    && op.TryGetProperty("binary_data", out var bd) && bd.ValueKind == JsonValueKind.True)
                    binaryOutputs.Add(name);
            }
        string? id = root.TryGetProperty("id", out var idJson) && idJson.ValueKind == JsonValueKind.String ? idJson.GetString() : null;
        return (new InferRequest { Id = id, Inputs = tensors, RequestedOutputs = requested }, binaryOutputs, binaryAll);
    }

    private static void CheckShape(ServedModel m, TensorSpec spec, long[] shape)
    {
        int offset = m.MaxBatchSize > 0 ? 1 : 0;
        if (shape.Length != spec.Dims.Length + offset)
            throw Invalid($"unexpected shape for input '{spec.Name}' for model '{m.Name}'. Expected {Format(spec.Dims, offset)}, got [{string.Join(',', shape)}]");
        if (offset == 1 && shape[0] > m.MaxBatchSize)
            throw Invalid($"inference request batch-size must be <= {m.MaxBatchSize} for '{m.Name}'");
        for (int i = 0; i < spec.Dims.Length; i++)
            if (spec.Dims[i] >= 0 && shape[i + offset] != spec.Dims[i])
                throw Invalid($"unexpected shape for input '{spec.Name}' for model '{m.Name}'. Expected {Format(spec.Dims, offset)}, got [{string.Join(',', shape)}]");
    }

    private static string Format(long[] dims, int batch) => "[" + string.Join(',', (batch == 1 ? ["-1"] : Array.Empty<string>()).Concat(dims.Select(d => d.ToString(System.Globalization.CultureInfo.InvariantCulture)))) + "]";

    private static async Task WriteResponse(HttpContext context, ServedModel m, InferRequest request, InferResponse response, HashSet<string> binaryOutputs, bool binaryAll)
    {
        var outputs = response.Outputs.Where(o => request.RequestedOutputs is not { Count: > 0 } wanted || wanted.Contains(o.Name)).ToList();
        var blobs = new List<byte[]>();
        using var json = new MemoryStream();
        await using (var w = new Utf8JsonWriter(json, TensorJson.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("model_name", m.Name);
            w.WriteString("model_version", m.Version);
            if (request.Id is not null)
                w.WriteString("id", request.Id);
            w.WriteStartArray("outputs");
            foreach (var o in outputs)
            {
                w.WriteStartObject();
                w.WriteString("name", o.Name);
                w.WriteString("datatype", o.DataType);
                w.WriteStartArray("shape");
                foreach (var d in o.Shape)
                    w.WriteNumberValue(d);
                w.WriteEndArray();
                if (binaryAll || binaryOutputs.Contains(o.Name))
                {
                    var blob = TensorJson.ToBinary(o);
                    blobs.Add(blob);
                    w.WriteStartObject("parameters");
                    w.WriteNumber("binary_data_size", blob.Length);
                    w.WriteEndObject();
                }
                else
                {
                    w.WritePropertyName("data");
                    TensorJson.WriteData(w, o);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        if (blobs.Count == 0)
            context.Response.ContentType = "application/json";
        else
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers[HeaderLength] = json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        context.Response.ContentLength = json.Length + blobs.Sum(b => (long)b.Length);
        await context.Response.Body.WriteAsync(json.GetBuffer().AsMemory(0, (int)json.Length), context.RequestAborted);
        foreach (var blob in blobs)
            await context.Response.Body.WriteAsync(blob, context.RequestAborted);
    }

    private static string RequiredString(JsonElement e, string property, string what) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()! : throw Invalid($"{what} has no '{property}' string");

    private static InferenceException Invalid(string message) => new(InferenceError.InvalidArgument, message);
}
