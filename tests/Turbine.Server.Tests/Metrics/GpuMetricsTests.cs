using Turbine.Backends.Cpu;
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
    private sealed class DeviceMemoryCpuBackend() : ForwardingCpuBackend(new CpuBackend(1)), IDeviceMemory
    {
        public long FreeBytes => 750_000;
        public long TotalBytes => 1_000_000;
    }
}
