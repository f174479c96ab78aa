using Turbine.Core.Checkpoints;

namespace Turbine.Core.Tests;

public sealed class CheckpointTests
{
    private readonly string _dir = SafetensorsWriter.TempDirectory();

    [Fact]
    public unsafe void ShardedCheckpointResolvesEveryTensorThroughTheIndex()
    {
        SafetensorsWriter.WriteF32(Path.Combine(_dir, "model-00001-of-00002.safetensors"), ("a", [2], [1f, 2f]));
        SafetensorsWriter.WriteF32(Path.Combine(_dir, "model-00002-of-00002.safetensors"), ("b", [1], [3f]));
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"),
            """{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}""");
        using var checkpoint = Checkpoint.Open(_dir);
        Assert.Equal(2, checkpoint.TensorNames.Count);
        Assert.Equal(12, checkpoint.TotalBytes);
        Assert.Equal(2f, ((float*)checkpoint.Get("a").Data)[1]);
        Assert.Equal(3f, *(float*)checkpoint.Get("b").Data);
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), """{"weight_map":{"a":"gone.safetensors"}}""");
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_dir));
        Assert.Contains("gone.safetensors", e.Message);
        Assert.Equal("a", e.Tensor);
    }

    [Fact]
    public void TensorListedInTheIndexButAbsentFromItsShardIsNamed()
    {
        SafetensorsWriter.WriteF32(Path.Combine(_dir, "s.safetensors"), ("a", [1], [1f]));
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), """{"weight_map":{"a":"s.safetensors","z":"s.safetensors"}}""");
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_dir));
        Assert.Equal("z", e.Tensor);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        SafetensorsWriter.WriteF32(Path.Combine(_dir, "model.safetensors"), ("a", [1], [1f]));
        using var checkpoint = Checkpoint.Open(_dir);
        var e = Assert.Throws<CheckpointException>(() => checkpoint.Get("model.norm.weight"));
        Assert.Equal("model.norm.weight", e.Tensor);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void DirectoryWithoutWeightsIsAClearError()
    {
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_dir));
        Assert.Contains("no model.safetensors", e.Message);
    }
}
