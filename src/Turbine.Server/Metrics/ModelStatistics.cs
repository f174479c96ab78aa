using System.Diagnostics;

namespace Turbine.Server.Metrics;

/// <summary>
/// Per-model counters, the numbers behind Triton's statistics extension and its nv_inference_* families.
/// Durations are in nanoseconds; every update is lock-free.
/// </summary>
public sealed class ModelStatistics
{
    private long _successCount, _successNs, _failCount, _failNs, _queueCount, _queueNs;
    private long _inputCount, _inputNs, _inferCount, _inferNs, _outputCount, _outputNs;
    private long _inferenceCount, _executionCount, _lastInferenceMs;

    /// <summary>Time to the first response of each request, in milliseconds.</summary>
    public Histogram FirstResponseMs { get; } = new([1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]);
    /// <summary>Time between consecutive generated tokens, in milliseconds.</summary>
    public Histogram InterTokenMs { get; } = new([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);

    /// <summary>Requests that succeeded.</summary>
    public long SuccessCount => Interlocked.Read(ref _successCount);
    /// <summary>Total duration of successful requests.</summary>
    public long SuccessNs => Interlocked.Read(ref _successNs);
    /// <summary>Requests that failed.</summary>
    public long FailCount => Interlocked.Read(ref _failCount);
    /// <summary>Total duration of failed requests.</summary>
    public long FailNs => Interlocked.Read(ref _failNs);
    /// <summary>Requests that waited in a queue.</summary>
    public long QueueCount => Interlocked.Read(ref _queueCount);
    /// <summary>Total queue time.</summary>
    public long QueueNs => Interlocked.Read(ref _queueNs);
    /// <summary>Input preparations.</summary>
    public long ComputeInputCount => Interlocked.Read(ref _inputCount);
    /// <summary>Total input preparation time.</summary>
    public long ComputeInputNs => Interlocked.Read(ref _inputNs);
    /// <summary>Model executions timed.</summary>
    public long ComputeInferCount => Interlocked.Read(ref _inferCount);
    /// <summary>Total model execution time.</summary>
    public long ComputeInferNs => Interlocked.Read(ref _inferNs);
    /// <summary>Output preparations.</summary>
    public long ComputeOutputCount => Interlocked.Read(ref _outputCount);
    /// <summary>Total output preparation time.</summary>
    public long ComputeOutputNs => Interlocked.Read(ref _outputNs);
    /// <summary>Inferences performed (a batch of n counts n).</summary>
    public long InferenceCount => Interlocked.Read(ref _inferenceCount);
    /// <summary>Model executions (a batch counts once).</summary>
    public long ExecutionCount => Interlocked.Read(ref _executionCount);
    /// <summary>When the last inference finished, in milliseconds since the Unix epoch; 0 when none did.</summary>
    public long LastInferenceMs => Interlocked.Read(ref _lastInferenceMs);

    /// <summary>Records a finished request and its phases (queue, input, infer, output; each in Stopwatch ticks).</summary>
    public void RecordSuccess(long totalTicks, long queueTicks, long inputTicks, long inferTicks, long outputTicks)
    {
        Interlocked.Increment(ref _successCount);
        Interlocked.Add(ref _successNs, ToNs(totalTicks));
        Interlocked.Increment(ref _queueCount);
        Interlocked.Add(ref _queueNs, ToNs(queueTicks));
        Interlocked.Increment(ref _inputCount);
        Interlocked.Add(ref _inputNs, ToNs(inputTicks));
        Interlocked.Increment(ref _inferCount);
        Interlocked.Add(ref _inferNs, ToNs(inferTicks));
        Interlocked.Increment(ref _outputCount);
        Interlocked.Add(ref _outputNs, ToNs(outputTicks));
        Interlocked.Increment(ref _inferenceCount);
        Interlocked.Increment(ref _executionCount);
        Interlocked.Exchange(ref _lastInferenceMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>Records a failed request.</summary>
    public void RecordFailure(long totalTicks)
    {
        Interlocked.Increment(ref _failCount);
        Interlocked.Add(ref _failNs, ToNs(totalTicks));
    }

    private static long ToNs(long ticks) => (long)(ticks * (1e9 / Stopwatch.Frequency));
}

/// <summary>A cumulative histogram with fixed upper bounds, updated lock-free.</summary>
public sealed class Histogram(double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length + 1];
    private long _count;
    private double _sum;

    /// <summary>Upper bounds of the finite buckets.</summary>
    public IReadOnlyList<double> Bounds { get; } = bounds;

    /// <summary>Observations.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Sum of observations.</summary>
    public double Sum => Volatile.Read(ref _sum);

    /// <summary>Observations at or below each bound, cumulative, then the total (+Inf).</summary>
    public long[] Cumulative()
    {
        var result = new long[_counts.Length];
        long running = 0;
        for (int i = 0; i < result.Length; i++)
            result[i] = running += Interlocked.Read(ref _counts[i]);
        return result;
    }

    /// <summary>Adds one observation.</summary>
    public void Observe(double value)
    {
        int i = 0;
        while (i < bounds.Length && value > bounds[i])
            i++;
        Interlocked.Increment(ref _counts[i]);
        Interlocked.Increment(ref _count);
        double seen, sum;
        do
        {
            seen = Volatile.Read(ref _sum);
            sum = seen + value;
        }
        while (Interlocked.CompareExchange(ref _sum, sum, seen) != seen);
    }
}
