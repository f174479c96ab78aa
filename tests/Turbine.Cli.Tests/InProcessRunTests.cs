using Turbine.Cli.Benchmarking;
using Turbine.Cli.Hosting;
using Turbine.Engine.Executor;

namespace Turbine.Cli.Tests;

public class InProcessRunTests
{
    private static readonly string Model = RepositoryPaths.Fixture("models", "llama-gqa");

    private static BenchmarkDataset Workload(int requests = 10) => TokenNormDistGenerator.Generate(new TokenNormDistOptions
    {
        NumRequests = requests, InputMean = 20, InputStdev = 8, OutputMean = 10, OutputStdev = 5, VocabSize = 1024, Seed = 5,
    });

    public static TheoryData<BenchmarkMode, double, int> Modes => new()
    {
        { BenchmarkMode.Ifb, double.PositiveInfinity, 0 },
        { BenchmarkMode.Ifb, 200, 3 },
        { BenchmarkMode.Static, double.PositiveInfinity, 0 },
        { BenchmarkMode.Static, 200, 0 },
        { BenchmarkMode.StaticEmulated, 200, 0 },
        { BenchmarkMode.StaticEmulated, double.PositiveInfinity, 5 },
    };

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task EveryRequestGetsExactlyItsOutputLength(BenchmarkMode mode, double rate, int concurrency)
    {
        var dataset = Workload();
        var settings = new InProcessSettings { Mode = mode, MaxBatchSize = 4, MaxNumTokens = 64, StaticTimeout = TimeSpan.FromMilliseconds(20) };
        var options = InProcessBenchmark.ExecutorOptionsFor(settings, dataset);
        Assert.Equal(mode == BenchmarkMode.Ifb ? BatchingMode.InFlight : BatchingMode.Static, options.Batching);
        Assert.Equal(mode == BenchmarkMode.StaticEmulated ? TimeSpan.FromMilliseconds(20) : TimeSpan.Zero, options.StaticBatchTimeout);
        using var model = LocalModel.Load(Model, new BackendSettings("cpu", Threads: 1), LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(model.Decoder, options);
        var progress = new List<(int Done, int Total)>();
        var reporter = new SynchronousProgress(p => { lock (progress) progress.Add(p); });

        await InProcessBenchmark.WarmUpAsync(executor, dataset.Samples, 2);
        var run = await LoadGenerator.RunAsync(dataset.Samples, new ExecutorTarget(executor),
            new LoadSettings { RequestRate = rate, Concurrency = concurrency, Seed = 1 }, reporter);
        var report = BenchmarkReport.From(run);

        for (int i = 0; i < dataset.Samples.Length; i++)
        {
            var record = run.Records[i];
            Assert.Null(record.Error);
            Assert.Equal(dataset.Samples[i].OutputLen, record.OutputTokens);
            Assert.True(record.SentAt <= record.FirstTokenAt && record.FirstTokenAt <= record.LastTokenAt && record.LastTokenAt <= record.CompletedAt);
        }
        Assert.Equal(10, report.Requests);
        Assert.Equal(10, report.Completed);
        Assert.Equal(0, report.Failed);
        Assert.Equal(0, report.LengthMismatches);
        Assert.Equal(dataset.Samples.Sum(s => s.OutputLen), report.OutputTokens);
        Assert.Equal(dataset.Samples.Sum(s => s.InputLen), report.InputTokens);
        Assert.Equal(10, report.TimeToFirstToken.Count);
        Assert.Equal(10, report.EndToEndLatency.Count);
        Assert.Equal(dataset.Samples.Count(s => s.OutputLen > 1), report.InterTokenLatency.Count);
        Assert.Equal(report.Completed / report.DurationSeconds, report.RequestThroughput, 6);
        Assert.Equal(report.OutputTokens / report.DurationSeconds, report.OutputTokensPerSecond, 6);
        Assert.Equal((report.InputTokens + report.OutputTokens) / report.DurationSeconds, report.TotalTokensPerSecond, 6);
        Assert.True(report.TimeToFirstToken.P50 <= report.EndToEndLatency.P99);
        lock (progress)
        {
            Assert.Equal((10, 10), progress.MaxBy(p => p.Done));
            Assert.Equal(11, progress.Count);
        }
    }

    [Fact]
    public void KvCacheIsAFullBatchUnlessAGpuMemoryFractionIsGiven()
    {
        var dataset = Workload(6);
        int block = 16, longest = dataset.Samples.Max(s => s.InputIds.Length + s.OutputLen);
        int perRequest = (longest + block - 1) / block * block + block;
        // A limit beyond the workload's request count sizes nothing larger than the workload can fill.
        var full = InProcessBenchmark.ExecutorOptionsFor(new InProcessSettings { MaxBatchSize = 1024 }, dataset);
        Assert.Equal(6, full.MaxBatchSize);
        Assert.Equal(6 * perRequest, full.MaxTokensInPagedKvCache);
        Assert.Equal(new ExecutorOptions().KvCacheFreeGpuMemFraction, full.KvCacheFreeGpuMemFraction);

        var sized = InProcessBenchmark.ExecutorOptionsFor(new InProcessSettings { MaxBatchSize = 4, KvCacheFreeGpuMemFraction = 0.5f }, dataset);
        Assert.Null(sized.MaxTokensInPagedKvCache);
        Assert.Equal(0.5f, sized.KvCacheFreeGpuMemFraction);
        Assert.Equal(4, sized.MaxBatchSize);

        var tokens = InProcessBenchmark.ExecutorOptionsFor(new InProcessSettings { KvTokens = 320 }, dataset);
        Assert.Equal(320, tokens.MaxTokensInPagedKvCache);
    }

    [Fact]
    public async Task RejectedRequestsAreCountedAsFailures()
    {
        var dataset = Workload(4);
        // Token id 5000 lies outside the fixture's 1024-token vocabulary.
        dataset.Samples[2] = dataset.Samples[2] with { InputIds = [5000, 1, 2] };
        var options = InProcessBenchmark.ExecutorOptionsFor(new InProcessSettings { MaxBatchSize = 4, MaxNumTokens = 64 }, dataset);
        using var model = LocalModel.Load(Model, new BackendSettings("cpu", Threads: 1), LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(model.Decoder, options);
        var report = await InProcessBenchmark.RunAsync(executor, dataset, new LoadSettings());
        Assert.Equal((4, 3, 1), (report.Requests, report.Completed, report.Failed));
        Assert.Contains("outside the vocabulary", report.FirstError);
        Assert.Equal(dataset.Samples.Where((_, i) => i != 2).Sum(s => s.OutputLen), report.OutputTokens);
    }

    [Fact]
    public async Task SweepPointsGenerateFullStaticBatches()
    {
        int[] batches = [1, 3];
        using var model = LocalModel.Load(Model, new BackendSettings("cpu", Threads: 1), BatchSweep.LimitsFor(batches, 64));
        foreach (int batch in batches)
        {
            var point = await BatchSweep.MeasureAsync(model.Decoder, batch, inputLen: 12, outputLen: 6, maxNumTokens: 64, seed: 2);
            Assert.Equal((batch, 12, 6, 0), (point.BatchSize, point.InputLen, point.OutputLen, point.Errors));
            Assert.Equal(model.Device, point.Device);
            Assert.True(point.KvTokens >= batch * (12 + 6));
            Assert.Equal(batch * 6 / (point.LatencyMs / 1000), point.TokensPerSecond, 3);
        }
    }

    /// <summary>Reports on the caller's thread, unlike <see cref="Progress{T}"/>, so that every report is seen before the run returns.</summary>
    private sealed class SynchronousProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => report(value);
    }
}
