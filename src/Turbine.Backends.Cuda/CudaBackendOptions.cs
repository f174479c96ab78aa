namespace Turbine.Backends.Cuda;

/// <summary>How the CUDA backend runs; <see cref="FromEnvironment"/> reads overrides from TURBINE_CUDA_* variables.</summary>
public sealed record CudaBackendOptions
{
    /// <summary>Device ordinal.</summary>
    public int Device { get; init; }

    /// <summary>
    /// Element type of the KV cache. F24 by default (float32 rounded to 24 bits, 3 bytes an element): float32-like
    /// accuracy for a quarter fewer bytes than float32 to hold and for decode attention to read (H100, Llama-3-8B shape,
    /// batch 64 × context 192: 37.8 against 45.9 µs a layer). On random Llama-3-8B- and Qwen2-7B-shaped models F24 K/V
    /// kept the teacher-forced logits within 1.6e-4 (relative L2) of transformers' float32 and every argmax, as float32
    /// K/V does (1.3e-4); f16 K/V moved them 2.4e-3 and bf16 2e-2, each flipping argmaxes. F16 keeps 3 more mantissa bits
    /// than bf16 at half float32's bytes.
    /// </summary>
    public CudaKvCacheType KvCache { get; init; } = CudaKvCacheType.F24;

    /// <summary>
    /// How GEMMs of many rows feed the tensor cores (GEMV steps of few rows always use float32 activations). Fp8Lo by
    /// default: within a factor of two of Split's float32-like accuracy, prompt steps 15% faster (see its summary).
    /// </summary>
    public CudaGemmPrecision Gemm { get; init; } = CudaGemmPrecision.Fp8Lo;

    /// <summary>
    /// With <see cref="CudaGemmPrecision.Fp8Lo"/>: GEMMs of at least this many rows (prompt steps) run their lo half in
    /// fp8; fewer rows (decode steps, memory-bound) keep the f16 split and read no extra weight bytes. At 512 rows the
    /// fp8 lo pass already pays (Llama-3-8B shape, H100: a 512-token prompt step 28.1 → 24.6 ms).
    /// </summary>
    public int Fp8LoMinRows { get; init; } = 512;

    /// <summary>
    /// Steps of up to this many rows run through the GEMV kernels (8 rows a launch, float32 activations, weights read
    /// once per 8 rows); more rows go to cuBLAS.
    /// </summary>
    public int GemvMaxRows { get; init; } = 8;

    /// <summary>
    /// Operations that follow each other run as one launch: consecutive linears of the same input (q, k and v; gate and
    /// up) as one GEMV launch or one GEMM over back-to-back weights, SwiGLU inside the gate/up GEMV or GEMM epilogue, and
    /// RoPE inside the KV-cache write. On by default: alone, the narrow k/v matrices leave most of the GPU idle (batch 1:
    /// 28% of the copy bandwidth; batch 64 on cuBLAS: q, k, v 81 µs a layer apart, 24 µs stacked).
    /// </summary>
    public bool Fuse { get; init; } = true;

    /// <summary>
    /// Decode steps (one token per sequence) are captured as a CUDA graph per batch size the second time that size is
    /// seen and replayed after, so the GPU runs a step's few hundred kernels without launch gaps.
    /// </summary>
    public bool Graphs { get; init; } = true;

    /// <summary>
    /// GEMV kernels start while the kernel before them finishes (programmatic dependent launch, sm_90 and later) and wait
    /// for their input inside: their blocks are scheduled during the previous kernel's tail. Hides part of each launch's
    /// ramp-up at small batches.
    /// </summary>
    public bool DependentLaunch { get; init; } = true;

    /// <summary>
    /// Prompt steps of head width 128 compute attention on tensor cores, every operand split into f16 hi + lo (float32-like
    /// accuracy; |q·scale·log2 e|, |k| and |v| saturate at 65504), instead of the float32 CUDA-core kernel.
    /// </summary>
    public bool TensorCoreAttention { get; init; } = true;

    /// <summary>Where compiled kernels are cached; null: $XDG_CACHE_HOME/turbine/cuda or ~/.cache/turbine/cuda.</summary>
    public string? KernelCacheDirectory { get; init; }

    /// <summary>Times every operation with CUDA events from the start, for <see cref="CudaBackend.Profile"/>; slows steps down.</summary>
    public bool Profile { get; init; }

