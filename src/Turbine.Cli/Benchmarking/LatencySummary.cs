using System.Text.Json.Serialization;

namespace Turbine.Cli.Benchmarking;

/// <summary>Mean and percentiles of a latency, in milliseconds.</summary>
public sealed record LatencySummary
{
    /// <summary>Arithmetic mean.</summary>
    [JsonPropertyName("mean")]
    public double Mean { get; init; }
    /// <summary>Median.</summary>
    [JsonPropertyName("p50")]
    public double P50 { get; init; }
    /// <summary>90th percentile.</summary>
    [JsonPropertyName("p90")]
    public double P90 { get; init; }
    /// <summary>99th percentile.</summary>
    [JsonPropertyName("p99")]
    public double P99 { get; init; }
    /// <summary>Number of values summarised.</summary>
    [JsonPropertyName("count")]
    public int Count { get; init; }

    /// <summary>Summarises <paramref name="values"/> (sorted in place); all zeros when there are none.</summary>
    public static LatencySummary Of(double[] values)
    {
        if (values.Length == 0)
            return new LatencySummary();
        Array.Sort(values);
        double sum = 0;
        foreach (double v in values)
            sum += v;
        return new LatencySummary
        {
            Mean = sum / values.Length, Count = values.Length,
            P50 = Percentile(values, 50), P90 = Percentile(values, 90), P99 = Percentile(values, 99),
        };
    }

    /// <summary>
    /// The <paramref name="percent"/>th percentile of ascending <paramref name="sorted"/>, interpolating linearly
    /// between closest ranks (numpy's default): rank = p/100 · (n − 1).
    /// </summary>
    public static double Percentile(ReadOnlySpan<double> sorted, double percent)
    {
        if (sorted.Length == 0)
            throw new ArgumentException("no values", nameof(sorted));
        if (percent is < 0 or > 100)
            throw new ArgumentOutOfRangeException(nameof(percent), "percentiles lie in [0, 100]");
        double rank = percent / 100.0 * (sorted.Length - 1);
        int lower = (int)Math.Floor(rank);
        int upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (rank - lower);
    }
}
