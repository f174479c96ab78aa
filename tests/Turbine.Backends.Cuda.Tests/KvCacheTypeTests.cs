using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda.Tests;

/// <summary>KV cache types without a GPU: TURBINE_CUDA_KV, bytes per element, and the planes of an F24 cache.</summary>
public sealed class KvCacheTypeTests
{
    [Theory]
    [InlineData("f32", CudaKvCacheType.F32)]
    [InlineData("f24", CudaKvCacheType.F24)]
    [InlineData("f16", CudaKvCacheType.F16)]
    [InlineData("bf16", CudaKvCacheType.BF16)]
    [InlineData("F24", null)]
    [InlineData("fp24", null)]
    public void TurbineCudaKvNamesTheType(string value, CudaKvCacheType? expected)
    {
        var saved = Environment.GetEnvironmentVariable("TURBINE_CUDA_KV");
        Environment.SetEnvironmentVariable("TURBINE_CUDA_KV", value);
        try
        {
            // Values it does not know leave the type given.
            var given = new CudaBackendOptions { KvCache = CudaKvCacheType.BF16 };
            Assert.Equal(expected ?? CudaKvCacheType.BF16, given.FromEnvironment().KvCache);
        }
        finally
        {
            Environment.SetEnvironmentVariable("TURBINE_CUDA_KV", saved);
        }
    }

    [Fact]
    public void ElementBytesSizeTheCacheFromFreeMemory()
    {
        // Every type, so that one added without a size fails here.
        Assert.Equal([4, 2, 2, 3], Enum.GetValues<CudaKvCacheType>().Select(t => t.ElementBytes()));
        // Llama-3-8B: a block of 16 tokens holds 4 MiB of float32 K/V over the 32 layers, 3 MiB of F24.
        var llama = new KvCacheShape(32, 1, 16, 8, 128);
        Assert.Equal(4L << 20, llama.BytesPerBlock(CudaKvCacheType.F32.ElementBytes()));
        Assert.Equal(3L << 20, llama.BytesPerBlock(CudaKvCacheType.F24.ElementBytes()));
    }

    [Fact]
    public void F24RegionsAreAHiPlaneThenALowBytePlane()
    {
        // Elements of whole 256-byte planes: the planes add up to 3 bytes an element, as the sizing assumes.
        var llama = new KvCacheShape(32, 100, 16, 8, 128);
        long elements = 100L * 16 * 8 * 128;
        Assert.Equal((3 * elements, 2 * elements), CudaKvCache.Layout(llama, CudaKvCacheType.F24));
        Assert.Equal(llama.BytesPerBlock(3) * llama.Blocks, 2 * llama.Layers * CudaKvCache.Layout(llama, CudaKvCacheType.F24).RegionBytes);
        // Otherwise each plane starts at a 256-byte boundary: 3 blocks × 7 tokens × 12 values are 504 bytes of hi halves
        // (padded to 512) and 252 low bytes (padded to 256).
        var odd = new KvCacheShape(2, 3, 7, 1, 12);
        Assert.Equal((768L, 512L), CudaKvCache.Layout(odd, CudaKvCacheType.F24));
        // The types of one plane keep theirs unpadded.
        Assert.Equal((1008L, 0L), CudaKvCache.Layout(odd, CudaKvCacheType.F32));
        Assert.Equal((504L, 0L), CudaKvCache.Layout(odd, CudaKvCacheType.BF16));
    }
}
