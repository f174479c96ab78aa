using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Turbine.Server.Tests.Http;

/// <summary>Every /v2 endpoint's shape against the KServe v2 protocol and Triton's extensions.</summary>
public sealed class TritonEndpointTests(ServerFixture fx) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Health_and_server_metadata()
    {
        Assert.Equal(200, (await fx.Get("/v2/health/live")).Status);
        Assert.Equal(200, (await fx.Get("/v2/health/ready")).Status);
        var (status, meta) = await fx.Get("/v2");
        Assert.Equal(200, status);
        Assert.Equal("triton", meta.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(meta.GetProperty("version").GetString()));
        var extensions = meta.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains("generate", extensions);
        Assert.Contains("binary_tensor_data", extensions);
        Assert.Contains("statistics", extensions);
        Assert.Contains("model_repository", extensions);
    }

    [Theory]
    [InlineData("ensemble", "ensemble")]
    [InlineData("tensorrt_llm", "tensorrt_llm")]
    [InlineData("preprocessing", "python")]
    [InlineData("postprocessing", "python")]
    [InlineData("tensorrt_llm_bls", "python")]
    public async Task Model_metadata_lists_inputs_and_outputs(string model, string platform)
    {
        foreach (var path in new[] { $"/v2/models/{model}", $"/v2/models/{model}/versions/1" })
        {
            var (status, meta) = await fx.Get(path);
            Assert.Equal(200, status);
            Assert.Equal(model, meta.GetProperty("name").GetString());
            Assert.Equal(["1"], meta.GetProperty("versions").EnumerateArray().Select(v => v.GetString()!).ToArray());
            Assert.Equal(platform, meta.GetProperty("platform").GetString());
            foreach (var io in new[] { "inputs", "outputs" })
                foreach (var t in meta.GetProperty(io).EnumerateArray())
                {
                    Assert.False(string.IsNullOrEmpty(t.GetProperty("name").GetString()));
                    Assert.Contains(t.GetProperty("datatype").GetString(), new[] { "BYTES", "INT32", "FP32", "BOOL", "UINT64" });
                    Assert.Equal(-1, t.GetProperty("shape")[0].GetInt64());
                }
        }
        Assert.Equal(200, (await fx.Get($"/v2/models/{model}/ready")).Status);
        Assert.Equal(200, (await fx.Get($"/v2/models/{model}/versions/1/ready")).Status);
    }

    [Fact]
    public async Task Model_config_is_the_model_config_json()
    {
        var (status, config) = await fx.Get("/v2/models/ensemble/config");
        Assert.Equal(200, status);
        Assert.Equal("ensemble", config.GetProperty("name").GetString());
        Assert.Equal("ensemble", config.GetProperty("platform").GetString());
        Assert.Equal(64, config.GetProperty("max_batch_size").GetInt32());
        var input = config.GetProperty("input").EnumerateArray().First(i => i.GetProperty("name").GetString() == "text_input");
        Assert.Equal("TYPE_STRING", input.GetProperty("data_type").GetString());
        Assert.Equal(3, config.GetProperty("ensemble_scheduling").GetProperty("step").GetArrayLength());
        var (_, llm) = await fx.Get("/v2/models/tensorrt_llm/config");
        Assert.True(llm.GetProperty("model_transaction_policy").GetProperty("decoupled").GetBoolean());
        Assert.Equal("tensorrtllm", llm.GetProperty("backend").GetString());
        Assert.Equal("inflight_fused_batching", llm.GetProperty("parameters").GetProperty("batching_strategy").GetProperty("string_value").GetString());
    }

    [Fact]
    public async Task Unknown_model_or_version_is_404()
    {
        var (status, body) = await fx.Get("/v2/models/nope");
        Assert.Equal(404, status);
        Assert.Contains("nope", body.GetProperty("error").GetString());
        Assert.Equal(404, (await fx.Get("/v2/models/ensemble/versions/7")).Status);
        Assert.Equal(404, (await fx.Get("/v2/models/nope/ready")).Status);
        Assert.Equal(404, (await fx.PostJson("/v2/models/nope/generate", "{}")).Status);
        Assert.Equal(404, (await fx.PostJson("/v2/models/ensemble/versions/2/infer", """{"inputs":[]}""")).Status);
    }

    [Fact]
    public async Task Infer_json_runs_preprocessing_and_postprocessing()
    {
        var (status, body) = await fx.PostJson("/v2/models/preprocessing/infer", """
            {"id": "42", "inputs": [
              {"name": "QUERY", "shape": [1, 1], "datatype": "BYTES", "data": ["In the beginning"]},
              {"name": "REQUEST_OUTPUT_LEN", "shape": [1, 1], "datatype": "INT32", "data": [[8]]},
              {"name": "STOP_WORDS_DICT", "shape": [1, 1], "datatype": "BYTES", "data": ["God,earth"]}],
             "outputs": [{"name": "INPUT_ID"}, {"name": "STOP_WORDS_IDS"}]}
            """);
        Assert.Equal(200, status);
        Assert.Equal("preprocessing", body.GetProperty("model_name").GetString());
        Assert.Equal("1", body.GetProperty("model_version").GetString());
        Assert.Equal("42", body.GetProperty("id").GetString());
        var outputs = body.GetProperty("outputs").EnumerateArray().ToList();
        Assert.Equal(["INPUT_ID", "STOP_WORDS_IDS"], outputs.Select(o => o.GetProperty("name").GetString()!).ToArray());
        var ids = outputs[0].GetProperty("data").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(fx.Llm.Tokenizer.Encode("In the beginning", true), ids);
        Assert.Equal("INT32", outputs[0].GetProperty("datatype").GetString());
        Assert.Equal([1L, ids.Length], outputs[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        Assert.Equal(3, outputs[1].GetProperty("shape").GetArrayLength());

        var tokens = string.Join(",", ids);
        var (status2, post) = await fx.PostJson("/v2/models/postprocessing/infer",
            $$"""{"inputs": [{"name": "TOKENS_BATCH", "shape": [1, 1, {{ids.Length}}], "datatype": "INT32", "data": [{{tokens}}]}]}""");
        Assert.Equal(200, status2);
        Assert.Equal("In the beginning", post.GetProperty("outputs")[0].GetProperty("data")[0].GetString());
    }

    [Fact]
    public async Task Infer_binary_tensors_in_and_out()
    {
        var prompt = fx.Llm.Tokenizer.Encode("In the beginning", true);
        var header = JsonSerializer.SerializeToUtf8Bytes(new
        {
            inputs = new object[]
            {
                new { name = "input_ids", shape = new[] { 1, prompt.Length }, datatype = "INT32", parameters = new { binary_data_size = prompt.Length * 4 } },
                new { name = "request_output_len", shape = new[] { 1, 1 }, datatype = "INT32", data = new[] { 6 } },
            },
            outputs = new object[] { new { name = "output_ids", parameters = new { binary_data = true } }, new { name = "sequence_length" } },
        });
        var body = new MemoryStream();
        body.Write(header);
        foreach (var id in prompt)
        {
            var bytes = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(bytes, id);
            body.Write(bytes);
        }
        var content = new ByteArrayContent(body.ToArray());
        content.Headers.ContentType = new("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await fx.Client.PostAsync(fx.Url + "/v2/models/tensorrt_llm/infer", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        int jsonLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var raw = await response.Content.ReadAsByteArrayAsync();
        var json = JsonDocument.Parse(raw.AsMemory(0, jsonLength)).RootElement;
        var outputs = json.GetProperty("outputs");
        Assert.Equal("output_ids", outputs[0].GetProperty("name").GetString());
        int size = outputs[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32();
        Assert.Equal(raw.Length - jsonLength, size);
        var ids = new int[size / 4];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = BinaryPrimitives.ReadInt32LittleEndian(raw.AsSpan(jsonLength + 4 * i));
        Assert.Equal([.. prompt, .. await fx.ExecutorGreedy("In the beginning", 6)], ids);
        Assert.Equal(ids.Length, outputs[1].GetProperty("data")[0].GetInt32());
    }

    [Fact]
    public async Task Generate_stream_sends_one_event_per_step_that_add_up_to_generate()
    {
        const string body = """{"text_input": "In the beginning", "max_tokens": 12, "stream": true}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, fx.Url + "/v2/models/tensorrt_llm_bls/generate_stream") { Content = new StringContent(body) };
        using var response = await fx.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("\n\n", text);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        var parsed = events.Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.True(parsed.Count > 1);
        Assert.All(parsed, p => Assert.Equal("tensorrt_llm_bls", p.GetProperty("model_name").GetString()));
        var streamed = string.Concat(parsed.Select(p => p.GetProperty("text_output").GetString()));
        var generated = await fx.ExecutorGreedy("In the beginning", 12);
        Assert.Equal(fx.Llm.Tokenizer.Decode(generated, skipSpecialTokens: true), streamed);

        var (_, one) = await fx.PostJson("/v2/models/ensemble/generate", """{"text_input": "In the beginning", "max_tokens": 12, "exclude_input_in_output": true}""");
        Assert.Equal(streamed, one.GetProperty("text_output").GetString());
    }

    [Fact]
    public async Task Generate_works_on_every_model()
    {
        var ids = fx.Llm.Tokenizer.Encode("In the beginning", true);
        var generated = await fx.ExecutorGreedy("In the beginning", 5);

        var (s1, llm) = await fx.PostJson("/v2/models/tensorrt_llm/generate", JsonSerializer.Serialize(new { input_ids = ids, request_output_len = 5 }));
        Assert.Equal(200, s1);
        Assert.Equal([.. ids, .. generated], llm.GetProperty("output_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(ids.Length + generated.Length, llm.GetProperty("sequence_length").GetInt32());

        var (s2, pre) = await fx.PostJson("/v2/models/preprocessing/generate", """{"QUERY": "In the beginning", "REQUEST_OUTPUT_LEN": 5}""");
        Assert.Equal(200, s2);
        Assert.Equal(ids, pre.GetProperty("INPUT_ID").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(ids.Length, pre.GetProperty("REQUEST_INPUT_LEN").GetInt32());

        var (s3, post) = await fx.PostJson("/v2/models/postprocessing/generate", JsonSerializer.Serialize(new { TOKENS_BATCH = generated }));
        Assert.Equal(200, s3);
        Assert.Equal(fx.Llm.Tokenizer.Decode(generated, skipSpecialTokens: true), post.GetProperty("OUTPUT").GetString());

        using var response = await fx.Client.PostAsync(fx.Url + "/v2/models/tensorrt_llm/generate_stream",
            new StringContent(JsonSerializer.Serialize(new { input_ids = ids, request_output_len = 5 })));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Equal(generated, events.SelectMany(e => e.GetProperty("output_ids").ValueKind == JsonValueKind.Array
            ? e.GetProperty("output_ids").EnumerateArray().Select(x => x.GetInt32()) : [e.GetProperty("output_ids").GetInt32()]).ToArray());
    }

    [Fact]
    public async Task Generate_returns_log_probs_and_honours_stop_words()
    {
        var (status, body) = await fx.PostJson("/v2/models/ensemble/generate",
            """{"text_input": "In the beginning", "max_tokens": 8, "return_log_probs": true, "exclude_input_in_output": true, "stop_words": ["zzzz"]}""");
        Assert.Equal(200, status);
        var logProbs = body.GetProperty("output_log_probs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(8, logProbs.Length);
        Assert.All(logProbs, lp => Assert.True(lp <= 0));
        Assert.Equal(logProbs.Sum(), body.GetProperty("cum_log_probs").GetSingle(), 3);
        Assert.Equal(0, body.GetProperty("batch_index").GetInt32());
    }

    [Fact]
    public async Task Bad_requests_get_400_with_triton_error_json()
    {
        async Task Expect400(string path, string json, string fragment)
        {
            var (status, body) = await fx.PostJson(path, json);
            Assert.Equal(400, status);
            Assert.Contains(fragment, body.GetProperty("error").GetString());
        }
        await Expect400("/v2/models/ensemble/generate", "{\"text_input\": ", "failed to parse the request JSON");
        await Expect400("/v2/models/ensemble/generate", "[1, 2]", "JSON object");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": "x"}""", "max_tokens");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": "x", "max_tokens": "many"}""", "INT32");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": 5, "max_tokens": 3}""", "BYTES");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": "x", "max_tokens": 3, "colour": 1}""", "colour");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": "x", "max_tokens": 0}""", "max_tokens");
        await Expect400("/v2/models/ensemble/generate", """{"text_input": "x", "max_tokens": 3, "top_p": 7}""", "top_p");
        await Expect400("/v2/models/preprocessing/infer", """{"inputs": [{"name": "QUERY", "shape": [1, 1], "datatype": "INT32", "data": [1]}]}""", "data-type");
        await Expect400("/v2/models/preprocessing/infer", """{"inputs": [{"name": "QUERY", "shape": [1, 2], "datatype": "BYTES", "data": ["a"]}]}""", "elements");
        await Expect400("/v2/models/preprocessing/infer", """{"inputs": [{"name": "QUERY", "shape": [1, 1, 1], "datatype": "BYTES", "data": ["a"]}]}""", "shape");
        await Expect400("/v2/models/preprocessing/infer", """{"inputs": [{"name": "QUERY", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]}""", "REQUEST_OUTPUT_LEN");
        await Expect400("/v2/models/preprocessing/infer", """{"inputs": {}}""", "inputs");
    }

    [Fact]
    public async Task Prompt_too_long_is_400_with_the_executors_message()
    {
        var prompt = string.Concat(Enumerable.Repeat("and the earth ", 600));
        var (status, body) = await fx.PostJson("/v2/models/ensemble/generate", JsonSerializer.Serialize(new { text_input = prompt, max_tokens = 4 }));
        Assert.Equal(400, status);
        Assert.Contains("max_input_len", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Body_over_the_limit_is_413()
    {
        var big = new string('a', 2 << 20);
        // As curl does for large bodies: with Expect: 100-continue the 413 arrives before the body is sent. Without it
        // the server's early answer races the client still writing 2 MB (a broken pipe on the client).
        using var request = new HttpRequestMessage(HttpMethod.Post, fx.Url + "/v2/models/ensemble/generate")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { text_input = big, max_tokens = 4 }), Encoding.UTF8, "application/json"),
        };
        request.Headers.ExpectContinue = true;
        using var response = await fx.Client.SendAsync(request);
        Assert.Equal(413, (int)response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("limit", body.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Statistics_count_requests()
    {
        await fx.PostJson("/v2/models/postprocessing/infer", """{"inputs": [{"name": "TOKENS_BATCH", "shape": [1, 1, 2], "datatype": "INT32", "data": [5, 6]}]}""");
        var (status, body) = await fx.Get("/v2/models/postprocessing/stats");
        var before = (await fx.Get("/v2/models/ensemble/stats")).Body.GetProperty("model_stats")[0].GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetInt64();
        await fx.PostJson("/v2/models/ensemble/generate", """{"text_input": "a", "max_tokens": 2}""");
        var after = (await fx.Get("/v2/models/ensemble/stats")).Body.GetProperty("model_stats")[0].GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetInt64();
        Assert.Equal(before + 1, after);
        Assert.Equal(200, status);
        var stats = body.GetProperty("model_stats")[0];
        Assert.Equal("postprocessing", stats.GetProperty("name").GetString());
        Assert.Equal("1", stats.GetProperty("version").GetString());
        Assert.True(stats.GetProperty("inference_count").GetInt64() >= 1);
        Assert.True(stats.GetProperty("execution_count").GetInt64() >= 1);
        Assert.True(stats.GetProperty("last_inference").GetInt64() > 0);
        var inference = stats.GetProperty("inference_stats");
        foreach (var key in new[] { "success", "fail", "queue", "compute_input", "compute_infer", "compute_output" })
        {
            Assert.True(inference.GetProperty(key).GetProperty("count").GetInt64() >= 0);
            Assert.True(inference.GetProperty(key).GetProperty("ns").GetInt64() >= 0);
        }
        Assert.True(inference.GetProperty("success").GetProperty("count").GetInt64() >= 1);
        var (_, all) = await fx.Get("/v2/models/stats");
        Assert.Equal(5, all.GetProperty("model_stats").GetArrayLength());
    }

    [Fact]
    public async Task Repository_index_and_load_refused_outside_explicit_mode()
    {
        using var response = await fx.Client.PostAsync(fx.Url + "/v2/repository/index", new StringContent("{}"));
        var index = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(5, index.GetArrayLength());
        Assert.All(index.EnumerateArray(), m => Assert.Equal("READY", m.GetProperty("state").GetString()));
        var (status, body) = await fx.PostJson("/v2/repository/models/ensemble/unload", "{}");
        Assert.Equal(503, status);
        Assert.Contains("not allowed", body.GetProperty("error").GetString());
    }
}
