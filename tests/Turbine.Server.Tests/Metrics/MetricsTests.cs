using System.Text.RegularExpressions;
using Turbine.Server.Tests.Http;

namespace Turbine.Server.Tests.Metrics;

/// <summary>GET /metrics on the metrics port: Prometheus text format 0.0.4 with Triton's and TensorRT-LLM's families.</summary>
public sealed partial class MetricsTests(ServerFixture fx) : IClassFixture<ServerFixture>
{
    [GeneratedRegex("""^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})? -?[0-9.e+E-]+$""")]
    private static partial Regex SampleLine();

    [Fact]
    public async Task Metrics_report_requests_executor_state_and_latency()
    {
        using (var stream = await fx.Client.PostAsync(fx.Url + "/v2/models/ensemble/generate_stream",
                   new StringContent("""{"text_input": "In the beginning", "max_tokens": 5, "end_id": -1}""")))
            await stream.Content.ReadAsStringAsync();
        using var response = await fx.Client.GetAsync(fx.Server.MetricsAddress + "/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("0.0.4", response.Content.Headers.ContentType.Parameters.Single(p => p.Name == "version").Value);
        var text = await response.Content.ReadAsStringAsync();
        var samples = new Dictionary<string, double>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#'))
            {
                Assert.Matches("^# (HELP|TYPE) [a-z_]+ .+$", line);
                continue;
            }
            Assert.Matches(SampleLine(), line);
            int space = line.LastIndexOf(' ');
            samples[line[..space]] = double.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Contains("# TYPE nv_inference_request_success counter", text);
        Assert.True(samples["nv_inference_request_success{model=\"ensemble\",version=\"1\"}"] >= 1);
        Assert.True(samples["nv_inference_count{model=\"ensemble\",version=\"1\"}"] >= 1);
        Assert.True(samples["nv_inference_exec_count{model=\"ensemble\",version=\"1\"}"] >= 1);
        Assert.True(samples["nv_inference_request_duration_us{model=\"ensemble\",version=\"1\"}"] > 0);
        foreach (var family in new[] { "nv_inference_request_failure", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
                     "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us" })
            Assert.True(samples.ContainsKey(family + "{model=\"ensemble\",version=\"1\"}"), family);
        var stats = fx.Llm.Executor.GetStatistics();
        Assert.Equal(stats.MaxKvBlocks, samples["nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\",model=\"tensorrt_llm\",version=\"1\"}"]);
        Assert.Equal(stats.TokensPerBlock, samples["nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"tokens_per\",model=\"tensorrt_llm\",version=\"1\"}"]);
        Assert.True(samples.ContainsKey("nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"free\",model=\"tensorrt_llm\",version=\"1\"}"));
        Assert.True(samples.ContainsKey("nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"used\",model=\"tensorrt_llm\",version=\"1\"}"));
        Assert.Equal(8, samples["nv_trt_llm_request_metrics{request_type=\"max\",model=\"tensorrt_llm\",version=\"1\"}"]);
        Assert.True(samples.ContainsKey("nv_trt_llm_request_metrics{request_type=\"active\",model=\"tensorrt_llm\",version=\"1\"}"));
        Assert.True(samples.ContainsKey("nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric=\"scheduled_requests\",model=\"tensorrt_llm\",version=\"1\"}"));
        Assert.True(samples["nv_trt_llm_general_metrics{general_type=\"iteration_counter\",model=\"tensorrt_llm\",version=\"1\"}"] >= 5);
        Assert.Contains("# TYPE nv_inference_first_response_histogram_ms histogram", text);
        Assert.True(samples["nv_inference_first_response_histogram_ms_count{model=\"ensemble\",version=\"1\"}"] >= 1);
        Assert.True(samples["nv_llm_inter_token_latency_ms_count{model=\"ensemble\",version=\"1\"}"] >= 4);
        Assert.Equal(samples["nv_llm_inter_token_latency_ms_count{model=\"ensemble\",version=\"1\"}"],
            samples["nv_llm_inter_token_latency_ms_bucket{le=\"+Inf\",model=\"ensemble\",version=\"1\"}"]);
    }
}
