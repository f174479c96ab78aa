using Turbine.Backends.Cpu;
using Turbine.Backends.Cuda;
using Turbine.Engine.Backends;

namespace Turbine.Cli.Benchmarking;

/// <summary>Names the device a benchmark measured on, so that every figure it prints says where it came from.</summary>
public static class BackendDescription
{
    /// <summary>
    /// "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, driver 12080), KV f24, GEMM fp8lo" on a GPU, "cpu (16 threads)" on
    /// the CPU.
    /// </summary>
    public static string Of(IComputeBackend backend) => backend switch
    {
        CudaBackend gpu => $"{gpu.Name} {gpu.DeviceDescription}, {Precision(gpu.Options)}",
        CpuBackend cpu => $"cpu ({cpu.Threads} thread{(cpu.Threads == 1 ? "" : "s")})",
        _ => backend.Name,
    };

    /// <summary>"KV f16, GEMM split": the CUDA precisions, named as --kv-cache-dtype and --gemm-precision take them.</summary>
    public static string Precision(CudaBackendOptions options)
    {
        string kv = options.KvCache.ToString().ToLowerInvariant();
        string gemm = options.Gemm switch
        {
            CudaGemmPrecision.Single => "single",
            CudaGemmPrecision.F16 => "f16",
            CudaGemmPrecision.Fp8Lo => "fp8lo",
            _ => "split",
        };
        return $"KV {kv}, GEMM {gemm}";
    }
}
