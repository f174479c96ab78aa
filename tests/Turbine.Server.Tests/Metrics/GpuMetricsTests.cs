using Turbine.Backends.Cpu;
using Turbine.Core.Checkpoints;
using Turbine.Engine.Backends;
using Turbine.Server.Metrics;
using Turbine.Server.Models;

namespace Turbine.Server.Tests.Metrics;

/// <summary>nv_gpu_* families appear for LLMs on a device backend and not for the CPU.</summary>
public sealed class GpuMetricsTests
{
    [Fact]
    public async Task DeviceBackendsReportTritonGpuMemoryGauges()
    {
        await using var registry = ModelRegistry.Standard(LlmService.Load(Http.ServerFixture.DemoModel, threads: 1, createBackend: () => new DeviceMemoryCpuBackend()));
        var text = PrometheusWriter.Render(registry);
        Assert.Contains("nv_gpu_memory_total_bytes{gpu_uuid=\"cpu\"} 1000000", text);
        Assert.Contains("nv_gpu_memory_used_bytes{gpu_uuid=\"cpu\"} 250000", text);
    }

    [Fact]
    public async Task CpuBackendsReportNoGpuFamilies()
    {
        await using var registry = ModelRegistry.Standard(LlmService.Load(Http.ServerFixture.DemoModel, threads: 1));
        Assert.DoesNotContain("nv_gpu_", PrometheusWriter.Render(registry));
    }

    /// <summary>The CPU backend, reporting fixed device memory as a GPU backend would.</summary>
    private sealed class DeviceMemoryCpuBackend : IComputeBackend, IDeviceMemory
    {
        private readonly CpuBackend _cpu = new(1);
        public long FreeBytes => 750_000;
        public long TotalBytes => 1_000_000;
        public string Name => _cpu.Name;
        public DeviceWeight Upload(in TensorSlice tensor) => _cpu.Upload(tensor);
        public DeviceBuffer Allocate(long floats) => _cpu.Allocate(floats);
        public KvCacheStorage AllocateKvCache(KvCacheShape shape) => _cpu.AllocateKvCache(shape);
        public void BeginStep(ForwardBatch batch) => _cpu.BeginStep(batch);
        public void Embed(DeviceWeight table, DeviceBuffer y) => _cpu.Embed(table, y);
        public void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y) => _cpu.RmsNorm(x, rows, weight, eps, y);
        public void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y) =>
            _cpu.AddRmsNorm(residual, delta, rows, weight, eps, y);
        public void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y) => _cpu.Linear(x, rows, weight, bias, y);
        public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs) =>
            _cpu.LinearGroup(x, rows, weights, biases, outputs);
        public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim) => _cpu.Rotary(q, heads, k, kvHeads, headDim);
        public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
            int heads, int kvHeads, int headDim, float scale, int slidingWindow) =>
            _cpu.Attention(cache, layer, q, k, v, output, heads, kvHeads, headDim, scale, slidingWindow);
        public void CopyKvBlock(KvCacheStorage cache, int source, int destination) => _cpu.CopyKvBlock(cache, source, destination);
        public void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count) => _cpu.SiluMul(gate, up, y, count);
        public void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y) => _cpu.GatherRows(x, rows, width, y);
        public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids) => _cpu.ArgMax(logits, rows, width, ids);
        public void Sample(DeviceBuffer logits, int width, Turbine.Engine.Sampling.SamplingBatch rows, Span<int> ids, Span<float> logProbs) =>
            _cpu.Sample(logits, width, rows, ids, logProbs);
        public void Download(DeviceBuffer source, Span<float> destination) => _cpu.Download(source, destination);
        public void Dispose() => _cpu.Dispose();
    }
}
