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
    /// "cpu": the CPU backend on <paramref name="threads"/> threads; "cuda": GPU 0 (a <see cref="CudaException"/> says why
    /// when there is none); "auto": cuda when the driver loads and reports a GPU, else cpu.
    /// </summary>
    public static IComputeBackend Create(string device, int threads) => device switch
    {
        "cpu" => new CpuBackend(threads),
        "cuda" => new CudaBackend(),
        "auto" => CudaBackend.IsAvailable(out _) ? new CudaBackend() : new CpuBackend(threads),
        _ => throw new ArgumentException($"--device must be one of {string.Join(", ", Devices)}, not '{device}'", nameof(device)),
    };
}