    /// <summary>
    /// These options with TURBINE_CUDA_KV (f32 | f24 | f16 | bf16), TURBINE_CUDA_GEMM (split | single | f16 | fp8lo), TURBINE_CUDA_GEMV_ROWS (a count), TURBINE_CUDA_FP8_ROWS (a count),
    /// TURBINE_CUDA_FUSE (0 | 1), TURBINE_CUDA_GRAPHS (0 | 1), TURBINE_CUDA_PDL (0 | 1), TURBINE_CUDA_TC_ATTENTION (0 | 1), TURBINE_CUDA_CACHE (a directory) and TURBINE_CUDA_PROFILE (1) applied.
    /// </summary>
    public CudaBackendOptions FromEnvironment()
    {
        var o = this;
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_KV"))
        {
            case "f32": o = o with { KvCache = CudaKvCacheType.F32 }; break;
            case "f24": o = o with { KvCache = CudaKvCacheType.F24 }; break;
            case "f16": o = o with { KvCache = CudaKvCacheType.F16 }; break;
            case "bf16": o = o with { KvCache = CudaKvCacheType.BF16 }; break;
        }
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_GEMM"))
        {
            case "split": o = o with { Gemm = CudaGemmPrecision.Split }; break;
            case "single" or "bf16": o = o with { Gemm = CudaGemmPrecision.Single }; break;
            case "f16": o = o with { Gemm = CudaGemmPrecision.F16 }; break;
            case "fp8lo": o = o with { Gemm = CudaGemmPrecision.Fp8Lo }; break;
        }
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_PDL"))
        {
            case "0": o = o with { DependentLaunch = false }; break;
            case "1": o = o with { DependentLaunch = true }; break;
        }
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_GRAPHS"))
        {
            case "0": o = o with { Graphs = false }; break;
            case "1": o = o with { Graphs = true }; break;
        }
        if (int.TryParse(Environment.GetEnvironmentVariable("TURBINE_CUDA_GEMV_ROWS"), out int gemvRows) && gemvRows > 0)
            o = o with { GemvMaxRows = gemvRows };
        if (int.TryParse(Environment.GetEnvironmentVariable("TURBINE_CUDA_FP8_ROWS"), out int fp8Rows) && fp8Rows > 0)
            o = o with { Fp8LoMinRows = fp8Rows };
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_FUSE"))
        {
            case "0": o = o with { Fuse = false }; break;
            case "1": o = o with { Fuse = true }; break;
        }
        switch (Environment.GetEnvironmentVariable("TURBINE_CUDA_TC_ATTENTION"))
        {
            case "0": o = o with { TensorCoreAttention = false }; break;
            case "1": o = o with { TensorCoreAttention = true }; break;
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

/// <summary>Element type of the CUDA backend's KV cache.</summary>
public enum CudaKvCacheType
{
    /// <summary>Float32: exact K/V, twice the bytes attention reads.</summary>
    F32,
    /// <summary>IEEE half: 11-bit significands, values beyond ±65504 saturate.</summary>
    F16,
    /// <summary>bfloat16: 8-bit significands, float32's range.</summary>
    BF16,
    /// <summary>
    /// Float32 rounded to nearest at 24 bits (sign, 8-bit exponent, 15 stored mantissa bits: relative error at most
    /// 2^-16, float32's range; halves round away from zero, NaN and inf kept), 3 bytes an element in two planes: the top
    /// 16 bits (a bf16 pattern) and the next 8.
    /// </summary>
    F24,
}

/// <summary>Sizes of <see cref="CudaKvCacheType"/> elements.</summary>
public static class CudaKvCacheTypeExtensions
{
    /// <summary>Bytes one K or V element of <paramref name="type"/> takes in the cache (both planes of F24).</summary>
    public static int ElementBytes(this CudaKvCacheType type) => type switch
    {
        CudaKvCacheType.F32 => sizeof(float),
        CudaKvCacheType.F24 => 3,
        CudaKvCacheType.F16 or CudaKvCacheType.BF16 => sizeof(ushort),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a KV cache type"),
    };
}

/// <summary>How the CUDA backend's GEMMs (steps of many rows) turn float32 activations into tensor-core inputs.</summary>
public enum CudaGemmPrecision
{
    /// <summary>
    /// Each activation as hi + lo 16-bit parts in the weights' type, both multiplied: twice the FLOPs, float32-like accuracy.
    /// </summary>
    Split,
    /// <summary>One 16-bit rounding of the activations in the weights' type (bf16 accuracy for bf16 weights).</summary>
    Single,
    /// <summary>
    /// bf16 weights rewritten as f16 when uploaded (exact for magnitudes 6.1e-5 to 65504; a weight beyond that is an
    /// error) and one f16 rounding of the activations: 3 more significand bits than bf16 at the same speed.
    /// </summary>
    F16,
    /// <summary>
    /// The default: <see cref="Split"/> with bf16 weights rewritten as f16 when uploaded (a tensor beyond f16's ±65504
    /// stays bf16 and splits as before), and in GEMMs of at least <see cref="CudaBackendOptions.Fp8LoMinRows"/> rows
    /// (prompt steps) the lo half multiplied in fp8: an f16 hi pass plus a cuBLASLt e4m3 pass of the remainder x - hi
    /// (power-of-two scale per row) against an e4m3 copy of each linear's weights (per output channel), at about twice
    /// the 16-bit rate. Llama-3-8B shape on an H100: prompt step of 64 × 128 tokens 396 → 338 ms, TTFT of 2048 tokens
    /// 127 → 106 ms. Accuracy: such a GEMM is 1.1–1.8× the split's error (about 1e-5 relative against float64, a
    /// twentieth of one f16 pass); teacher-forced prefill 1.6e-4 relative L2 on Llama-3-8B and Qwen2-7B shapes
    /// (split: 9.4e-5), argmax 256/256. Costs: every GEMM's activations saturate at f16's ±65504 (Split's bf16 halves
    /// keep float32's range); the e4m3 copies take half the linears' bf16 bytes (7 GB for Llama-3-8B, taken from the KV
    /// cache's share), made only while a quarter of the GPU's memory stays free, so a model that fills the GPU runs its
    /// remaining linears split. Needs sm_89 or later; elsewhere it is <see cref="Split"/> (bf16 weights kept).
    /// </summary>
    Fp8Lo,
}
