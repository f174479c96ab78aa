using Turbine.Backends.Cpu;
using Turbine.Backends.Cuda;
using Turbine.Engine.Backends;

namespace Turbine.Cli.Hosting;

/// <summary>Makes the compute backend a command asked for with --device.</summary>
internal static class BackendFactory
{
    /// <summary>The accepted --device values.</summary>
    public static readonly string[] Devices = ["cpu", "cuda", "auto"];

    /// <summary>
    /// <paramref name="settings"/> with "auto" resolved to cuda when the driver loads and reports a GPU, else cpu; an
    /// <see cref="ArgumentException"/> when CUDA precision options were given for the CPU, which has none to choose.
    /// </summary>
    public static BackendSettings Resolve(BackendSettings settings)
    {
        string device = settings.Device switch
        {
            "cpu" or "cuda" => settings.Device,
            "auto" => CudaBackend.IsAvailable(out _) ? "cuda" : "cpu",
            _ => throw new ArgumentException($"--device must be one of {string.Join(", ", Devices)}, not '{settings.Device}'", nameof(settings)),
        };
        if (device == "cpu" && (settings.KvCache is not null || settings.Gemm is not null))
        {
            string given = settings switch
            {
                { KvCache: not null, Gemm: not null } => "--kv-cache-dtype and --gemm-precision apply",
                { KvCache: not null } => "--kv-cache-dtype applies",
                _ => "--gemm-precision applies",
            };
            string why = settings.Device == "auto" ? "--device auto found no GPU, and the CPU backend" : "the CPU backend";
            throw new ArgumentException($"{given} to the CUDA backend only: {why} keeps float32 K/V and float32 GEMMs");
        }
        return settings with { Device = device };
    }

    /// <summary>
    /// The backend of <paramref name="settings"/>, resolved as <see cref="Resolve"/> does: the CPU backend, or GPU 0 (a
    /// <see cref="CudaException"/> says why when there is none).
    /// </summary>
    public static IComputeBackend Create(BackendSettings settings)
    {
        var resolved = Resolve(settings);
        return resolved.Device == "cpu"
            ? new CpuBackend(resolved.Threads)
            : new CudaBackend(CudaOptions(new CudaBackendOptions().FromEnvironment(), resolved));
    }

    /// <summary>
    /// <paramref name="environment"/> (options with TURBINE_CUDA_* applied) with the precisions <paramref name="settings"/>
    /// gives: the command line wins over the environment, which wins over the defaults.
    /// </summary>
    public static CudaBackendOptions CudaOptions(CudaBackendOptions environment, BackendSettings settings) => environment with
    {
        KvCache = settings.KvCache ?? environment.KvCache,
        Gemm = settings.Gemm ?? environment.Gemm,
    };
}
