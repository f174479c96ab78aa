using System.Text.Json;
using Turbine.Backends.Cuda;
using Turbine.Cli.Benchmarking;
using Turbine.Cli.Commands;

namespace Turbine.Cli.Tests;

/// <summary>The commands end to end; they own the console, so they run one at a time.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class BenchCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("turbine-bench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string Model = RepositoryPaths.Fixture("models", "llama-gqa");

    private static async Task<(int Exit, string Out)> Invoke(params string[] args)
    {
        var (exit, output, _) = await InvokeWithErrors(args);
        return (exit, output);
    }

    private static Task<(int Exit, string Out, string Error)> InvokeWithErrors(params string[] args) =>
        ConsoleCapture.InvokeAsync(BenchCommand.Create(), args);

    private async Task<string> Workload()
    {
        var path = Path.Combine(_dir, "workload.json");
        var (exit, _) = await Invoke("dataset", "token-norm-dist", "--num-requests", "6", "--input-mean", "16", "--input-stdev", "4",
            "--output-mean", "8", "--output-stdev", "0", "--vocab-size", "1024", "--seed", "3", "--output", path);
        Assert.Equal(0, exit);
        return path;
    }

    // What BackendFactory says when there is no usable GPU; null where there is one.
    private static string? NoGpuMessage()
    {
        try
        {
            new CudaBackend().Dispose();
            return null;
        }
        catch (CudaException e)
        {
            return e.Message;
        }
    }

    [Fact]
    public async Task DatasetThenRunJsonOnTheFixtureModel()
    {
        var model = RepositoryPaths.Fixture("models", "llama-gqa");
        var path = Path.Combine(_dir, "workload.json");
        var (exit, _) = await Invoke("dataset", "token-norm-dist", "--num-requests", "6", "--input-mean", "16", "--input-stdev", "4",
            "--output-mean", "8", "--output-stdev", "0", "--model", model, "--seed", "3", "--output", path);
        Assert.Equal(0, exit);
        var dataset = BenchmarkDataset.Load(path);
        Assert.Equal(6, dataset.Samples.Length);
        Assert.All(dataset.Samples, s => Assert.Equal(8, s.OutputLen));
        Assert.All(dataset.Samples, s => Assert.NotNull(s.Prompt));
        Assert.Equal(1024, dataset.Metadata.VocabSize);

        (exit, var json) = await Invoke("run", "--model", model, "--dataset", path, "--mode", "static", "--max-batch-size", "4",
            "--max-num-tokens", "64", "--threads", "1", "--json");
        Assert.Equal(0, exit);
        using var document = JsonDocument.Parse(json);
        var config = document.RootElement.GetProperty("config");
        Assert.Equal("static", config.GetProperty("mode").GetString());
        Assert.Equal(4, config.GetProperty("max_batch_size").GetInt32());
        Assert.Equal(JsonValueKind.Null, config.GetProperty("request_rate").ValueKind);
        var results = document.RootElement.GetProperty("results");
        Assert.Equal(6, results.GetProperty("completed").GetInt32());
        Assert.Equal(48, results.GetProperty("output_tokens").GetInt64());
        Assert.Equal(6, results.GetProperty("ttft_ms").GetProperty("count").GetInt32());
    }

    [Fact]
    public async Task RunAndSweepOnTheCpuNameTheDevice()
    {
        var path = await Workload();
        var (exit, json) = await Invoke("run", "--model", Model, "--dataset", path, "--device", "cpu", "--max-batch-size", "1024",
            "--max-num-tokens", "64", "--threads", "1", "--json");
        Assert.Equal(0, exit);
        using (var document = JsonDocument.Parse(json))
        {
            var config = document.RootElement.GetProperty("config");
            Assert.Equal("cpu (1 thread)", config.GetProperty("device").GetString());
            // The workload's six requests bound the batch, whatever the limit asked for.
            Assert.Equal(6, config.GetProperty("max_batch_size").GetInt32());
            Assert.True(config.GetProperty("kv_tokens").GetInt32() >= 6 * 24);
            Assert.Equal(JsonValueKind.Null, config.GetProperty("kv_cache_free_gpu_mem_fraction").ValueKind);
            Assert.Equal(6, document.RootElement.GetProperty("results").GetProperty("completed").GetInt32());
        }

        (exit, json) = await Invoke("sweep", "--model", Model, "--device", "cpu", "--batch-sizes", "1,2", "--input-lens", "8", "--output-lens", "4",
            "--max-num-tokens", "64", "--threads", "1", "--json");
        Assert.Equal(0, exit);
        using (var document = JsonDocument.Parse(json))
        {
            Assert.Equal(2, document.RootElement.GetArrayLength());
            foreach (var point in document.RootElement.EnumerateArray())
            {
                Assert.Equal("cpu (1 thread)", point.GetProperty("device").GetString());
                Assert.Equal(0, point.GetProperty("errors").GetInt32());
            }
        }

        (exit, var table) = await Invoke("sweep", "--model", Model, "--device", "cpu", "--batch-sizes", "1", "--input-lens", "8", "--output-lens", "2",
            "--max-num-tokens", "64", "--threads", "1");
        Assert.Equal(0, exit);
        Assert.Contains("on cpu (1 thread)", table);
    }

    [Fact]
    public async Task CudaWithoutAGpuFailsWithTheBackendsMessage()
    {
        var path = await Workload();
        string[][] commands =
        [
            ["run", "--model", Model, "--dataset", path, "--device", "cuda", "--max-num-tokens", "64", "--json"],
            ["sweep", "--model", Model, "--device", "cuda", "--batch-sizes", "1", "--input-lens", "8", "--output-lens", "2", "--max-num-tokens", "64", "--json"],
        ];
        string? expected = NoGpuMessage();
        foreach (var args in commands)
        {
            var (exit, output, error) = await InvokeWithErrors(args);
            if (expected is null)
            {
                // A machine with a GPU runs it there.
                Assert.Equal(0, exit);
                Assert.Contains("\"device\":\"cuda:", output);
                continue;
            }
            Assert.Equal(1, exit);
            Assert.Equal($"error: {expected}", error.Trim());
            Assert.Equal("", output);
        }
    }

    [Theory]
    [InlineData("run", "0", "must be in (0, 1], not 0")]
    [InlineData("run", "1.5", "must be in (0, 1], not 1.5")]
    [InlineData("run", "NaN", "must be in (0, 1], not NaN")]
    [InlineData("sweep", "0", "must be in (0, 1], not 0")]
    [InlineData("sweep", "2", "must be in (0, 1], not 2")]
    public async Task KvCacheFractionOutsideZeroToOneIsRefused(string command, string fraction, string message)
    {
        var path = await Workload();
        string[] args = command == "run"
            ? ["run", "--model", Model, "--dataset", path, "--device", "cpu", "--kv-cache-free-gpu-mem-fraction", fraction]
            : ["sweep", "--model", Model, "--device", "cpu", "--kv-cache-free-gpu-mem-fraction", fraction];
        var (exit, output, error) = await InvokeWithErrors(args);
        Assert.Equal(1, exit);
        Assert.Equal($"error: --kv-cache-free-gpu-mem-fraction {message}", error.Trim());
        Assert.Equal("", output);
    }

    [Fact]
    public async Task KvTokensAndFractionAreExclusive()
    {
        var path = await Workload();
        var (exit, _, error) = await InvokeWithErrors("run", "--model", Model, "--dataset", path, "--device", "cpu",
            "--kv-tokens", "4096", "--kv-cache-free-gpu-mem-fraction", "0.9");
        Assert.Equal(1, exit);
        Assert.Equal("error: give --kv-tokens or --kv-cache-free-gpu-mem-fraction, not both", error.Trim());
        (exit, _, error) = await InvokeWithErrors("run", "--model", Model, "--dataset", path, "--device", "gpu");
        Assert.NotEqual(0, exit);
        Assert.Contains("gpu", error);
    }

    [Fact]
    public async Task BadArgumentsFailWithoutRunning()
    {
        var path = Path.Combine(_dir, "none.json");
        var (exit, _) = await Invoke("dataset", "token-norm-dist", "--num-requests", "3", "--input-mean", "4", "--output-mean", "4", "--output", path);
        Assert.Equal(1, exit);
        Assert.False(File.Exists(path));
        (exit, _) = await Invoke("run", "--dataset", path, "--request-rate", "fast");
        Assert.Equal(1, exit);
    }
}
