using System.Text.Json;

namespace Turbine.Server.Tests.Http;

/// <summary>The seeds' curl commands, verbatim but for the port, against a real Kestrel listener.</summary>
public sealed class SeedCurlTests(ServerFixture fx) : IClassFixture<ServerFixture>
{
    private string Port => new Uri(fx.Url).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Ensemble_chinese_prompt_generates_text()
    {
        var output = await ServerFixture.Curl("-X", "POST", $"localhost:{Port}/v2/models/ensemble/generate",
            "-d", """{"text_input": "你好", "max_tokens": 200, "bad_words": "", "stop_words": ""}""");
        var json = JsonDocument.Parse(output).RootElement;
        Assert.Equal("ensemble", json.GetProperty("model_name").GetString());
        Assert.Equal("1", json.GetProperty("model_version").GetString());
        var text = json.GetProperty("text_output").GetString()!;
        Assert.StartsWith("你好", text);
        var expected = fx.Llm.Tokenizer.Decode([.. fx.Llm.Tokenizer.Encode("你好", true), .. await fx.ExecutorGreedy("你好", 200)], skipSpecialTokens: true);
        Assert.Equal(expected, text);
        Assert.Equal(JsonValueKind.Number, json.GetProperty("cum_log_probs").ValueKind);
    }

    [Fact]
    public async Task Bls_prompt_generates_text()
    {
        var output = await ServerFixture.Curl("-X", "POST", $"localhost:{Port}/v2/models/tensorrt_llm_bls/generate",
            "-d", """{"text_input": "无锡有什么好吃的", "max_tokens": 200, "bad_words": "", "stop_words": ""}""");
        var json = JsonDocument.Parse(output).RootElement;
        Assert.Equal("tensorrt_llm_bls", json.GetProperty("model_name").GetString());
        var expected = fx.Llm.Tokenizer.Decode([.. fx.Llm.Tokenizer.Encode("无锡有什么好吃的", true), .. await fx.ExecutorGreedy("无锡有什么好吃的", 200)], skipSpecialTokens: true);
        Assert.Equal(expected, json.GetProperty("text_output").GetString());
    }

    [Fact]
    public async Task Ensemble_with_pad_and_end_id_generates_max_tokens()
    {
        var output = await ServerFixture.Curl("-X", "POST", $"localhost:{Port}/v2/models/ensemble/generate",
            "-d", """{"text_input": "What is machine learning?", "max_tokens": 20, "bad_words": "", "stop_words": "", "pad_id": 2, "end_id": 2}""");
        var json = JsonDocument.Parse(output).RootElement;
        var generated = await fx.ExecutorGreedy("What is machine learning?", 20, endId: 2);
        var expected = fx.Llm.Tokenizer.Decode([.. fx.Llm.Tokenizer.Encode("What is machine learning?", true), .. generated], skipSpecialTokens: true);
        Assert.Equal(expected, json.GetProperty("text_output").GetString());
        Assert.Equal(generated.Length, json.GetProperty("output_log_probs").GetArrayLength());
    }
}
