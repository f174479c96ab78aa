using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Turbine.Server.Hosting;
using Turbine.Server.Tests.Http;

namespace Turbine.Server.Tests.OpenAi;

public sealed class ApiKeyServerFixture : ServerFixture
{
    public const string Key = "test-key";
    public override ServerOptions ServerOptions => base.ServerOptions with { ApiKey = Key };
}

/// <summary>The OpenAI-compatible API driven by the official openai npm package (client/client.mjs).</summary>
public sealed class OpenAiClientTests(ApiKeyServerFixture fx) : IClassFixture<ApiKeyServerFixture>
{
    private static readonly string ClientDir = Path.Combine(ServerFixture.RepoRoot, "tests", "Turbine.Server.Tests", "OpenAi", "client");

    private static async Task<string> Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = ClientDir, RedirectStandardOutput = true, RedirectStandardError = true, StandardOutputEncoding = Encoding.UTF8 };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {await stderr}\n{await stdout}");
        return await stdout;
    }

    [Fact]
    public async Task Official_openai_client_completions_chat_streaming_and_errors()
    {
        if (!Directory.Exists(Path.Combine(ClientDir, "node_modules", "openai")))
            await Run("npm", "install", "--no-audit", "--no-fund");
        var output = await Run("node", "client.mjs", fx.Url + "/v1", ApiKeyServerFixture.Key, "ensemble");
        var r = JsonDocument.Parse(output).RootElement;
        var tokenizer = fx.Llm.Tokenizer;

        var greedy = tokenizer.Decode(await fx.ExecutorGreedy("In the beginning", 8), skipSpecialTokens: true);
        var completion = r.GetProperty("completion");
        Assert.Equal(greedy, completion.GetProperty("text").GetString());
        Assert.Equal("text_completion", completion.GetProperty("object").GetString());
        Assert.Equal(tokenizer.Encode("In the beginning", true).Length, completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(8, completion.GetProperty("logprobs").GetInt32());
        Assert.Equal(greedy, r.GetProperty("completion_stream").GetString());

        var several = r.GetProperty("several");
        Assert.Equal(3, several.GetArrayLength());
        Assert.Equal([0, 1, 2], several.EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).ToArray());
        Assert.All(several.EnumerateArray(), c => Assert.DoesNotContain("\n", c.GetProperty("text").GetString()));

        var prompt = tokenizer.ApplyChatTemplate(
            [new("system", "You are terse."), new("user", "Who made the earth?")], addGenerationPrompt: true);
        var chatIds = tokenizer.Encode(prompt, addSpecialTokens: false);
        var expectedChat = new List<int>();
        await foreach (var o in fx.Llm.Executor.Submit(new Engine.Executor.GenerationRequest { PromptIds = chatIds, MaxTokens = 10 }))
            expectedChat.AddRange(o.TokenIds[0]);
        var chat = r.GetProperty("chat");
        Assert.Equal("assistant", chat.GetProperty("role").GetString());
        Assert.Equal("chat.completion", chat.GetProperty("object").GetString());
        Assert.Equal(tokenizer.Decode(expectedChat, skipSpecialTokens: true), chat.GetProperty("content").GetString());
        Assert.Equal(chatIds.Length, chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expectedChat.Count, chat.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var stream = r.GetProperty("stream");
        Assert.True(stream.GetProperty("chunks").GetInt32() > 2);
        Assert.Contains(stream.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        Assert.True(stream.GetProperty("usage").GetProperty("total_tokens").GetInt32() > 0);

        Assert.Equal(404, r.GetProperty("not_found").GetProperty("status").GetInt32());
        Assert.Contains("no-such-model", r.GetProperty("not_found").GetProperty("message").GetString());
        Assert.Equal(400, r.GetProperty("bad_request").GetProperty("status").GetInt32());
        Assert.Equal("temperature", r.GetProperty("bad_request").GetProperty("param").GetString());
        Assert.Equal(401, r.GetProperty("unauthorized").GetProperty("status").GetInt32());
        Assert.Contains("ensemble", r.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Contains("demo", r.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
    }
}
