using Turbine.Engine.Executor;

namespace Turbine.Server.Repository;

/// <summary>The batching strategies TensorRT-LLM's <c>gpt_model_type</c> / <c>batching_strategy</c> parameter names.</summary>
public enum LlmBatchingStrategy
{
    /// <summary><c>inflight_fused_batching</c>: requests join and leave the running batch between steps.</summary>
    InflightFusedBatching,
    /// <summary><c>inflight_batching</c>: the same scheduling as the fused variant for Turbine.</summary>
    InflightBatching,
    /// <summary><c>V1</c>: static batching; a batch runs to completion before the next starts.</summary>
    V1,
}

/// <summary>The <c>tensorrt_llm</c> model's parameters, typed and checked.</summary>
public sealed record LlmModelOptions
{
    /// <summary>The Hugging Face model directory the engine loads (parameter gpt_model_path / engine_dir).</summary>
    public required string EngineDir { get; init; }

    /// <summary>Tokenizer directory (parameter tokenizer_dir); the engine directory when not given.</summary>
    public required string TokenizerDir { get; init; }

    /// <summary>Requests in the running batch at most (config max_batch_size).</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>Beams at most (max_beam_width).</summary>
    public int MaxBeamWidth { get; init; } = 1;

    /// <summary>KV cache capacity in tokens (max_tokens_in_paged_kv_cache); null sizes it from memory.</summary>
    public int? MaxTokensInPagedKvCache { get; init; }

    /// <summary>Attention window in tokens (max_attention_window_size); null keeps the model's.</summary>
    public int? MaxAttentionWindowSize { get; init; }

    /// <summary>Share of free memory given to the KV cache (kv_cache_free_gpu_mem_fraction), in (0, 1].</summary>
    public double? KvCacheFreeMemoryFraction { get; init; }

    /// <summary>Leave the prompt out of output_ids (exclude_input_in_output).</summary>
    public bool ExcludeInputInOutput { get; init; }

    /// <summary>Reuse KV blocks of shared prompt prefixes (enable_kv_cache_reuse).</summary>
    public bool EnableKvCacheReuse { get; init; }

    /// <summary>In-flight or static batching (batching_strategy / gpt_model_type).</summary>
    public LlmBatchingStrategy BatchingStrategy { get; init; } = LlmBatchingStrategy.InflightFusedBatching;

    /// <summary>Admission policy (batch_scheduler_policy).</summary>
    public SchedulerPolicy BatchSchedulerPolicy { get; init; } = SchedulerPolicy.GuaranteedNoEvict;

    /// <summary>How long static batching waits to fill a batch (max_queue_delay_microseconds).</summary>
    public long MaxQueueDelayMicroseconds { get; init; }

    /// <summary>Requests waiting for admission at most (max_queue_size); null keeps the executor's default.</summary>
    public int? MaxQueueSize { get; init; }

    /// <summary>Streaming: any number of responses per request (model_transaction_policy.decoupled).</summary>
    public bool Decoupled { get; init; }

    /// <summary>
    /// The executor options these parameters mean. kv_cache_free_gpu_mem_fraction goes to the executor, which applies it
    /// to a device backend's free memory; on the CPU the executor's memory budget stands.
    /// </summary>
    public ExecutorOptions ToExecutorOptions()
    {
        var options = new ExecutorOptions
        {
            MaxBatchSize = MaxBatchSize,
            MaxBeamWidth = MaxBeamWidth,
            MaxTokensInPagedKvCache = MaxTokensInPagedKvCache,
            MaxAttentionWindowSize = MaxAttentionWindowSize ?? 0,
            EnableKvCacheReuse = EnableKvCacheReuse,
            Policy = BatchSchedulerPolicy,
            Batching = BatchingStrategy == LlmBatchingStrategy.V1 ? BatchingMode.Static : BatchingMode.InFlight,
            StaticBatchTimeout = TimeSpan.FromMicroseconds(MaxQueueDelayMicroseconds),
        };
        if (MaxQueueSize is int queueSize) options = options with { MaxQueueSize = queueSize };
        if (KvCacheFreeMemoryFraction is double fraction)
            options = options with { KvCacheFreeGpuMemFraction = (float)fraction };
        return options;
    }
}

/// <summary>The tokenizer parameters of the <c>preprocessing</c> and <c>postprocessing</c> models.</summary>
public sealed record TokenizerModelOptions
{
    /// <summary>Directory holding tokenizer.json (tokenizer_dir).</summary>
    public required string TokenizerDir { get; init; }

    /// <summary>tokenizer_type as written (auto, llama, t5, gpt2); Turbine reads tokenizer.json whatever it says.</summary>
    public string TokenizerType { get; init; } = "auto";

    /// <summary>Add BOS and other special tokens when encoding (add_special_tokens, preprocessing).</summary>
    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>Drop special tokens when decoding (skip_special_tokens, postprocessing).</summary>
    public bool SkipSpecialTokens { get; init; } = true;
}

/// <summary>The parameters of the <c>tensorrt_llm_bls</c> model.</summary>
public sealed record BlsModelOptions
{
    /// <summary>The LLM model the BLS calls (tensorrt_llm_model_name).</summary>
    public string TensorRtLlmModelName { get; init; } = "tensorrt_llm";

    /// <summary>Draft model for speculative decoding (tensorrt_llm_draft_model_name); null when none.</summary>
    public string? DraftModelName { get; init; }

    /// <summary>Streamed responses carry all text so far rather than the new piece (accumulate_tokens).</summary>
    public bool AccumulateTokens { get; init; }

    /// <summary>Streaming: any number of responses per request (model_transaction_policy.decoupled).</summary>
    public bool Decoupled { get; init; }
}
