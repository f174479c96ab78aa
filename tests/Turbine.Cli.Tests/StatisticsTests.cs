using Turbine.Cli.Benchmarking;

namespace Turbine.Cli.Tests;

public class StatisticsTests
{
    [Theory]
    // Ten values 1..10: rank = p/100 · 9.
    [InlineData(0, 1.0)]
    [InlineData(50, 5.5)]    // rank 4.5: halfway between 5 and 6
    [InlineData(90, 9.1)]    // rank 8.1: 9 + 0.1 · (10 − 9)
    [InlineData(99, 9.91)]   // rank 8.91
    [InlineData(100, 10.0)]
    public void PercentilesInterpolateBetweenClosestRanks(double percent, double expected)
    {
        double[] values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Assert.Equal(expected, LatencySummary.Percentile(values, percent), 9);
    }

    [Fact]
    public void SummaryOfUnsortedValues()
    {
        // Sorted: 10, 20, 30, 40, 100. p50 = 30; p90: rank 3.6 → 40 + 0.6 · 60 = 76; p99: rank 3.96 → 40 + 0.96 · 60 = 97.6.
        var summary = LatencySummary.Of([100, 20, 40, 10, 30]);
        Assert.Equal(40, summary.Mean, 9);
        Assert.Equal(30, summary.P50, 9);
        Assert.Equal(76, summary.P90, 9);
        Assert.Equal(97.6, summary.P99, 9);
        Assert.Equal(5, summary.Count);
    }

    [Fact]
    public void SummaryOfOneValueAndOfNone()
    {
        var one = LatencySummary.Of([7]);
        Assert.Equal((7.0, 7.0, 7.0, 7.0), (one.Mean, one.P50, one.P90, one.P99));
        var none = LatencySummary.Of([]);
        Assert.Equal(0, none.Count);
        Assert.Equal(0, none.P99);
    }

    [Fact]
    public void PoissonGapsAverageOneOverTheRate()
    {
        const int count = 20001;
        const double rate = 4.0;
        var offsets = PoissonArrivals.Offsets(count, rate, seed: 3);
        Assert.Equal(0, offsets[0]);
        double meanGap = offsets[^1] / (count - 1);
        // The standard error of the mean gap is (1/rate)/√20000 ≈ 0.0018 s.
        Assert.InRange(meanGap, 0.25 - 0.01, 0.25 + 0.01);
        for (int i = 1; i < count; i++)
            Assert.True(offsets[i] >= offsets[i - 1]);
        // Exponential gaps: the standard deviation equals the mean.
        var gaps = Enumerable.Range(1, count - 1).Select(i => offsets[i] - offsets[i - 1]).ToArray();
        double sd = Math.Sqrt(gaps.Sum(g => (g - meanGap) * (g - meanGap)) / (gaps.Length - 1));
        Assert.InRange(sd, 0.25 * 0.95, 0.25 * 1.05);
        Assert.Equal(offsets, PoissonArrivals.Offsets(count, rate, seed: 3));
    }

    [Fact]
    public void AnInfiniteRateSendsEverythingAtOnce()
    {
        Assert.All(PoissonArrivals.Offsets(10, double.PositiveInfinity, seed: 1), o => Assert.Equal(0, o));
    }
}
