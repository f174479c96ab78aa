using System.Text.Json;
using Turbine.Backends.Cpu;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>The bundled demo model (models/demo) continues prompts exactly as transformers did when it was trained.</summary>
public sealed class DemoModelTests
{
    [Fact]
    public async Task GreedyOutputMatchesTransformersRecordedAtTraining()
    {
        var dir = Path.Combine(RepositoryPaths.Root, "models", "demo");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var options = new ExecutorOptions { MaxNumTokens = 128, MaxBatchSize = 4, TokensPerBlock = 16, MaxTokensInPagedKvCache = 1024 };
        using var backend = new CpuBackend(2);
        using var decoder = Decoder.Load(dir, backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options);
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().ToArray();
        Assert.Equal(4, cases.Length);
        // All prompts at once: the batch is in flight together, and each must still match its single-sequence reference.
        var runs = cases.Select(async c =>
        {
            var prompt = c.GetProperty("prompt_ids").Deserialize<int[]>()!;
            var expected = c.GetProperty("greedy_ids").Deserialize<int[]>()!;
            int[] actual = [];
            await foreach (var o in executor.Submit(new GenerationRequest { PromptIds = prompt, MaxTokens = expected.Length, EndId = -1 }))
                actual = o.TokenIds[0];
            return (Prompt: c.GetProperty("prompt").GetString(), expected, actual);
        }).ToArray();
        foreach (var run in runs)
        {
            var (prompt, expected, actual) = await run;
            Assert.True(expected.SequenceEqual(actual), $"'{prompt}': expected [{string.Join(",", expected)}], got [{string.Join(",", actual)}]");
        }
    }
}
