namespace Turbine.Backends.Cuda;

/// <summary>How the CUDA backend runs; <see cref="FromEnvironment"/> reads overrides from TURBINE_CUDA_* variables.</summary>
public sealed record CudaBackendOptions
{
    /// <summary>Device ordinal.</summary>
    public int Device { get; init; }

    /// <summary>
    /// KV cache entries in bf16 (half the bytes attention reads) instead of float32. Off by default: on a random
    /// Llama-3-8B-shaped model bf16 K/V moved the logits 2e-2 (relative L2) from transformers' float32, float32 K/V 1e-4.
    /// </summary>
    public bool KvCacheBf16 { get; init; }

    /// <summary>
    /// GEMMs of many rows run on the tensor cores with 16-bit activations. Split rounds each activation to hi + lo
    /// 16-bit parts and multiplies both (twice the FLOPs, float32-like accuracy); otherwise only hi (bf16 accuracy).
    /// </summary>
    public bool SplitGemmActivations { get; init; } = true;

    /// <summary>
    /// Steps of up to this many rows run through the GEMV kernels (8 rows a launch, float32 activations, weights read
    /// once per 8 rows); more rows go to cuBLAS.
    /// </summary>
    public int GemvMaxRows { get; init; } = 8;

    /// <summary>
    /// Consecutive linears of the same input (q, k and v; gate and up) run as one GEMV launch, or as one GEMM when their
    /// weights lie back to back. On by default: alone, the narrow k/v matrices leave most of the GPU idle (batch 1:
    /// 28% of the copy bandwidth; batch 64 on cuBLAS: q, k, v 81 µs a layer apart, 24 µs stacked).
    /// </summary>
    public bool FuseLinears { get; init; } = true;

    /// <summary>Where compiled kernels are cached; null: $XDG_CACHE_HOME/turbine/cuda or ~/.cache/turbine/cuda.</summary>
    public string? KernelCacheDirectory { get; init; }

    /// <summary>Times every operation with CUDA events from the start, for <see cref="CudaBackend.Profile"/>; slows steps down.</summary>
    public bool Profile { get; init; }

    /// <summary>
    /// These options with TURBINE_CUDA_KV (f32 | bf16), TURBINE_CUDA_GEMM (split | bf16), TURBINE_CUDA_GEMV_ROWS (a count), TURBINE_CUDA_FUSE (0 | 1),
    /// TURBINE_CUDA_CACHE (a directory) and TURBINE_CUDA_PROFILE (1) applied.
    /// </summary>
    public CudaBackendOptions FromEnvironment()
    {
        var o = this;
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_KV"))
        {
            case "f32": o = o with { KvCacheBf16 = false }; break;
            case "bf16": o = o with { KvCacheBf16 = true }; break;
        }
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_GEMM"))
        {
            case "split": o = o with { SplitGemmActivations = true }; break;
            case "bf16": o = o with { SplitGemmActivations = false }; break;
        }
        if (int.TryParse(Environment.GetEnvironmentVariable("TURBINE_CUDA_GEMV_ROWS"), out int gemvRows) && gemvRows > 0)
            o = o with { GemvMaxRows = gemvRows };
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_FUSE"))
        {
            case "0": o = o with { FuseLinears = false }; break;
            case "1": o = o with { FuseLinears = true }; break;
        }
        if (Environment.GetEnvironmentVariable("TURBINE_CUDA_CACHE") is { Length: > 0 } cache)
            o = o with { KernelCacheDirectory = cache };
        if (Environment.GetEnvironmentVariable("TURBINE_CUDA_PROFILE") == "1")
            o = o with { Profile = true };
        return o;
    }

    internal string ResolveCacheDirectory()
    {
        if (KernelCacheDirectory is not null)
            return KernelCacheDirectory;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "turbine", "cuda");
    }
}
