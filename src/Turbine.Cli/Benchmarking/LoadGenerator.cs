using System.Diagnostics;

namespace Turbine.Cli.Benchmarking;

/// <summary>How the load generator sends requests.</summary>
public sealed record LoadSettings
{
    /// <summary>Poisson arrival rate in requests per second; infinity sends every request at once.</summary>
    public double RequestRate { get; init; } = double.PositiveInfinity;
    /// <summary>Requests in flight at most; 0 means no limit.</summary>
    public int Concurrency { get; init; }
    /// <summary>Seed of the arrival times.</summary>
    public int Seed { get; init; }
}

/// <summary>Everything a benchmark run measured.</summary>
public sealed record BenchmarkRun(RequestRecord[] Records, long StartedAt, long EndedAt)
{
    /// <summary>Wall time from the first request sent to the last stream ended.</summary>
    public TimeSpan Duration => Stopwatch.GetElapsedTime(StartedAt, EndedAt);
}

/// <summary>
/// Sends a workload to a target with Poisson arrivals and an optional concurrency limit, as
/// gptManagerBenchmark does, and records each request's timing.
/// </summary>
public static class LoadGenerator
{
    /// <summary>Runs every sample against <paramref name="target"/>; <paramref name="progress"/> gets (completed, total).</summary>
    public static async Task<BenchmarkRun> RunAsync(IReadOnlyList<BenchmarkSample> samples, IGenerationTarget target, LoadSettings settings,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        var offsets = PoissonArrivals.Offsets(samples.Count, settings.RequestRate, settings.Seed);
        var records = new RequestRecord[samples.Count];
        var tasks = new Task[samples.Count];
        using var slots = settings.Concurrency > 0 ? new SemaphoreSlim(settings.Concurrency) : null;
        int done = 0;
        progress?.Report((0, samples.Count));
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < samples.Count; i++)
        {
            var due = TimeSpan.FromSeconds(offsets[i]) - Stopwatch.GetElapsedTime(start);
            if (due > TimeSpan.Zero)
                await Task.Delay(due, cancellationToken).ConfigureAwait(false);
            if (slots is not null)
                await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            var record = records[i] = new RequestRecord(samples[i].InputIds.Length, samples[i].OutputLen);
            record.MarkSent();
            tasks[i] = Send(samples[i], record);
        }
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return new BenchmarkRun(records, start, Stopwatch.GetTimestamp());

        async Task Send(BenchmarkSample sample, RequestRecord record)
        {
            string? error = null;
            try
            {
                // Yield first so that a target which works synchronously for a while does not delay later arrivals.
                await Task.Yield();
                await target.GenerateAsync(sample, record, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                error = e.Message;
            }
            finally
            {
                record.MarkCompleted(error);
                slots?.Release();
                progress?.Report((Interlocked.Increment(ref done), samples.Count));
            }
        }
    }
}
