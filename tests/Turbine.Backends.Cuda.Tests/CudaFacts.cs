namespace Turbine.Backends.Cuda.Tests;

/// <summary>
/// A test that needs an NVIDIA GPU: skipped, with the reason, where the driver or a device is missing (CI). On the GPU
/// machine, which has no .NET, the same checks run through tools/gpu/check_cuda.sh.
/// </summary>
public sealed class CudaFactAttribute : FactAttribute
{
    /// <summary>Skips unless a CUDA device can be used.</summary>
    public CudaFactAttribute()
    {
        if (!CudaBackend.IsAvailable(out var reason))
            Skip = $"needs an NVIDIA GPU ({reason}); on the GPU machine run tools/gpu/check_cuda.sh";
    }
}

/// <summary>A test of what happens without a GPU: skipped where one is present.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    /// <summary>Skips when a CUDA device can be used.</summary>
    public NoCudaFactAttribute()
    {
        if (CudaBackend.IsAvailable(out _))
            Skip = "a GPU is present";
    }
}
