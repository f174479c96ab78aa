namespace Turbine.Cli.Benchmarking;

/// <summary>Arrival times of a Poisson process: exponentially distributed gaps with mean 1/rate.</summary>
public static class PoissonArrivals
{
    /// <summary>
    /// Seconds from the start at which each of <paramref name="count"/> requests arrives; the first arrives at 0.
    /// An infinite (or non-positive) rate sends every request at once.
    /// </summary>
    public static double[] Offsets(int count, double requestsPerSecond, int seed)
    {
        var offsets = new double[count];
        if (double.IsPositiveInfinity(requestsPerSecond) || requestsPerSecond <= 0)
            return offsets;
        var random = new Random(seed);
        double t = 0;
        for (int i = 1; i < count; i++)
        {
            t += -Math.Log(1.0 - random.NextDouble()) / requestsPerSecond;
            offsets[i] = t;
        }
        return offsets;
    }
}
