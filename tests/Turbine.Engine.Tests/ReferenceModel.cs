using System.Text.Json;

namespace Turbine.Engine.Tests;

/// <summary>A tiny checkpoint made by tools/reference/make_references.py with transformers' float32 outputs for it.</summary>
public sealed record ReferenceCase(string Prompt, int[] PromptIds, float[] LastLogits, int[] GreedyIds);

public sealed record ReferenceModel(string Name, string Directory, ReferenceCase[] Cases)
{
    public static readonly string[] Names = ["llama-gqa", "llama3-tied-bf16", "llama-linear-f16", "llama-dynamic", "llama-yarn", "mistral-swa", "qwen2-sharded"];

    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (var n in Names)
            data.Add(n);
        return data;
    }

    public static ReferenceModel Load(string name)
    {
        var dir = RepositoryPaths.Fixture("models", name);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var cases = new List<ReferenceCase>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            cases.Add(new ReferenceCase(
                c.GetProperty("prompt").GetString()!,
                c.GetProperty("prompt_ids").Deserialize<int[]>()!,
                c.GetProperty("last_logits").Deserialize<float[]>()!,
                c.GetProperty("greedy_ids").Deserialize<int[]>()!));
        return new ReferenceModel(name, dir, [.. cases]);
    }
}
