namespace Turbine.Cli.Benchmarking;

/// <summary>Parameters of a token-norm-dist workload (prepare_dataset.py token-norm-dist).</summary>
public sealed record TokenNormDistOptions
{
    /// <summary>Number of requests.</summary>
    public required int NumRequests { get; init; }
    /// <summary>Mean prompt length.</summary>
    public required double InputMean { get; init; }
    /// <summary>Standard deviation of prompt lengths; 0 makes every prompt <see cref="InputMean"/> long.</summary>
    public double InputStdev { get; init; }
    /// <summary>Mean output length.</summary>
    public required double OutputMean { get; init; }
    /// <summary>Standard deviation of output lengths; 0 makes every output <see cref="OutputMean"/> long.</summary>
    public double OutputStdev { get; init; }
    /// <summary>Token ids are uniform in [0, VocabSize).</summary>
    public required int VocabSize { get; init; }
    /// <summary>Random seed.</summary>
    public int Seed { get; init; }
}

/// <summary>
/// Generates token-norm-dist workloads: prompt and output lengths drawn from normal distributions, rounded and
/// clamped to at least 1, with uniformly random prompt token ids.
/// </summary>
public static class TokenNormDistGenerator
{
    /// <summary>
    /// Generates the workload. With <paramref name="tokenizer"/>, its special tokens are never drawn and each sample
    /// carries its decoded prompt; <paramref name="tokenizerName"/> is recorded in the metadata.
    /// </summary>
    public static BenchmarkDataset Generate(TokenNormDistOptions options, Turbine.Tokenizers.Tokenizer? tokenizer = null, string? tokenizerName = null)
    {
        if (options.NumRequests < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"num_requests must be at least 1, not {options.NumRequests}");
        if (options.VocabSize < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"vocab_size must be at least 1, not {options.VocabSize}");
        if (options.InputStdev < 0 || options.OutputStdev < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "standard deviations must not be negative");
        // Lengths and ids come from separate streams so that changing the vocabulary leaves the lengths alone.
        var lengths = new Random(options.Seed);
        var ids = new Random(unchecked(options.Seed * 31 + 17));
        var samples = new BenchmarkSample[options.NumRequests];
        for (int i = 0; i < samples.Length; i++)
        {
            int inputLen = Length(lengths, options.InputMean, options.InputStdev);
            int outputLen = Length(lengths, options.OutputMean, options.OutputStdev);
            var prompt = new int[inputLen];
            for (int t = 0; t < prompt.Length; t++)
            {
                int id;
                do
                    id = ids.Next(options.VocabSize);
                while (tokenizer is not null && tokenizer.IsSpecialToken(id));
                prompt[t] = id;
            }
            samples[i] = new BenchmarkSample
            {
                InputLen = inputLen, InputIds = prompt, OutputLen = outputLen,
                Prompt = tokenizer?.Decode(prompt, skipSpecialTokens: false),
            };
        }
        return new BenchmarkDataset
        {
            Metadata = new DatasetMetadata
            {
                WorkloadType = "token-norm-dist", NumRequests = options.NumRequests,
                InputMean = options.InputMean, InputStdev = options.InputStdev,
                OutputMean = options.OutputMean, OutputStdev = options.OutputStdev,
                VocabSize = options.VocabSize, Seed = options.Seed, Tokenizer = tokenizerName,
            },
            Samples = samples,
        };
    }

    private static int Length(Random random, double mean, double stdev)
    {
        double value = stdev == 0 ? mean : mean + stdev * StandardNormal(random);
        return (int)Math.Max(1, Math.Min(int.MaxValue / 2, Math.Round(value)));
    }

    /// <summary>A standard normal sample (Box–Muller).</summary>
    public static double StandardNormal(Random random)
    {
        // 1 - U lies in (0, 1], so the logarithm is finite.
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
