using Turbine.Engine.Executor;

namespace Turbine.Cli.Benchmarking;

/// <summary>Executor settings of an in-process benchmark (gptManagerBenchmark's engine-side options).</summary>
public sealed record InProcessSettings
{
    /// <summary>Batching mode.</summary>
    public BenchmarkMode Mode { get; init; } = BenchmarkMode.Ifb;
    /// <summary>Requests in the running batch at most.</summary>
    public int MaxBatchSize { get; init; } = 64;
    /// <summary>Tokens per step at most; longer prompts are prefilled in chunks.</summary>
    public int MaxNumTokens { get; init; } = 2048;
    /// <summary>
    /// KV cache capacity in tokens; null with no <see cref="KvCacheFreeGpuMemFraction"/> holds a full batch of the dataset's
    /// longest request.
    /// </summary>
    public int? KvTokens { get; init; }
    /// <summary>
    /// With no <see cref="KvTokens"/>: size the KV cache as the executor does from memory, this share of the GPU's free
    /// memory after loading (kv_cache_free_gpu_mem_fraction); on the CPU the executor's memory budget applies.
    /// </summary>
    public float? KvCacheFreeGpuMemFraction { get; init; }
    /// <summary>Static-emulated mode: how long to wait for a full batch.</summary>
    public TimeSpan StaticTimeout { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Tokens per KV block.</summary>
    public int TokensPerBlock { get; init; } = 16;
}

/// <summary>Runs a workload against an in-process <see cref="LlmExecutor"/>.</summary>
public static class InProcessBenchmark
{
    /// <summary>The executor options for <paramref name="settings"/> on <paramref name="dataset"/>.</summary>
    public static ExecutorOptions ExecutorOptionsFor(InProcessSettings settings, BenchmarkDataset dataset)
    {
        int longest = 0;
        foreach (var s in dataset.Samples)
            longest = Math.Max(longest, s.InputIds.Length + s.OutputLen);
        int block = settings.TokensPerBlock;
        int perRequest = (longest + block - 1) / block * block + block;
        // A batch never holds more requests than the workload has: a larger limit would only size step buffers
        // (host and device logits among them) that no step uses.
        int maxBatch = Math.Min(settings.MaxBatchSize, Math.Max(1, dataset.Samples.Length));
        int? kvTokens = settings.KvTokens
            ?? (settings.KvCacheFreeGpuMemFraction is null ? (int)Math.Min(int.MaxValue, (long)maxBatch * perRequest) : null);
        var options = new ExecutorOptions
        {
            MaxBatchSize = maxBatch,
            MaxNumTokens = settings.MaxNumTokens,
            TokensPerBlock = block,
            MaxTokensInPagedKvCache = kvTokens,
            Batching = settings.Mode == BenchmarkMode.Ifb ? BatchingMode.InFlight : BatchingMode.Static,
            StaticBatchTimeout = settings.Mode == BenchmarkMode.StaticEmulated ? settings.StaticTimeout : TimeSpan.Zero,
            // The load generator, not the executor, decides how many requests wait.
            MaxQueueSize = Math.Max(1024, dataset.Samples.Length),
        };
        return settings.KvCacheFreeGpuMemFraction is float fraction ? options with { KvCacheFreeGpuMemFraction = fraction } : options;
    }

    /// <summary>
    /// Runs the first <paramref name="requests"/> samples with their whole prompts but 4 output tokens, together, so that
    /// first-use costs stay out of the measurement: JIT, buffers, on a GPU the GEMM library's set-up and heuristics for
    /// prompt-sized steps, and the CUDA graph of the batch's decode step (captured on its second step).
    /// </summary>
    public static async Task WarmUpAsync(LlmExecutor executor, IReadOnlyList<BenchmarkSample> samples, int requests,
        CancellationToken cancellationToken = default)
    {
        var target = new ExecutorTarget(executor);
        var runs = new Task[Math.Clamp(requests, 1, samples.Count)];
        for (int i = 0; i < runs.Length; i++)
        {
            var warmup = new BenchmarkSample { InputIds = samples[i].InputIds, OutputLen = 4 };
            runs[i] = target.GenerateAsync(warmup, new RequestRecord(warmup.InputIds.Length, warmup.OutputLen), cancellationToken);
        }
        await Task.WhenAll(runs).ConfigureAwait(false);
    }

    /// <summary>Warms up with <paramref name="warmUpRequests"/> requests, then runs <paramref name="dataset"/> against <paramref name="executor"/> and reports.</summary>
    public static async Task<BenchmarkReport> RunAsync(LlmExecutor executor, BenchmarkDataset dataset, LoadSettings load,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default, int warmUpRequests = 2)
    {
        await WarmUpAsync(executor, dataset.Samples, warmUpRequests, cancellationToken).ConfigureAwait(false);
        var run = await LoadGenerator.RunAsync(dataset.Samples, new ExecutorTarget(executor), load, progress, cancellationToken).ConfigureAwait(false);
        return BenchmarkReport.From(run);
    }
}
