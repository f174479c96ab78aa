using System.Text.Json.Nodes;
using Turbine.Backends.Cpu;
using Turbine.Core.Checkpoints;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>A checkpoint that disagrees with its config fails at load, naming the file and the tensor.</summary>
public sealed class DecoderLoadErrorTests
{
    internal static string CopyFixture(string name, Action<JsonObject> editConfig)
    {
        var source = RepositoryPaths.Fixture("models", name);
        var dir = Path.Combine(Path.GetTempPath(), "turbine-load-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        editConfig(config);
        File.WriteAllText(configPath, config.ToJsonString());
        return dir;
    }

    [Fact]
    public void UnsupportedArchitectureListsTheSupportedOnes()
    {
        var dir = CopyFixture("llama-gqa", c => c["architectures"] = new JsonArray("GPT2LMHeadModel"));
        using var backend = new CpuBackend(1);
        var e = Assert.Throws<CheckpointException>(() => Decoder.Load(dir, backend, new DecoderLimits(8, 1)));
        Assert.Contains("GPT2LMHeadModel", e.Message);
        Assert.Contains("LlamaForCausalLM", e.Message);
    }

    [Fact]
    public void ShapeThatDisagreesWithTheConfigNamesFileAndTensor()
    {
        var dir = CopyFixture("llama-gqa", c => c["intermediate_size"] = 128);
        using var backend = new CpuBackend(1);
        var e = Assert.Throws<CheckpointException>(() => Decoder.Load(dir, backend, new DecoderLimits(8, 1)));
        Assert.Equal("model.layers.0.mlp.gate_proj.weight", e.Tensor);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("[160, 64]", e.Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        // Untying the embeddings makes the decoder look for an lm_head the tied checkpoint does not have.
        var dir = CopyFixture("qwen2-sharded", c => c["tie_word_embeddings"] = false);
        using var backend = new CpuBackend(1);
        var e = Assert.Throws<CheckpointException>(() => Decoder.Load(dir, backend, new DecoderLimits(8, 1)));
        Assert.Equal("lm_head.weight", e.Tensor);
    }

    [Fact]
    public void TruncatedWeightsFileNamesTheFile()
    {
        var dir = CopyFixture("llama-gqa", _ => { });
        var weights = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        using var backend = new CpuBackend(1);
        var e = Assert.Throws<CheckpointException>(() => Decoder.Load(dir, backend, new DecoderLimits(8, 1)));
        Assert.Contains(weights, e.Message);
        Assert.NotNull(e.Tensor);
    }
}
