using Turbine.Backends.Cpu;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>
/// kv_cache_free_gpu_mem_fraction sizes the cache in the backend's own bytes per K/V value: a backend keeping 16-bit
/// entries gets twice the tokens of a float32 one from the same free memory.
/// </summary>
public sealed class KvCacheSizingTests
{
    private static readonly ExecutorOptions Options = new() { MaxNumTokens = 64, MaxBatchSize = 4, TokensPerBlock = 4, KvCacheFreeGpuMemFraction = 0.5f };

    private static int CapacityTokens(int elementBytes)
    {
        using var backend = new DeviceBackend(new CpuBackend(1), freeBytes: 8L << 20, elementBytes);
        using var decoder = Decoder.Load(RepositoryPaths.Fixture("models", "llama-gqa"), backend, LlmExecutor.DecoderLimitsFor(Options));
        using var executor = new LlmExecutor(decoder, Options);
        // Bytes of one token's K and V in every layer, at the backend's element size.
        long perToken = decoder.KvShape(1, 1).BytesPerBlock(elementBytes);
        Assert.InRange(executor.KvCapacityTokens, (4L << 20) / perToken - Options.TokensPerBlock, (4L << 20) / perToken);
        return executor.KvCapacityTokens;
    }

    [Fact]
    public void SixteenBitEntriesHoldTwiceTheTokens()
    {
        int f32 = CapacityTokens(4), f16 = CapacityTokens(2);
        Assert.InRange(f16, 2 * f32, 2 * f32 + Options.TokensPerBlock);
    }

    /// <summary>The CPU backend, reporting fixed free device memory and a KV element size as a GPU backend would.</summary>
    private sealed class DeviceBackend(CpuBackend cpu, long freeBytes, int elementBytes) : ForwardingCpuBackend(cpu), IDeviceMemory
    {
        public long FreeBytes => freeBytes;
        public long TotalBytes => 2 * freeBytes;
        public override int KvElementBytes => elementBytes;
    }
}
