using Turbine.Backends.Cpu;
using Turbine.Core.Checkpoints;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

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
    private sealed class DeviceBackend(CpuBackend cpu, long freeBytes, int elementBytes) : IComputeBackend, IDeviceMemory
    {
        public long FreeBytes => freeBytes;
        public long TotalBytes => 2 * freeBytes;
        public int KvElementBytes => elementBytes;
        public string Name => cpu.Name;
        public DeviceWeight Upload(in TensorSlice tensor) => cpu.Upload(tensor);
        public DeviceBuffer Allocate(long floats) => cpu.Allocate(floats);
        public KvCacheStorage AllocateKvCache(KvCacheShape shape) => cpu.AllocateKvCache(shape);
        public void BeginStep(ForwardBatch batch) => cpu.BeginStep(batch);
        public void Embed(DeviceWeight table, DeviceBuffer y) => cpu.Embed(table, y);
        public void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y) => cpu.RmsNorm(x, rows, weight, eps, y);
        public void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y) =>
            cpu.AddRmsNorm(residual, delta, rows, weight, eps, y);
        public void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y) => cpu.Linear(x, rows, weight, bias, y);
        public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs) =>
            cpu.LinearGroup(x, rows, weights, biases, outputs);
        public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim) => cpu.Rotary(q, heads, k, kvHeads, headDim);
        public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
            int heads, int kvHeads, int headDim, float scale, int slidingWindow) =>
            cpu.Attention(cache, layer, q, k, v, output, heads, kvHeads, headDim, scale, slidingWindow);
        public void CopyKvBlock(KvCacheStorage cache, int source, int destination) => cpu.CopyKvBlock(cache, source, destination);
        public void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count) => cpu.SiluMul(gate, up, y, count);
        public void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y) => cpu.GatherRows(x, rows, width, y);
        public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids) => cpu.ArgMax(logits, rows, width, ids);
        public void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs) => cpu.Sample(logits, width, rows, ids, logProbs);
        public void Download(DeviceBuffer source, Span<float> destination) => cpu.Download(source, destination);
        public void Dispose() => cpu.Dispose();
    }
}
