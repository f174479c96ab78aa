namespace Turbine.Engine.Executor;

/// <summary>Which requests may join the running batch.</summary>
public enum BatchingMode
{
    /// <summary>In-flight batching: new requests join between steps, finished ones leave (inflight_fused_batching).</summary>
    InFlight,
    /// <summary>Static batching (V1): a batch starts only when the previous one has completely finished.</summary>
    Static,
}

/// <summary>How eagerly the scheduler admits requests against the KV cache.</summary>
public enum SchedulerPolicy
{
    /// <summary>Admit a request only when blocks for its prompt and all of max_tokens are free, so nothing is ever evicted.</summary>
    GuaranteedNoEvict,
    /// <summary>Admit when the prompt fits; if the cache runs out mid-generation, preempt the newest request and recompute it later.</summary>
    MaxUtilization,
}

/// <summary>Limits and policies of an <see cref="LlmExecutor"/>, named as TensorRT-LLM's batch manager names them.</summary>
public sealed record ExecutorOptions
{
    /// <summary>Tokens per KV block (tokens_per_block).</summary>
    public int TokensPerBlock { get; init; } = 16;
    /// <summary>KV cache capacity in tokens (max_tokens_in_paged_kv_cache); null sizes it from <see cref="KvCacheMemoryBytes"/>.</summary>
    public int? MaxTokensInPagedKvCache { get; init; }
    /// <summary>KV cache memory budget in bytes when no token count is given, on a backend without device memory (the CPU).</summary>
    public long KvCacheMemoryBytes { get; init; } = 1L << 30;
    /// <summary>
    /// On a device (GPU) backend with no token count given: the share of free device memory, after weights and
    /// activations are loaded, that the KV cache takes (kv_cache_free_gpu_mem_fraction).
    /// </summary>
    public float KvCacheFreeGpuMemFraction { get; init; } = 0.9f;
    /// <summary>Share KV blocks of identical prompt prefixes (enable_kv_cache_reuse).</summary>
    public bool EnableKvCacheReuse { get; init; }
    /// <summary>Requests in the running batch at most (max_batch_size).</summary>
    public int MaxBatchSize { get; init; } = 64;
    /// <summary>Tokens of all requests in one step at most (max_num_tokens); longer prompts are prefilled in chunks.</summary>
    public int MaxNumTokens { get; init; } = 2048;
    /// <summary>Prompt tokens at most (max_input_len); 0 means the model's context length.</summary>
    public int MaxInputLen { get; init; }
    /// <summary>Prompt plus generated tokens at most (max_seq_len); 0 means the model's context length.</summary>
    public int MaxSeqLen { get; init; }
    /// <summary>Beams at most (max_beam_width).</summary>
    public int MaxBeamWidth { get; init; } = 1;
    /// <summary>Attention window in tokens for every layer (max_attention_window_size); 0 keeps the model's.</summary>
    public int MaxAttentionWindowSize { get; init; }
    /// <summary>Admission policy (batch_scheduler_policy).</summary>
    public SchedulerPolicy Policy { get; init; } = SchedulerPolicy.GuaranteedNoEvict;
    /// <summary>In-flight or static batching (batching_strategy).</summary>
    public BatchingMode Batching { get; init; } = BatchingMode.InFlight;
    /// <summary>
    /// Static mode only: wait up to this long for a full batch before starting a partial one (the seeds' static
    /// emulation, batch size plus timeout). Zero starts with whatever is waiting.
    /// </summary>
    public TimeSpan StaticBatchTimeout { get; init; }
    /// <summary>Requests waiting for admission at most; beyond it Submit refuses at once instead of queueing.</summary>
    public int MaxQueueSize { get; init; } = 1024;
    /// <summary>
    /// On a backend that can feed a step the tokens it chose in the step before (<see cref="Backends.IComputeBackend.FeedsTokens"/>,
    /// the CUDA one), greedy decode steps are queued one ahead: step n + 1 is prepared and launched while the device
    /// runs step n, and step n's tokens are read after (TensorRT-LLM's overlap scheduler, vLLM's async scheduling). A
    /// request that ends in step n has computed one token too many, which is dropped.
    /// </summary>
    public bool OverlapScheduling { get; init; } = true;
}
