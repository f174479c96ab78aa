using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Turbine.Engine.Executor;
using Turbine.Server.Hosting;
using Turbine.Server.Models;

namespace Turbine.Server.Tests.Http;

/// <summary>A server on 127.0.0.1 (ephemeral ports) over the bundled demo model, shared by a test class.</summary>
public class ServerFixture : IAsyncLifetime
{
    public TurbineServer Server { get; private set; } = null!;
    public LlmService Llm { get; private set; } = null!;
    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromMinutes(2) };
    public string Url => Server.HttpAddress;

    public virtual ExecutorOptions ExecutorOptions => new() { MaxBatchSize = 8, MaxNumTokens = 512, KvCacheMemoryBytes = 64L << 20, MaxQueueSize = 64 };
    public virtual ServerOptions ServerOptions => new() { Host = "127.0.0.1", HttpPort = 0, MetricsPort = 0, MaxRequestBodyBytes = 1 << 20, ExitTimeout = TimeSpan.FromSeconds(10) };
    public virtual ModelControlMode Mode => ModelControlMode.None;

    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "models", "demo", "config.json")))
                    return dir.FullName;
            throw new DirectoryNotFoundException("models/demo not found above " + AppContext.BaseDirectory);
        }
    }

    public static string DemoModel => Path.Combine(RepoRoot, "models", "demo");

    public async Task InitializeAsync()
    {
        Llm = LlmService.Load(DemoModel, ExecutorOptions, threads: 1);
        Server = await TurbineServer.StartAsync(ServerOptions, ModelRegistry.Standard(Llm, Mode, Mode == ModelControlMode.Explicit ? ["ensemble"] : null));
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.StopAsync();
        await Server.DisposeAsync();
        await Server.Registry.DisposeAsync();
    }

    public async Task<(int Status, JsonElement Body)> PostJson(string path, string json)
    {
        using var response = await Client.PostAsync(Url + path, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    public async Task<(int Status, JsonElement Body)> Get(string path)
    {
        using var response = await Client.GetAsync(Url + path);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>The executor's own greedy output for <paramref name="prompt"/>, for comparison with the server's.</summary>
    public async Task<int[]> ExecutorGreedy(string prompt, int maxTokens, int? endId = null)
    {
        var ids = new List<int>();
        var request = new GenerationRequest { PromptIds = Llm.Tokenizer.Encode(prompt, addSpecialTokens: true), MaxTokens = maxTokens, EndId = endId };
        await foreach (var output in Llm.Executor.Submit(request))
            ids.AddRange(output.TokenIds[0]);
        return [.. ids];
    }

    /// <summary>Runs curl with <paramref name="args"/> and returns its stdout.</summary>
    public static async Task<string> Curl(params string[] args)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true, StandardOutputEncoding = Encoding.UTF8 };
        start.ArgumentList.Add("-sS");
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = await process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"curl failed ({process.ExitCode}): {stderr}");
        return stdout;
    }
}
