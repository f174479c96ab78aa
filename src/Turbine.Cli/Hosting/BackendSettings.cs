using Turbine.Backends.Cuda;

namespace Turbine.Cli.Hosting;

/// <summary>The compute backend a command asked for: --device, --threads and, on CUDA, --kv-cache-dtype and --gemm-precision.</summary>
/// <param name="Device">cpu, cuda or auto.</param>
/// <param name="Threads">CPU threads (0: one per core).</param>
/// <param name="KvCache">--kv-cache-dtype; null: TURBINE_CUDA_KV, else the default.</param>
/// <param name="Gemm">--gemm-precision; null: TURBINE_CUDA_GEMM, else the default.</param>
public sealed record BackendSettings(string Device, int Threads, CudaKvCacheType? KvCache = null, CudaGemmPrecision? Gemm = null);
