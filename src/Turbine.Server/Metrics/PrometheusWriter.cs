using System.Globalization;
using System.Text;
using Turbine.Server.Models;

namespace Turbine.Server.Metrics;

/// <summary>
/// Writes the metrics in Prometheus text format 0.0.4: Triton's nv_inference_* families per model and version, and the
/// TensorRT-LLM backend's nv_trt_llm_* families from each executor's statistics.
/// </summary>
public static class PrometheusWriter
{
    /// <summary>The content type of the format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Renders every family for the models in <paramref name="registry"/>.</summary>
    public static string Render(ModelRegistry registry)
    {
        var sb = new StringBuilder(8192);
        var models = registry.All;
        Counter(sb, models, "nv_inference_request_success", "Number of successful inference requests, all batch sizes", s => s.SuccessCount);
        Counter(sb, models, "nv_inference_request_failure", "Number of failed inference requests, all batch sizes", s => s.FailCount);
        Counter(sb, models, "nv_inference_count", "Number of inferences performed (does not include cached requests)", s => s.InferenceCount);
        Counter(sb, models, "nv_inference_exec_count", "Number of model executions performed (does not include cached requests)", s => s.ExecutionCount);
        Counter(sb, models, "nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)", s => (s.SuccessNs + s.FailNs) / 1000);
        Counter(sb, models, "nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)", s => s.QueueNs / 1000);
        Counter(sb, models, "nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds (does not include cached requests)", s => s.ComputeInputNs / 1000);
        Counter(sb, models, "nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)", s => s.ComputeInferNs / 1000);
        Counter(sb, models, "nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)", s => s.ComputeOutputNs / 1000);
        HistogramFamily(sb, models, "nv_inference_first_response_histogram_ms", "Duration from request to first response in milliseconds", s => s.FirstResponseMs);
        HistogramFamily(sb, models, "nv_llm_inter_token_latency_ms", "Time between consecutive generated tokens in milliseconds", s => s.InterTokenMs);
        var executors = models.OfType<TensorRtLlmModel>().Select(m => (m, m.Llm.Executor.GetStatistics())).ToList();
        if (executors.Count > 0)
            WriteExecutorFamilies(sb, executors);
        WriteGpuFamilies(sb, executors);
        return sb.ToString();
    }

    /// <summary>Triton's nv_gpu_memory_* gauges for every GPU a served LLM runs on (none when all run on the CPU).</summary>
    private static void WriteGpuFamilies(StringBuilder sb, List<(TensorRtLlmModel Model, Turbine.Engine.Executor.ExecutorStatistics Stats)> executors)
    {
        var gpus = new List<Turbine.Engine.Backends.IComputeBackend>();
        foreach (var (model, _) in executors)
            if (model.Llm.Executor.Decoder.Backend is { } backend and Turbine.Engine.Backends.IDeviceMemory && !gpus.Contains(backend))
                gpus.Add(backend);
        if (gpus.Count == 0)
            return;
        Header(sb, "nv_gpu_memory_total_bytes", "GPU total memory, in bytes", "gauge");
        foreach (var gpu in gpus)
            GpuSample(sb, "nv_gpu_memory_total_bytes", gpu.Name, ((Turbine.Engine.Backends.IDeviceMemory)gpu).TotalBytes);
        Header(sb, "nv_gpu_memory_used_bytes", "GPU used memory, in bytes", "gauge");
        foreach (var gpu in gpus)
        {
            var memory = (Turbine.Engine.Backends.IDeviceMemory)gpu;
            GpuSample(sb, "nv_gpu_memory_used_bytes", gpu.Name, memory.TotalBytes - memory.FreeBytes);
        }
    }

