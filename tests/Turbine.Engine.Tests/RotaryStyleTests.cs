using Turbine.Backends.Cpu;
using Turbine.Core.Models;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>The rotary style goes from the model family to every step the decoder runs.</summary>
public sealed class RotaryStyleTests
{
    [Fact]
    public void ExistingFamiliesRotateNeoxPairs()
    {
        foreach (var family in ModelFamily.All)
            Assert.Equal(RotaryStyle.Neox, family.RotaryStyle);
    }

    [Fact]
    public void BatchCarriesItsStyle()
    {
        Assert.Equal(RotaryStyle.Neox, new ForwardBatch(4, 1, 1, 8).RotaryStyle);
        Assert.Equal(RotaryStyle.Interleaved, new ForwardBatch(4, 1, 1, 8, RotaryStyle.Interleaved).RotaryStyle);
    }

    [Fact]
    public void DecoderBatchesTakeTheFamilyStyle()
    {
        var dir = Path.Combine(RepositoryPaths.Root, "models", "demo");
        var options = new ExecutorOptions { MaxNumTokens = 16, MaxBatchSize = 1, TokensPerBlock = 16, MaxTokensInPagedKvCache = 64 };
        using var backend = new CpuBackend(1);
        using var decoder = Decoder.Load(dir, backend, LlmExecutor.DecoderLimitsFor(options));
        var batch = decoder.CreateBatch();
        Assert.Equal(decoder.Family.RotaryStyle, batch.RotaryStyle);
        Assert.Equal(decoder.Config.HeadDim / 2, batch.RotaryHalfDim);
    }
}
