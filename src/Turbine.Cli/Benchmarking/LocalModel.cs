using Turbine.Backends.Cpu;
using Turbine.Engine.Models;

namespace Turbine.Cli.Benchmarking;

/// <summary>A model loaded on the CPU backend for in-process benchmarks; executors of any size up to its limits run on it.</summary>
public sealed class LocalModel : IDisposable
{
    private readonly CpuBackend _backend;

    private LocalModel(CpuBackend backend, Decoder decoder)
    {
        _backend = backend;
        Decoder = decoder;
    }

    /// <summary>The loaded decoder.</summary>
    public Decoder Decoder { get; }

    /// <summary>Loads the checkpoint in <paramref name="directory"/> with <paramref name="threads"/> CPU threads (0: one per core).</summary>
    public static LocalModel Load(string directory, int threads, DecoderLimits limits, IProgress<(int Done, int Total)>? progress = null)
    {
        var backend = new CpuBackend(threads);
        try
        {
            return new LocalModel(backend, Decoder.Load(directory, backend, limits, progress));
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Decoder.Dispose();
        _backend.Dispose();
    }
}
