using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Http;
using Turbine.Server.Models;

namespace Turbine.Server.OpenAi;

/// <summary>
/// The models the OpenAI API serves: every text-generation model (ensemble, tensorrt_llm_bls) by its name, and the
/// underlying LLM by its directory's name.
/// </summary>
public sealed class OpenAiModels(ModelRegistry registry)
{
    private static readonly long Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>Model ids and the LLM each runs.</summary>
    public IReadOnlyList<(string Id, TextGenerationModel Model)> Ids
    {
        get
        {
            var list = new List<(string, TextGenerationModel)>();
            foreach (var m in registry.All.OfType<TextGenerationModel>().Where(m => m.State == ModelState.Ready))
            {
                if (!list.Any(e => e.Item1 == m.Llm.Name))
                    list.Add((m.Llm.Name, m));
                list.Add((m.Name, m));
            }
            return list;
        }
    }

    /// <summary>
    /// The model for <paramref name="model"/> (its statistics count the request; its LLM runs it); null or empty picks
    /// the first; unknown is a 404.
    /// </summary>
    public (string Id, TextGenerationModel Model) Resolve(string? model)
    {
        var ids = Ids;
        if (ids.Count == 0)
            throw new InferenceException(InferenceError.Unavailable, "no text-generation model is loaded");
        if (string.IsNullOrEmpty(model))
            return ids[0];
        foreach (var entry in ids)
            if (entry.Id == model)
                return entry;
        throw new InferenceException(InferenceError.NotFound, $"The model `{model}` does not exist.");
    }

    /// <summary>GET /v1/models.</summary>
    public async Task List(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (var (id, m) in Ids)
        {
            w.WriteStartObject();
            w.WriteString("id", id);
            w.WriteString("object", "model");
            w.WriteNumber("created", Created);
            w.WriteString("owned_by", "turbine");
            w.WriteNumber("max_model_len", m.Llm.MaxModelLength);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
