using Turbine.Backends.Cpu;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Tests;

/// <summary>
/// Steps whose rows are all chosen by the backend (IComputeBackend.Sample) bring back ids only, and choose exactly what
/// the host path (a downloaded row through RequestSampler) chooses for the same seed.
/// </summary>
public sealed class BackendSamplingTests
{
    private static readonly ExecutorOptions Options = new() { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };

    private static GenerationRequest Sampled(int[] prompt, ulong seed) => new()
    {
        PromptIds = prompt,
        MaxTokens = 24,
        EndId = -1,
        ReturnLogProbs = true,
        Sampling = new SamplingParams
        {
            Temperature = 1.3f, TopK = 40, TopP = 0.9f, RepetitionPenalty = 1.2f, PresencePenalty = 0.3f, FrequencyPenalty = 0.1f,
            MinLength = 4, Seed = seed,
        },
    };

    private static async Task<GenerationOutput> Final(IAsyncEnumerable<GenerationOutput> outputs)
    {
        GenerationOutput? last = null;
        await foreach (var o in outputs)
            last = o;
        return last!;
    }

    [Fact]
    public async Task SampledStepsBringBackIdsOnlyAndMatchTheHostPath()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var prompt = reference.Cases[1].PromptIds;
        // The greedy continuation's first token, banned as a one-token bad word.
        int[][] banned = [[reference.Cases[1].GreedyIds[prompt.Length]]];
        using var backend = new CountingBackend(new CpuBackend(2));
        using var decoder = Decoder.Load(RepositoryPaths.Fixture("models", "llama-gqa"), backend, LlmExecutor.DecoderLimitsFor(Options));
        using var executor = new LlmExecutor(decoder, Options);

        var onDevice = await Final(executor.Submit(Sampled(prompt, 7) with { BadWords = banned }));
        Assert.Equal(0, backend.Downloads);
        Assert.Equal(24, backend.SampledRows);
        var again = await Final(executor.Submit(Sampled(prompt, 7) with { BadWords = banned }));
        Assert.Equal(onDevice.TokenIds[0], again.TokenIds[0]);
        Assert.Equal(0, backend.Downloads);

        // Generation logits make every step download its rows and choose on the host.
        var onHost = await Final(executor.Submit(Sampled(prompt, 7) with
        {
            BadWords = banned,
            ReturnGenerationLogits = true,
        }));
        Assert.Equal(24, backend.Downloads);
        Assert.Equal(onDevice.TokenIds[0], onHost.TokenIds[0]);
        Assert.Equal(onDevice.LogProbs![0], onHost.LogProbs![0]);
        Assert.DoesNotContain(banned[0][0], onDevice.TokenIds[0].AsSpan(prompt.Length).ToArray());
    }

    [Fact]
    public async Task PlainGreedyStepsUseArgMaxAndOthersSample()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        using var backend = new CountingBackend(new CpuBackend(2));
        using var decoder = Decoder.Load(RepositoryPaths.Fixture("models", "llama-gqa"), backend, LlmExecutor.DecoderLimitsFor(Options));
        using var executor = new LlmExecutor(decoder, Options);
        var greedy = new GenerationRequest { PromptIds = reference.Cases[0].PromptIds, MaxTokens = 24, EndId = -1 };

        var plain = await Final(executor.Submit(greedy));
        Assert.Equal((0, 0), (backend.Downloads, backend.SampledRows));
        Assert.True(backend.ArgMaxRows >= 24);
        Assert.Equal(reference.Cases[0].GreedyIds, plain.TokenIds[0]);

        // Greedy with log probs is no longer plain: the backend chooses the same tokens and reports their log probs.
        var withLogProbs = await Final(executor.Submit(greedy with { ReturnLogProbs = true }));
        Assert.Equal(0, backend.Downloads);
        Assert.Equal(24, backend.SampledRows);
        Assert.Equal(plain.TokenIds[0], withLogProbs.TokenIds[0]);
        Assert.All(withLogProbs.LogProbs![0], lp => Assert.True(lp <= 0f && lp > -50f, $"log prob {lp}"));
    }

    /// <summary>A CPU backend that counts how the steps' logits reach the host.</summary>
    private sealed class CountingBackend(CpuBackend cpu) : ForwardingCpuBackend(cpu)
    {
        public int Downloads { get; private set; }
        public int ArgMaxRows { get; private set; }
        public int SampledRows { get; private set; }

        public override void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids)
        {
            ArgMaxRows += rows;
            base.ArgMax(logits, rows, width, ids);
        }

        public override void QueueArgMax(DeviceBuffer logits, int rows, int width)
        {
            ArgMaxRows += rows;
            base.QueueArgMax(logits, rows, width);
        }

        public override void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs)
        {
            SampledRows += rows.Count;
            base.Sample(logits, width, rows, ids, logProbs);
        }

        public override void Download(DeviceBuffer source, Span<float> destination)
        {
            Downloads++;
            base.Download(source, destination);
        }
    }
}
