using System.Text.Json;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;

namespace Turbine.Backends.Cuda.Tests;

/// <summary>
/// The CUDA backend against transformers' greedy references of the tiny fixtures, with and without CUDA graphs, and
/// its error where no GPU is present.
/// </summary>
public sealed class CudaBackendTests
{
    private static readonly ExecutorOptions Options = new() { MaxNumTokens = 64, MaxBatchSize = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 512 };

    [NoCudaFact]
    public void WithoutAGpuTheBackendSaysWhy()
    {
        var e = Assert.Throws<CudaException>(() => new CudaBackend());
        Assert.True(e.Message.Contains("libcuda.so.1", StringComparison.Ordinal) || e.Message.Contains("no CUDA device", StringComparison.Ordinal), e.Message);
        Assert.False(CudaBackend.IsAvailable(out var reason));
        Assert.False(string.IsNullOrEmpty(reason));
    }

    [CudaFact]
    public Task LlamaGreedyIdsMatchTransformers() => GreedyIdsMatchTransformers("llama-gqa", graphs: true);

    [CudaFact]
    public Task QwenGreedyIdsMatchTransformers() => GreedyIdsMatchTransformers("qwen2-sharded", graphs: true);

    [CudaFact]
    public Task WithoutGraphsTheIdsAreTheSame() => GreedyIdsMatchTransformers("llama-gqa", graphs: false);

    // Every reference prompt submitted together (in-flight batching, decode steps replayed from graphs when on).
    private static async Task GreedyIdsMatchTransformers(string model, bool graphs)
    {
        var dir = RepositoryPaths.Fixture("models", model);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => (Prompt: c.GetProperty("prompt_ids").Deserialize<int[]>()!, Greedy: c.GetProperty("greedy_ids").Deserialize<int[]>()!))
            .ToArray();
        using var backend = new CudaBackend(new CudaBackendOptions { Graphs = graphs });
        using var decoder = Decoder.Load(dir, backend, LlmExecutor.DecoderLimitsFor(Options));
        using var executor = new LlmExecutor(decoder, Options);
        var runs = cases.Select(c => Final(executor.Submit(new GenerationRequest { PromptIds = c.Prompt, MaxTokens = c.Greedy.Length, EndId = -1 }))).ToArray();
        for (int i = 0; i < cases.Length; i++)
            Assert.Equal(cases[i].Greedy, await runs[i]);
    }

    private static async Task<int[]> Final(IAsyncEnumerable<GenerationOutput> outputs)
    {
        int[] ids = [];
        await foreach (var o in outputs)
            ids = o.TokenIds[0];
        return ids;
    }
}
