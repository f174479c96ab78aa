namespace Turbine.Engine.Executor;

/// <summary>A snapshot of the executor's counters, for metrics endpoints (TensorRT-LLM backend's families).</summary>
public sealed record ExecutorStatistics
{
    /// <summary>Requests in the running batch.</summary>
    public int ActiveRequests { get; init; }
    /// <summary>Requests waiting for admission.</summary>
    public int QueuedRequests { get; init; }
    /// <summary>KV blocks in the pool.</summary>
    public int MaxKvBlocks { get; init; }
    /// <summary>KV blocks a new request could take.</summary>
    public int FreeKvBlocks { get; init; }
    /// <summary>KV blocks held by requests.</summary>
    public int UsedKvBlocks { get; init; }
    /// <summary>Tokens per KV block.</summary>
    public int TokensPerBlock { get; init; }
    /// <summary>Prompt blocks served from the cache since start.</summary>
    public long ReuseHits { get; init; }
    /// <summary>Steps run since start.</summary>
    public long Iterations { get; init; }
    /// <summary>Requests in the last step.</summary>
    public int LastStepBatchSize { get; init; }
    /// <summary>Prompt (context) tokens in the last step.</summary>
    public int LastStepContextTokens { get; init; }
    /// <summary>Generation tokens in the last step.</summary>
    public int LastStepGenerationTokens { get; init; }
    /// <summary>Requests completed since start.</summary>
    public long CompletedRequests { get; init; }
    /// <summary>Requests preempted (and later recomputed) since start.</summary>
    public long Preemptions { get; init; }
}
