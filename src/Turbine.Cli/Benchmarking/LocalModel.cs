using Turbine.Cli.Hosting;
using Turbine.Engine.Backends;
using Turbine.Engine.Models;

namespace Turbine.Cli.Benchmarking;

/// <summary>A model loaded on the backend --device asked for, for in-process benchmarks; executors of any size up to its limits run on it.</summary>
public sealed class LocalModel : IDisposable
{
    private readonly IComputeBackend _backend;

    private LocalModel(IComputeBackend backend, Decoder decoder)
    {
        _backend = backend;
        Decoder = decoder;
    }

    /// <summary>The loaded decoder.</summary>
    public Decoder Decoder { get; }

    /// <summary>The device the model runs on, as <see cref="BackendDescription.Of"/> names it.</summary>
    public string Device => BackendDescription.Of(_backend);

    /// <summary>
    /// Loads the checkpoint in <paramref name="directory"/> on the backend <paramref name="settings"/> asks for (as
    /// <c>turbine run --device</c> and its precision options). "cuda" without a usable GPU throws
    /// <see cref="Turbine.Backends.Cuda.CudaException"/>; CUDA precisions for the CPU throw <see cref="ArgumentException"/>.
    /// </summary>
    public static LocalModel Load(string directory, BackendSettings settings, DecoderLimits limits, IProgress<(int Done, int Total)>? progress = null)
    {
        var backend = BackendFactory.Create(settings);
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