    private static void GpuSample(StringBuilder sb, string name, string gpu, long value) =>
        sb.Append(name).Append("{gpu_uuid=\"").Append(gpu).Append("\"} ").Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private static void WriteExecutorFamilies(StringBuilder sb, List<(TensorRtLlmModel Model, Turbine.Engine.Executor.ExecutorStatistics Stats)> executors)
    {
        Header(sb, "nv_trt_llm_request_metrics", "TRT LLM request metrics", "gauge");
        foreach (var (m, s) in executors)
        {
            Sample(sb, "nv_trt_llm_request_metrics", m, ("request_type", "active"), s.ActiveRequests + s.QueuedRequests);
            Sample(sb, "nv_trt_llm_request_metrics", m, ("request_type", "max"), m.Llm.Executor.Options.MaxBatchSize);
            Sample(sb, "nv_trt_llm_request_metrics", m, ("request_type", "scheduled"), s.LastStepBatchSize);
            // Each generating request adds one token to a step, so the step's other requests were prefilling context.
            Sample(sb, "nv_trt_llm_request_metrics", m, ("request_type", "context"), s.LastStepContextTokens > 0 ? Math.Max(0, s.LastStepBatchSize - s.LastStepGenerationTokens) : 0);
            Sample(sb, "nv_trt_llm_request_metrics", m, ("request_type", "waiting"), s.QueuedRequests);
        }
        Header(sb, "nv_trt_llm_runtime_memory_metrics", "TRT LLM runtime memory metrics", "gauge");
        foreach (var (m, _) in executors)
            Sample(sb, "nv_trt_llm_runtime_memory_metrics", m, ("memory_type", "cpu"), 0);
        Header(sb, "nv_trt_llm_kv_cache_block_metrics", "TRT LLM KV cache block metrics", "gauge");
        foreach (var (m, s) in executors)
        {
            Sample(sb, "nv_trt_llm_kv_cache_block_metrics", m, ("kv_cache_block_type", "max"), s.MaxKvBlocks);
            Sample(sb, "nv_trt_llm_kv_cache_block_metrics", m, ("kv_cache_block_type", "free"), s.FreeKvBlocks);
            Sample(sb, "nv_trt_llm_kv_cache_block_metrics", m, ("kv_cache_block_type", "used"), s.UsedKvBlocks);
            Sample(sb, "nv_trt_llm_kv_cache_block_metrics", m, ("kv_cache_block_type", "tokens_per"), s.TokensPerBlock);
            Sample(sb, "nv_trt_llm_kv_cache_block_metrics", m, ("kv_cache_block_type", "reused"), s.ReuseHits);
        }
        Header(sb, "nv_trt_llm_inflight_batcher_metrics", "TRT LLM inflight_batcher-specific metrics", "gauge");
        foreach (var (m, s) in executors)
        {
            Sample(sb, "nv_trt_llm_inflight_batcher_metrics", m, ("inflight_batcher_specific_metric", "scheduled_requests"), s.LastStepBatchSize);
            Sample(sb, "nv_trt_llm_inflight_batcher_metrics", m, ("inflight_batcher_specific_metric", "total_context_tokens"), s.LastStepContextTokens);
            Sample(sb, "nv_trt_llm_inflight_batcher_metrics", m, ("inflight_batcher_specific_metric", "generation_requests"), s.LastStepGenerationTokens);
            Sample(sb, "nv_trt_llm_inflight_batcher_metrics", m, ("inflight_batcher_specific_metric", "paused_requests"), 0);
            Sample(sb, "nv_trt_llm_inflight_batcher_metrics", m, ("inflight_batcher_specific_metric", "micro_batch_id"), 0);
        }
        Header(sb, "nv_trt_llm_general_metrics", "General TRT LLM metrics", "gauge");
        foreach (var (m, s) in executors)
        {
            Sample(sb, "nv_trt_llm_general_metrics", m, ("general_type", "iteration_counter"), s.Iterations);
            Sample(sb, "nv_trt_llm_general_metrics", m, ("general_type", "timestamp"), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000);
        }
        Header(sb, "nv_trt_llm_iteration_count", "Executor steps run since start", "counter");
        foreach (var (m, s) in executors)
            Sample(sb, "nv_trt_llm_iteration_count", m, null, s.Iterations);
        Header(sb, "nv_trt_llm_completed_requests", "Requests completed by the executor since start", "counter");
        foreach (var (m, s) in executors)
            Sample(sb, "nv_trt_llm_completed_requests", m, null, s.CompletedRequests);
        Header(sb, "nv_trt_llm_preemptions", "Requests preempted and recomputed since start", "counter");
        foreach (var (m, s) in executors)
            Sample(sb, "nv_trt_llm_preemptions", m, null, s.Preemptions);
    }

    private static void Counter(StringBuilder sb, IReadOnlyList<ServedModel> models, string name, string help, Func<ModelStatistics, long> value)
    {
        Header(sb, name, help, "counter");
        foreach (var m in models)
            Sample(sb, name, m, null, value(m.Statistics));
    }

    private static void HistogramFamily(StringBuilder sb, IReadOnlyList<ServedModel> models, string name, string help, Func<ModelStatistics, Histogram> select)
    {
        Header(sb, name, help, "histogram");
        foreach (var m in models)
        {
            var h = select(m.Statistics);
            var cumulative = h.Cumulative();
            for (int i = 0; i < cumulative.Length; i++)
            {
                string le = i < h.Bounds.Count ? h.Bounds[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
                Sample(sb, name + "_bucket", m, ("le", le), cumulative[i]);
            }
            sb.Append(name).Append("_sum");
            Labels(sb, m, null);
            sb.Append(' ').Append(h.Sum.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            Sample(sb, name + "_count", m, null, cumulative[^1]);
        }
    }

    private static void Header(StringBuilder sb, string name, string help, string type) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder sb, string name, ServedModel m, (string Key, string Value)? extra, long value)
    {
        sb.Append(name);
        Labels(sb, m, extra);
        sb.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    private static void Labels(StringBuilder sb, ServedModel m, (string Key, string Value)? extra)
    {
        sb.Append('{');
        if (extra is var (key, value))
            sb.Append(key).Append("=\"").Append(value).Append("\",");
        sb.Append("model=\"").Append(Escape(m.Name)).Append("\",version=\"").Append(Escape(m.Version)).Append("\"}");
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
