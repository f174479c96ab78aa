using Turbine.Backends.Cpu;
using Turbine.Engine.Generation;
using Turbine.Engine.KvCache;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

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
    public void GreedyContinuationsMatchTransformersOneAtATime(string model)
    {
        var reference = ReferenceModel.Load(model);
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(64, 4));
        foreach (var c in reference.Cases)
        {
            var result = run.Generator.Generate([c.PromptIds], new GenerationOptions(c.GreedyIds.Length, SamplingOptions.Greedy, []));
            Assert.Equal(c.GreedyIds, result[0].OutputIds);
        }
    }

    [Theory]
    [MemberData(nameof(ReferenceModel.All), MemberType = typeof(ReferenceModel))]
    public void GreedyContinuationsMatchWhenPromptsArePackedAndChunked(string model)
    {
        // 16 tokens per step forces chunked prefill across steps and packs prompts of different lengths together.
        var reference = ReferenceModel.Load(model);
        if (model == "llama-dynamic")
            return; // dynamic NTK recomputes frequencies per forward call in transformers, so chunking changes the reference itself.
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(16, 4));
        var prompts = reference.Cases.Select(c => c.PromptIds).ToArray();
        var results = run.Generator.Generate(prompts, new GenerationOptions(24, SamplingOptions.Greedy, []));
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, results[i].OutputIds);
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
        Generator = new BatchGenerator(Decoder, _storage, _blocks);
    }

    public Decoder Decoder { get; }
    public BatchGenerator Generator { get; }
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
