using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;

namespace Turbine.Core.Tests;

public sealed class SafetensorsFileTests
{
    private readonly string _dir = SafetensorsWriter.TempDirectory();

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public unsafe void ReadsTensorsInPlaceWithTheirDtypeAndShape()
    {
        var path = PathOf("ok.safetensors");
        // bf16 1.0 = 0x3F80, -2.0 = 0xC000; followed by an f32 tensor.
        byte[] data = [0x80, 0x3F, 0x00, 0xC0, .. BitConverter.GetBytes(3.5f)];
        SafetensorsWriter.WriteRaw(path,
            """{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""",
            data);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.True(file.TryGet("a", out var a));
        Assert.Equal(DType.BF16, a.DType);
        Assert.Equal([1L, 2L], a.Shape);
        Assert.Equal(2, a.ElementCount);
        Assert.Equal(1.0f, BitConverter.Int32BitsToSingle(((ushort*)a.Data)[0] << 16));
        Assert.Equal(-2.0f, BitConverter.Int32BitsToSingle(((ushort*)a.Data)[1] << 16));
        Assert.True(file.TryGet("b", out var b));
        Assert.Equal(3.5f, *(float*)b.Data);
    }

    [Theory]
    [InlineData("F32", 4)]
    [InlineData("F16", 2)]
    [InlineData("BF16", 2)]
    [InlineData("I8", 1)]
    [InlineData("U8", 1)]
    [InlineData("I32", 4)]
    [InlineData("I64", 8)]
    [InlineData("F8_E4M3", 1)]
    public void AcceptsEverySupportedDtype(string dtype, int size)
    {
        var path = PathOf($"{dtype}.safetensors");
        var header = "{\"t\":{\"dtype\":\"" + dtype + "\",\"shape\":[3],\"data_offsets\":[0," + 3 * size + "]}}";
        SafetensorsWriter.WriteRaw(path, header, new byte[3 * size]);
        using var file = SafetensorsFile.Open(path);
        Assert.True(file.TryGet("t", out var t));
        Assert.Equal(dtype, t.DType.Name());
    }

    [Fact]
    public void TruncatedFileNamesTheFile()
    {
        var path = PathOf("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void HeaderLengthPastTheEndIsRejected()
    {
        var path = PathOf("long-header.safetensors");
        SafetensorsWriter.WriteRaw(path, "{}", [], headerLengthOverride: 1 << 20);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void OffsetsOutsideTheDataNameTheTensor()
    {
        var path = PathOf("offsets.safetensors");
        SafetensorsWriter.WriteRaw(path, """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[8]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Equal("w", e.Tensor);
        Assert.Contains("outside", e.Message);
    }

    [Fact]
    public void SizeThatDisagreesWithDtypeAndShapeNamesTheTensor()
    {
        var path = PathOf("size.safetensors");
        SafetensorsWriter.WriteRaw(path, """{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,6]}}""", new byte[6]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Equal("w", e.Tensor);
        Assert.Contains("needs 8", e.Message);
    }

    [Fact]
    public void UnsupportedDtypeNamesTheTensorAndTheDtype()
    {
        var path = PathOf("f64.safetensors");
        SafetensorsWriter.WriteRaw(path, """{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}""", new byte[8]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Equal("w", e.Tensor);
        Assert.Contains("F64", e.Message);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[1,2]")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1]}}""")]
    public void MalformedHeadersAreRejected(string header)
    {
        var path = PathOf("bad.safetensors");
        SafetensorsWriter.WriteRaw(path, header, new byte[8]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
    }
}
