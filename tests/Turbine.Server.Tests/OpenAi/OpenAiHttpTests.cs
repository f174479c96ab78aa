using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Turbine.Server.Tests.Http;

namespace Turbine.Server.Tests.OpenAi;

/// <summary>OpenAI and vLLM routes over raw HTTP: shapes the npm client does not expose, and errors.</summary>
public sealed class OpenAiHttpTests(ServerFixture fx) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Tokenize_and_detokenize_round_trip()
    {
        var (status, body) = await fx.PostJson("/tokenize", """{"model": "ensemble", "prompt": "In the beginning"}""");
        Assert.Equal(200, status);
        var ids = body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.Equal(fx.Llm.Tokenizer.Encode("In the beginning", true), ids);
        Assert.Equal(ids.Length, body.GetProperty("count").GetInt32());
        Assert.Equal(1024, body.GetProperty("max_model_len").GetInt32());

        var (_, chat) = await fx.PostJson("/tokenize", """{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}""");
        var expected = fx.Llm.Tokenizer.Encode(fx.Llm.Tokenizer.ApplyChatTemplate([new("user", "hi")], true), addSpecialTokens: false);
        Assert.Equal(expected, chat.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray());

        var (status2, text) = await fx.PostJson("/detokenize", JsonSerializer.Serialize(new { tokens = ids[1..] }));
        Assert.Equal(200, status2);
        Assert.Equal("In the beginning", text.GetProperty("prompt").GetString());
        var (status3, error) = await fx.PostJson("/detokenize", """{"tokens": [99999999]}""");
        Assert.Equal(400, status3);
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Completion_stop_string_cuts_the_text_and_streams_end_with_done()
    {
        var greedy = fx.Llm.Tokenizer.Decode(await fx.ExecutorGreedy("In the beginning", 20), skipSpecialTokens: true);
        var stop = greedy.Trim().Split(' ')[1];
        var (status, body) = await fx.PostJson("/v1/completions",
            JsonSerializer.Serialize(new { model = "demo", prompt = "In the beginning", max_tokens = 20, temperature = 0, stop }));
        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(greedy[..greedy.IndexOf(stop, StringComparison.Ordinal)], choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());

        using var response = await fx.Client.PostAsync(fx.Url + "/v1/completions", new StringContent(
            JsonSerializer.Serialize(new { prompt = "In the beginning", max_tokens = 20, temperature = 0, stop = new[] { stop }, stream = true }), Encoding.UTF8, "application/json"));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Equal(choice.GetProperty("text").GetString(), string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Openai_requests_count_in_the_named_models_statistics()
    {
        var bls = (Turbine.Server.Models.TextGenerationModel)fx.Server.Registry.Find("tensorrt_llm_bls");
        long before = bls.Statistics.SuccessCount, histogram = bls.Statistics.FirstResponseMs.Count;
        var (status, _) = await fx.PostJson("/v1/completions", """{"model": "tensorrt_llm_bls", "prompt": "In the beginning", "max_tokens": 3}""");
        Assert.Equal(200, status);
        Assert.Equal(before + 1, bls.Statistics.SuccessCount);
        Assert.Equal(histogram + 1, bls.Statistics.FirstResponseMs.Count);
    }

    [Fact]
    public async Task Chat_logprobs_and_errors_in_openai_shape()
    {
        var (status, body) = await fx.PostJson("/v1/chat/completions",
            """{"model": "ensemble", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "logprobs": true, "temperature": 0, "seed": 3}""");
        Assert.Equal(200, status);
        var content = body.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content");
        Assert.Equal(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), content.GetArrayLength());
        Assert.All(content.EnumerateArray(), t => Assert.True(t.GetProperty("logprob").GetDouble() <= 0));

        foreach (var (json, param) in new[]
                 {
                     ("""{"messages": []}""", "messages"),
                     ("""{"messages": [{"role": "user", "content": "hi"}], "n": 0}""", "n"),
                     ("""{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}""", "max_tokens"),
                     ("""{"messages": [{"role": "user", "content": "hi"}], "stop": 5}""", "stop"),
                 })
        {
            var (s, e) = await fx.PostJson("/v1/chat/completions", json);
            Assert.Equal(400, s);
            Assert.Equal(param, e.GetProperty("error").GetProperty("param").GetString());
            Assert.Equal(400, e.GetProperty("error").GetProperty("code").GetInt32());
        }
        var (s2, malformed) = await fx.PostJson("/v1/completions", "{oops");
        Assert.Equal(400, s2);
        Assert.Equal("invalid_request_error", malformed.GetProperty("error").GetProperty("type").GetString());
        var (s3, _) = await fx.PostJson("/v1/completions", """{"prompt": "x", "max_tokens": 2000}""");
        Assert.Equal(400, s3);
    }
}
