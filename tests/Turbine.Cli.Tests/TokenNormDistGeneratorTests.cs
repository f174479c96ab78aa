using Turbine.Cli.Benchmarking;
using Turbine.Tokenizers;

namespace Turbine.Cli.Tests;

public class TokenNormDistGeneratorTests
{
    private static TokenNormDistOptions Options(double inputStdev = 32, double outputStdev = 24, int seed = 7) => new()
    {
        NumRequests = 2000, InputMean = 128, InputStdev = inputStdev, OutputMean = 64, OutputStdev = outputStdev, VocabSize = 32000, Seed = seed,
    };

    private static (double Mean, double Stdev) Stats(int[] values)
    {
        double mean = values.Average();
        double variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1);
        return (mean, Math.Sqrt(variance));
    }

    [Fact]
    public void LengthsFollowTheRequestedNormalDistributions()
    {
        var dataset = TokenNormDistGenerator.Generate(Options());
        Assert.Equal(2000, dataset.Samples.Length);
        // Standard error of the mean is 32/√2000 ≈ 0.72 (input) and 0.54 (output); the tolerances are about 4 of them.
        var (inMean, inStdev) = Stats(dataset.Samples.Select(s => s.InputLen).ToArray());
        Assert.InRange(inMean, 125, 131);
        Assert.InRange(inStdev, 32 * 0.92, 32 * 1.08);
        // Clamping at 1 trims the left tail a little (mean − 2.67σ), well within tolerance.
        var (outMean, outStdev) = Stats(dataset.Samples.Select(s => s.OutputLen).ToArray());
        Assert.InRange(outMean, 62, 66);
        Assert.InRange(outStdev, 24 * 0.92, 24 * 1.08);
    }

    [Fact]
    public void SamplesAreConsistentAndIdsInTheVocabulary()
    {
        var dataset = TokenNormDistGenerator.Generate(Options() with { NumRequests = 200, VocabSize = 50 });
        foreach (var s in dataset.Samples)
        {
            Assert.Equal(s.InputLen, s.InputIds.Length);
            Assert.True(s.InputLen >= 1 && s.OutputLen >= 1);
            Assert.All(s.InputIds, id => Assert.InRange(id, 0, 49));
            Assert.Null(s.Prompt);
        }
        Assert.Equal("token-norm-dist", dataset.Metadata.WorkloadType);
        Assert.Equal(200, dataset.Metadata.NumRequests);
    }

    [Fact]
    public void ZeroStdevGivesFixedLengths()
    {
        var dataset = TokenNormDistGenerator.Generate(Options(inputStdev: 0, outputStdev: 0) with { NumRequests = 100 });
        Assert.All(dataset.Samples, s => Assert.Equal((128, 64), (s.InputLen, s.OutputLen)));
    }

    [Fact]
    public void LengthsAreClampedToAtLeastOne()
    {
        var dataset = TokenNormDistGenerator.Generate(new TokenNormDistOptions
        {
            NumRequests = 500, InputMean = 1, InputStdev = 5, OutputMean = 0, OutputStdev = 3, VocabSize = 10,
        });
        Assert.All(dataset.Samples, s => Assert.True(s.InputLen >= 1 && s.OutputLen >= 1));
        Assert.Contains(dataset.Samples, s => s.InputLen == 1);
    }

    [Fact]
    public void TheSameSeedGivesTheSameDatasetAndAnotherSeedAnother()
    {
        var a = TokenNormDistGenerator.Generate(Options() with { NumRequests = 50 });
        var b = TokenNormDistGenerator.Generate(Options() with { NumRequests = 50 });
        var c = TokenNormDistGenerator.Generate(Options(seed: 8) with { NumRequests = 50 });
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(a.Samples[i].InputIds, b.Samples[i].InputIds);
            Assert.Equal(a.Samples[i].OutputLen, b.Samples[i].OutputLen);
        }
        Assert.NotEqual(a.Samples.Select(s => s.InputLen), c.Samples.Select(s => s.InputLen));
    }

    [Fact]
    public void WithATokenizerSamplesCarryDecodedPromptsAndNoSpecialTokens()
    {
        var dir = RepositoryPaths.Fixture("models", "llama-gqa");
        var tokenizer = Tokenizer.FromDirectory(dir);
        var dataset = TokenNormDistGenerator.Generate(Options() with { NumRequests = 20, VocabSize = tokenizer.VocabSize }, tokenizer, dir);
        foreach (var s in dataset.Samples)
        {
            Assert.Equal(tokenizer.Decode(s.InputIds, skipSpecialTokens: false), s.Prompt);
            Assert.DoesNotContain(s.InputIds, tokenizer.IsSpecialToken);
        }
        Assert.Equal(dir, dataset.Metadata.Tokenizer);
    }

    [Fact]
    public void SavedDatasetsLoadBack()
    {
        var path = Path.GetTempFileName();
        try
        {
            var dataset = TokenNormDistGenerator.Generate(Options() with { NumRequests = 5 });
            dataset.Save(path);
            var loaded = BenchmarkDataset.Load(path);
            Assert.Equal(dataset.Metadata, loaded.Metadata);
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(dataset.Samples[i].InputIds, loaded.Samples[i].InputIds);
                Assert.Equal(dataset.Samples[i].OutputLen, loaded.Samples[i].OutputLen);
            }
            File.WriteAllText(path, """{"metadata":{"workload_type":"x"},"samples":[]}""");
            Assert.Throws<InvalidDataException>(() => BenchmarkDataset.Load(path));
            File.WriteAllText(path, "not json");
            Assert.Throws<InvalidDataException>(() => BenchmarkDataset.Load(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
