using Turbine.Engine.Executor;

namespace Turbine.Cli.Benchmarking;

/// <summary>Sends benchmark samples to an in-process <see cref="LlmExecutor"/>, streaming, with end-of-sequence disabled.</summary>
public sealed class ExecutorTarget(LlmExecutor executor) : IGenerationTarget
{
    /// <inheritdoc/>
    public async Task GenerateAsync(BenchmarkSample sample, RequestRecord record, CancellationToken cancellationToken)
    {
        var request = new GenerationRequest { PromptIds = sample.InputIds, MaxTokens = sample.OutputLen, EndId = -1, Streaming = true };
        await foreach (var output in executor.Submit(request, cancellationToken).ConfigureAwait(false))
            record.RecordTokens(output.TokenIds[0].Length);
    }
}
