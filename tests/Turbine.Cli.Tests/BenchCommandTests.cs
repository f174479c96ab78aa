using System.Text.Json;
using Turbine.Cli.Benchmarking;
using Turbine.Cli.Commands;

namespace Turbine.Cli.Tests;

/// <summary>The commands end to end; they own the console, so they run one at a time.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class BenchCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("turbine-bench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Exit, string Out)> Invoke(params string[] args)
    {
        var original = Console.Out;
        var output = new StringWriter();
        Console.SetOut(output);
        try
        {
            int exit = await BenchCommand.Create().Parse(args).InvokeAsync();
            return (exit, output.ToString());
        }
        finally
        {
            Console.SetOut(original);
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

[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;
