using System.CommandLine;
using Turbine.Backends.Cuda;

namespace Turbine.Cli.Hosting;

/// <summary>
/// --device, --kv-cache-dtype and --gemm-precision, defined once for every command that loads a model (serve, run,
/// bench run, bench sweep), so that a benchmark runs as serving would.
/// </summary>
internal sealed class BackendOptions
{
    /// <summary>The accepted --kv-cache-dtype values.</summary>
    public static readonly string[] KvCacheDtypes = ["f32", "f24", "f16", "bf16"];

    /// <summary>The accepted --gemm-precision values.</summary>
    public static readonly string[] GemmPrecisions = ["split", "single", "f16", "fp8lo"];

    /// <summary>Creates the options with their accepted values.</summary>
    public BackendOptions()
    {
        Device.AcceptOnlyFromAmong(BackendFactory.Devices);
        KvCacheDtype.AcceptOnlyFromAmong(KvCacheDtypes);
        GemmPrecision.AcceptOnlyFromAmong(GemmPrecisions);
    }

    /// <summary>--device.</summary>
    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda or auto (cuda when a GPU is found)", DefaultValueFactory = _ => "auto" };

    /// <summary>--kv-cache-dtype; absent: TURBINE_CUDA_KV, else f24.</summary>
    public Option<string?> KvCacheDtype { get; } = new("--kv-cache-dtype")
    {
        Description = "CUDA KV cache type: f24 (float32 rounded to 24 bits: 3/4 of float32's bytes, relative error 2^-16), f32 (float32 K/V), "
            + "f16 (half the bytes), bf16 (half the bytes, least accurate); default: TURBINE_CUDA_KV, else f24",
    };

    /// <summary>--gemm-precision; absent: TURBINE_CUDA_GEMM, else fp8lo.</summary>
    public Option<string?> GemmPrecision { get; } = new("--gemm-precision")
    {
        Description = "CUDA GEMM activations: fp8lo (split with f16 weights and, in prompt steps, the lo pass in fp8: faster prefill, "
            + "activations within ±65504, an fp8 copy of the linears), split (float32-like, two 16-bit tensor-core passes), f16 (one pass; "
            + "bf16 weights uploaded as f16), single (one pass in the weights' type, least accurate); default: TURBINE_CUDA_GEMM, else fp8lo",
    };

    /// <summary>What <paramref name="parse"/> asked for, with <paramref name="threads"/> CPU threads.</summary>
    public BackendSettings Read(ParseResult parse, int threads) => new(parse.GetValue(Device)!, threads,
        parse.GetValue(KvCacheDtype) switch
        {
            "f32" => CudaKvCacheType.F32,
            "f24" => CudaKvCacheType.F24,
            "f16" => CudaKvCacheType.F16,
            "bf16" => CudaKvCacheType.BF16,
            _ => null,
        },
        parse.GetValue(GemmPrecision) switch
        {
            "split" => CudaGemmPrecision.Split,
            "single" => CudaGemmPrecision.Single,
            "f16" => CudaGemmPrecision.F16,
            "fp8lo" => CudaGemmPrecision.Fp8Lo,
            _ => null,
        });
}
