using System.Text.Json;
using System.Text.Json.Serialization;

namespace Turbine.Cli.Benchmarking;

/// <summary>
/// A benchmark workload file, shaped like TensorRT-LLM's prepare_dataset.py output:
/// <code>
/// {
///   "metadata": { "workload_type": "token-norm-dist", "num_requests": 2, "input_mean": 128, "input_stdev": 32,
///                 "output_mean": 64, "output_stdev": 24, "vocab_size": 32000, "seed": 0, "tokenizer": null },
///   "samples": [ { "input_len": 3, "input_ids": [17, 4021, 9], "output_len": 70, "prompt": "..." }, ... ]
/// }
/// </code>
/// <c>prompt</c> (the decoded input_ids) is present only when the generator had a tokenizer; HTTP benchmarks need it.
/// </summary>
public sealed record BenchmarkDataset
{
    /// <summary>How the workload was generated.</summary>
    [JsonPropertyName("metadata")]
    public required DatasetMetadata Metadata { get; init; }

    /// <summary>The requests, in arrival order.</summary>
    [JsonPropertyName("samples")]
    public required BenchmarkSample[] Samples { get; init; }

    private static readonly JsonSerializerOptions FileFormat = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Decoded prompts in any script stay readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes the dataset as JSON to <paramref name="path"/>.</summary>
    public void Save(string path)
    {
        using var stream = File.Create(path);
        JsonSerializer.Serialize(stream, this, FileFormat);
    }

    /// <summary>Reads and checks a dataset file; malformed files raise <see cref="InvalidDataException"/>.</summary>
    public static BenchmarkDataset Load(string path)
    {
        BenchmarkDataset? dataset;
        try
        {
            using var stream = File.OpenRead(path);
            dataset = JsonSerializer.Deserialize<BenchmarkDataset>(stream, FileFormat);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a benchmark dataset ({e.Message})", e);
        }
        if (dataset?.Samples is not { Length: > 0 } samples)
            throw new InvalidDataException($"{path}: the dataset has no samples");
        for (int i = 0; i < samples.Length; i++)
        {
            var s = samples[i];
            if (s.InputIds is null || s.InputIds.Length == 0 || s.OutputLen < 1)
                throw new InvalidDataException($"{path}: sample {i} needs non-empty input_ids and output_len >= 1");
        }
        return dataset;
    }
}

/// <summary>The generator's parameters, recorded in the dataset file.</summary>
public sealed record DatasetMetadata
{
    /// <summary>The generator (token-norm-dist).</summary>
    [JsonPropertyName("workload_type")]
    public required string WorkloadType { get; init; }
    /// <summary>Number of samples.</summary>
    [JsonPropertyName("num_requests")]
    public int NumRequests { get; init; }
    /// <summary>Mean prompt length in tokens.</summary>
    [JsonPropertyName("input_mean")]
    public double InputMean { get; init; }
    /// <summary>Standard deviation of the prompt length.</summary>
    [JsonPropertyName("input_stdev")]
    public double InputStdev { get; init; }
    /// <summary>Mean output length in tokens.</summary>
    [JsonPropertyName("output_mean")]
    public double OutputMean { get; init; }
    /// <summary>Standard deviation of the output length.</summary>
    [JsonPropertyName("output_stdev")]
    public double OutputStdev { get; init; }
    /// <summary>Token ids are drawn from [0, vocab_size).</summary>
    [JsonPropertyName("vocab_size")]
    public int VocabSize { get; init; }
    /// <summary>Random seed: the same parameters and seed give the same file.</summary>
    [JsonPropertyName("seed")]
    public int Seed { get; init; }
    /// <summary>Directory of the tokenizer that wrote the prompts, if any.</summary>
    [JsonPropertyName("tokenizer")]
    public string? Tokenizer { get; init; }
}

/// <summary>One request of a workload.</summary>
public sealed record BenchmarkSample
{
    /// <summary>Prompt length (the length of <see cref="InputIds"/>).</summary>
    [JsonPropertyName("input_len")]
    public int InputLen { get; init; }
    /// <summary>Prompt token ids.</summary>
    [JsonPropertyName("input_ids")]
    public required int[] InputIds { get; init; }
    /// <summary>Tokens to generate: benchmarks disable end-of-sequence so that exactly this many are produced.</summary>
    [JsonPropertyName("output_len")]
    public required int OutputLen { get; init; }
    /// <summary>The prompt as text (decoded input_ids), for servers that take text; absent without a tokenizer.</summary>
    [JsonPropertyName("prompt")]
    public string? Prompt { get; init; }
}
