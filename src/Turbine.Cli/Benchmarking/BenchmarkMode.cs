namespace Turbine.Cli.Benchmarking;

/// <summary>How the in-process executor batches during a benchmark (gptManagerBenchmark's --type and static emulation).</summary>
public enum BenchmarkMode
{
    /// <summary>In-flight batching: requests join and leave the running batch every step.</summary>
    Ifb,
    /// <summary>Static batching: a batch of whatever is waiting runs to completion before the next starts.</summary>
    Static,
    /// <summary>Static batching that waits for a full batch, or a timeout, before starting one.</summary>
    StaticEmulated,
}
