using System.Diagnostics;

namespace Turbine.Cli.Benchmarking;

/// <summary>
/// Timing of one benchmark request, in <see cref="Stopwatch"/> ticks. Per token it keeps only the first and last
/// arrival and a count, so that recording a token costs one timestamp and no allocation.
/// </summary>
public sealed class RequestRecord(int inputTokens, int expectedOutputTokens)
{
    /// <summary>Prompt tokens sent.</summary>
    public int InputTokens { get; } = inputTokens;
    /// <summary>Tokens the request asked for.</summary>
    public int ExpectedOutputTokens { get; } = expectedOutputTokens;
    /// <summary>Tokens received.</summary>
    public int OutputTokens { get; private set; }
    /// <summary>When the request was sent.</summary>
    public long SentAt { get; private set; }
    /// <summary>When its first token arrived (0 if none did).</summary>
    public long FirstTokenAt { get; private set; }
    /// <summary>When its latest token arrived (0 if none did).</summary>
    public long LastTokenAt { get; private set; }
    /// <summary>When its stream ended (0 while running).</summary>
    public long CompletedAt { get; private set; }
    /// <summary>Why it failed, or null.</summary>
    public string? Error { get; private set; }

    /// <summary>Marks the request as sent now.</summary>
    public void MarkSent() => SentAt = Stopwatch.GetTimestamp();

    /// <summary>Records <paramref name="count"/> tokens arriving now; one stream calls this sequentially.</summary>
    public void RecordTokens(int count)
    {
        if (count <= 0)
            return;
        long now = Stopwatch.GetTimestamp();
        if (OutputTokens == 0)
            FirstTokenAt = now;
        LastTokenAt = now;
        OutputTokens += count;
    }

    /// <summary>Marks the stream as ended now, failed with <paramref name="error"/> when not null.</summary>
    public void MarkCompleted(string? error)
    {
        CompletedAt = Stopwatch.GetTimestamp();
        Error = error;
    }
}

/// <summary>Something that generates tokens for benchmark samples: the in-process executor, or a server.</summary>
public interface IGenerationTarget
{
    /// <summary>Generates <paramref name="sample"/>'s output_len tokens, calling <see cref="RequestRecord.RecordTokens"/> as they stream in.</summary>
    Task GenerateAsync(BenchmarkSample sample, RequestRecord record, CancellationToken cancellationToken);
}
