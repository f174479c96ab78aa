using Turbine.Backends.Cpu;
using Turbine.Engine.Executor;
using Turbine.Engine.KvCache;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>The CPU decoder against transformers' float32 logits and greedy continuations on the same weights.</summary>
public sealed class DecoderReferenceTests
{
    private const double MaxRelativeL2 = 1e-4;

    [Theory]
    [MemberData(nameof(ReferenceModel.All), MemberType = typeof(ReferenceModel))]
    public void LastPositionLogitsMatchTransformers(string model)
    {
        var reference = ReferenceModel.Load(model);
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(64, 4));
        foreach (var c in reference.Cases)
        {
            var logits = run.PrefillLogits(c.PromptIds);
            Assert.True(RelativeL2(logits, c.LastLogits) < MaxRelativeL2,
                $"{model} '{c.Prompt}': relative L2 error {RelativeL2(logits, c.LastLogits):E2} ≥ {MaxRelativeL2:E0}");
        }
    }

    [Theory]
    [MemberData(nameof(ReferenceModel.All), MemberType = typeof(ReferenceModel))]
    public async Task GreedyContinuationsMatchTransformersOneAtATime(string model)
    {
        var reference = ReferenceModel.Load(model);
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(64, 4));
        using var executor = new LlmExecutor(run.Decoder, new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 256, MaxSeqLen = 128 });
        foreach (var c in reference.Cases)
            Assert.Equal(c.GreedyIds, await FinalIds(executor.Submit(new GenerationRequest { PromptIds = c.PromptIds, MaxTokens = c.GreedyIds.Length, EndId = -1 })));
    }

    [Theory]
    [MemberData(nameof(ReferenceModel.All), MemberType = typeof(ReferenceModel))]
    public async Task GreedyContinuationsMatchWhenPromptsArePackedAndChunked(string model)
    {
        // 16 tokens per step forces chunked prefill across steps and packs prompts of different lengths together.
        var reference = ReferenceModel.Load(model);
        if (model == "llama-dynamic")
            return; // dynamic NTK recomputes frequencies per forward call in transformers, so chunking changes the reference itself.
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(16, 4));
        using var executor = new LlmExecutor(run.Decoder, new ExecutorOptions { MaxNumTokens = 16, MaxBatchSize = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 512 });
        var runs = reference.Cases
            .Select(c => FinalIds(executor.Submit(new GenerationRequest { PromptIds = c.PromptIds, MaxTokens = 24, EndId = -1 })))
            .ToArray();
        for (int i = 0; i < runs.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, await runs[i]);
    }

    private static async Task<int[]> FinalIds(IAsyncEnumerable<GenerationOutput> outputs)
    {
        int[] ids = [];
        await foreach (var o in outputs)
            ids = o.TokenIds[0];
        return ids;
    }

    internal static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(diff / norm);
    }
}

/// <summary>A decoder on the CPU backend with its own KV cache, for one test.</summary>
internal sealed class DecoderRun : IDisposable
{
    private readonly CpuBackend _backend = new();
    private readonly Turbine.Engine.Backends.KvCacheStorage _storage;
    private readonly KvCacheManager _blocks;

    public DecoderRun(string directory, DecoderLimits limits, int blocks = 64, int blockSize = 4)
    {
        Decoder = Decoder.Load(directory, _backend, limits);
        _storage = _backend.AllocateKvCache(Decoder.KvShape(blocks, blockSize));
        _blocks = new KvCacheManager(blocks, blockSize);
    }

    public Decoder Decoder { get; }
    public KvCacheManager Blocks => _blocks;

    public float[] PrefillLogits(int[] prompt)
    {
        var seq = new SequenceBlocks();
        Assert.True(_blocks.TryReserve(seq, prompt.Length));
        try
        {
            var batch = Decoder.CreateBatch();
            batch.Add(prompt, 0, seq.Table, _blocks.BlockSize);
            var logits = new float[Decoder.Config.VocabSize];
            Decoder.Forward(batch, _storage, logits);
            return logits;
        }
        finally
        {
            _blocks.Release(seq);
        }
    }

    public void Dispose()
    {
        Decoder.Dispose();
        _storage.Dispose();
        _backend.Dispose();
    }
}
