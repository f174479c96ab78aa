using System.CommandLine;
using Turbine.Backends.Cuda;
using Turbine.Cli.Benchmarking;
using Turbine.Cli.Commands;
using Turbine.Cli.Hosting;

namespace Turbine.Cli.Tests;

/// <summary>--kv-cache-dtype and --gemm-precision: parsing, precedence over TURBINE_CUDA_*, and the CPU's refusal.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class BackendOptionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("turbine-precision-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string Model = RepositoryPaths.Fixture("models", "llama-gqa");

    private static ParseResult Parse(BackendOptions options, params string[] args) =>
        new RootCommand { options.Device, options.KvCacheDtype, options.GemmPrecision }.Parse(args);

    [Theory]
    [InlineData("f32", CudaKvCacheType.F32)]
    [InlineData("f24", CudaKvCacheType.F24)]
    [InlineData("f16", CudaKvCacheType.F16)]
    [InlineData("bf16", CudaKvCacheType.BF16)]
    public void KvCacheDtypeValuesParse(string value, CudaKvCacheType expected)
    {
        var options = new BackendOptions();
        var parse = Parse(options, "--device", "cuda", "--kv-cache-dtype", value);
        Assert.Empty(parse.Errors);
        Assert.Equal(new BackendSettings("cuda", 3, expected, null), options.Read(parse, 3));
    }

    [Theory]
    [InlineData("split", CudaGemmPrecision.Split)]
    [InlineData("single", CudaGemmPrecision.Single)]
    [InlineData("f16", CudaGemmPrecision.F16)]
    [InlineData("fp8lo", CudaGemmPrecision.Fp8Lo)]
    public void GemmPrecisionValuesParse(string value, CudaGemmPrecision expected)
    {
        var options = new BackendOptions();
        var parse = Parse(options, "--gemm-precision", value);
        Assert.Empty(parse.Errors);
        Assert.Equal(new BackendSettings("auto", 0, null, expected), options.Read(parse, 0));
    }

    [Fact]
    public void AbsentOptionsLeaveTheEnvironmentToDecide()
    {
        var options = new BackendOptions();
        var parse = Parse(options);
        Assert.Empty(parse.Errors);
        Assert.Equal(new BackendSettings("auto", 0), options.Read(parse, 0));
    }

    [Theory]
    [InlineData("--kv-cache-dtype", "fp8", "'f32'", "'bf16'")]
    [InlineData("--kv-cache-dtype", "F16", "'f32'", "'bf16'")]
    // The environment's bf16 alias of single is not a CLI value: "bf16" would read as the KV cache's type.
    [InlineData("--gemm-precision", "bf16", "'split'", "'single'")]
    [InlineData("--gemm-precision", "tf32", "'split'", "'f16'")]
    public void OtherValuesAreRefusedNamingTheAcceptedOnes(string option, string value, string accepted1, string accepted2)
    {
        var parse = Parse(new BackendOptions(), option, value);
        var error = Assert.Single(parse.Errors).Message;
        Assert.Contains($"'{value}'", error);
        Assert.Contains(accepted1, error);
        Assert.Contains(accepted2, error);
    }

    [Fact]
    public void CommandLineWinsOverTheEnvironmentWhichWinsOverTheDefaults()
    {
        var environment = new CudaBackendOptions { KvCache = CudaKvCacheType.BF16, Gemm = CudaGemmPrecision.Single, Graphs = false };
        var kept = BackendFactory.CudaOptions(environment, new BackendSettings("cuda", 0));
        Assert.Equal(environment, kept);
        var kvOnly = BackendFactory.CudaOptions(environment, new BackendSettings("cuda", 0, CudaKvCacheType.F16));
        Assert.Equal(environment with { KvCache = CudaKvCacheType.F16 }, kvOnly);
        var both = BackendFactory.CudaOptions(environment, new BackendSettings("cuda", 0, CudaKvCacheType.F32, CudaGemmPrecision.Split));
        Assert.Equal(environment with { KvCache = CudaKvCacheType.F32, Gemm = CudaGemmPrecision.Split }, both);
        var defaults = BackendFactory.CudaOptions(new CudaBackendOptions(), new BackendSettings("cuda", 0));
        Assert.Equal((CudaKvCacheType.F24, CudaGemmPrecision.Fp8Lo), (defaults.KvCache, defaults.Gemm));
    }

    [Fact]
    public void CommandLineWinsOverTurbineCudaVariables()
    {
        var saved = (Environment.GetEnvironmentVariable("TURBINE_CUDA_KV"), Environment.GetEnvironmentVariable("TURBINE_CUDA_GEMM"));
        Environment.SetEnvironmentVariable("TURBINE_CUDA_KV", "bf16");
        Environment.SetEnvironmentVariable("TURBINE_CUDA_GEMM", "f16");
        try
        {
            var environment = new CudaBackendOptions().FromEnvironment();
            var gemmGiven = BackendFactory.CudaOptions(environment, new BackendSettings("cuda", 0, Gemm: CudaGemmPrecision.Split));
            Assert.Equal((CudaKvCacheType.BF16, CudaGemmPrecision.Split), (gemmGiven.KvCache, gemmGiven.Gemm));
            var kvGiven = BackendFactory.CudaOptions(environment, new BackendSettings("cuda", 0, CudaKvCacheType.F32));
            Assert.Equal((CudaKvCacheType.F32, CudaGemmPrecision.F16), (kvGiven.KvCache, kvGiven.Gemm));
        }
        finally
        {
            Environment.SetEnvironmentVariable("TURBINE_CUDA_KV", saved.Item1);
            Environment.SetEnvironmentVariable("TURBINE_CUDA_GEMM", saved.Item2);
        }
    }

    [Fact]
    public void DescriptionsNameThePrecisionsAsTheOptionsDo()
    {
        Assert.Equal("KV f24, GEMM fp8lo", BackendDescription.Precision(new CudaBackendOptions()));
        Assert.Equal("KV f24, GEMM split", BackendDescription.Precision(new CudaBackendOptions { Gemm = CudaGemmPrecision.Split }));
        Assert.Equal("KV f16, GEMM f16", BackendDescription.Precision(new CudaBackendOptions { KvCache = CudaKvCacheType.F16, Gemm = CudaGemmPrecision.F16 }));
        Assert.Equal("KV bf16, GEMM single", BackendDescription.Precision(new CudaBackendOptions { KvCache = CudaKvCacheType.BF16, Gemm = CudaGemmPrecision.Single }));
        Assert.Equal("KV f32, GEMM fp8lo", BackendDescription.Precision(new CudaBackendOptions { KvCache = CudaKvCacheType.F32 }));
    }

    public static TheoryData<string[], string> CpuPrecisions => new()
    {
        { ["--kv-cache-dtype", "f16"], "--kv-cache-dtype applies" },
        { ["--gemm-precision", "split"], "--gemm-precision applies" },
        { ["--kv-cache-dtype", "f32", "--gemm-precision", "f16"], "--kv-cache-dtype and --gemm-precision apply" },
    };

    [Theory]
    [MemberData(nameof(CpuPrecisions))]
    public async Task EveryCommandRefusesCudaPrecisionsOnTheCpu(string[] precision, string given)
    {
        var workload = Path.Combine(_dir, "workload.json");
        var (exit, _, _) = await ConsoleCapture.InvokeAsync(BenchCommand.Create(), "dataset", "token-norm-dist", "--num-requests", "2", "--input-mean", "8",
            "--output-mean", "2", "--vocab-size", "1024", "--output", workload);
        Assert.Equal(0, exit);
        (Func<Command> Command, string[] Args)[] commands =
        [
            (ServeCommand.Create, ["--model", Model, "--http-port", "0", "--metrics-port", "0"]),
            (RunCommand.Create, ["--model", Model, "--max_output_len", "2"]),
            (BenchCommand.Create, ["run", "--model", Model, "--dataset", workload, "--max-num-tokens", "64"]),
            (BenchCommand.Create, ["sweep", "--model", Model, "--batch-sizes", "1", "--input-lens", "8", "--output-lens", "2", "--max-num-tokens", "64"]),
        ];
        foreach (var (command, args) in commands)
        {
            (exit, var output, var error) = await ConsoleCapture.InvokeAsync(command(), [.. args, "--device", "cpu", .. precision]);
            Assert.Equal(1, exit);
            Assert.Equal($"error: {given} to the CUDA backend only: the CPU backend keeps float32 K/V and float32 GEMMs", error.Trim());
            Assert.Equal("", output);

            // auto falls back to the CPU where there is no GPU, and the options are refused there too.
            if (CudaBackend.IsAvailable(out _))
                continue;
            (exit, output, error) = await ConsoleCapture.InvokeAsync(command(), [.. args, "--device", "auto", .. precision]);
            Assert.Equal(1, exit);
            Assert.Equal($"error: {given} to the CUDA backend only: --device auto found no GPU, and the CPU backend keeps float32 K/V and float32 GEMMs",
                error.Trim());
            Assert.Equal("", output);
        }
    }
}
