using System.Runtime.CompilerServices;
using Turbine.Backends.Cpu;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Tokenizers;

namespace Turbine.Server.Models;

/// <summary>
/// One loaded LLM: its tokenizer and the executor that runs it. The preprocessing, tensorrt_llm,
/// postprocessing, ensemble and BLS models of a standard repository all share one.
/// </summary>
public sealed class LlmService : IAsyncDisposable
{
    private readonly IComputeBackend? _backend;
    private readonly Decoder? _decoder;

    /// <summary>Serves <paramref name="executor"/> with <paramref name="tokenizer"/>; the caller keeps ownership of both.</summary>
    public LlmService(string name, Tokenizer tokenizer, LlmExecutor executor)
    {
        Name = name;
        Tokenizer = tokenizer;
        Executor = executor;
    }

    private LlmService(string name, Tokenizer tokenizer, LlmExecutor executor, IComputeBackend backend, Decoder decoder)
        : this(name, tokenizer, executor)
    {
        _backend = backend;
        _decoder = decoder;
    }

    /// <summary>The model's name (its directory's name).</summary>
    public string Name { get; }
    /// <summary>The model's tokenizer.</summary>
    public Tokenizer Tokenizer { get; }
    /// <summary>The executor.</summary>
    public LlmExecutor Executor { get; }
    /// <summary>Context length the executor accepts (prompt plus generated tokens).</summary>
    public int MaxModelLength => Executor.Decoder.Config.MaxPositionEmbeddings;

    /// <summary>
    /// Loads the checkpoint in <paramref name="modelDir"/> on the backend <paramref name="createBackend"/> makes (the CPU
    /// on <paramref name="threads"/> threads when null). The defaults suit serving: a batch of 16, 256 MiB of KV cache
    /// on the CPU, and a queue of 256 requests beyond which requests are refused at once.
    /// </summary>
    public static LlmService Load(string modelDir, ExecutorOptions? options = null, int threads = 0, string? tokenizerDir = null,
        Func<IComputeBackend>? createBackend = null)
    {
        options ??= new ExecutorOptions { MaxBatchSize = 16, MaxNumTokens = 1024, KvCacheMemoryBytes = 256L << 20, MaxQueueSize = 256 };
        var tokenizer = Tokenizer.FromDirectory(tokenizerDir ?? modelDir);
        var backend = createBackend?.Invoke() ?? new CpuBackend(threads);
        Decoder? decoder = null;
        try
        {
            decoder = Decoder.Load(modelDir, backend, LlmExecutor.DecoderLimitsFor(options), progress: null);
            var executor = new LlmExecutor(decoder, options);
            return new LlmService(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir))), tokenizer, executor, backend, decoder);
        }
        catch
        {
            decoder?.Dispose();
            backend.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Submits <paramref name="request"/>; a refused request becomes an <see cref="InferenceException"/>:
    /// over capacity is <see cref="InferenceError.Unavailable"/> (503), anything else <see cref="InferenceError.InvalidArgument"/> (400).
    /// </summary>
    public IAsyncEnumerable<GenerationOutput> Generate(GenerationRequest request, CancellationToken cancellationToken)
    {
        try
        {
            return Executor.Submit(request, cancellationToken);
        }
        catch (RequestRejectedException e)
        {
            throw new InferenceException(e.IsOverload ? InferenceError.Unavailable : InferenceError.InvalidArgument, e.Message);
        }
        catch (InvalidOperationException e)
        {
            throw new InferenceException(InferenceError.Unavailable, e.Message);
        }
    }

    /// <summary>
    /// Word lists as TensorRT-LLM's preprocessing reads them: every element is a comma-separated list of words,
    /// each word encoded without special tokens; empty words are skipped.
    /// </summary>
    public int[][] EncodeWords(InferTensor? words)
    {
        if (words is null)
            return [];
        var result = new List<int[]>();
        for (int i = 0; i < words.Count; i++)
            foreach (var word in words.GetString(i).Split(','))
                if (word.Length > 0 && Tokenizer.Encode(word, addSpecialTokens: false) is { Length: > 0 } ids)
                    result.Add(ids);
        return [.. result];
    }

    /// <summary>Streams the executor's outputs of <paramref name="request"/> and reports each to <paramref name="statistics"/>' latency histograms.</summary>
    public async IAsyncEnumerable<GenerationOutput> GenerateTimed(GenerationRequest request, Metrics.ModelStatistics statistics,
        long startTicks, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long last = 0;
        await foreach (var output in Generate(request, cancellationToken).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (output.TokenIds[0].Length > 0)
            {
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (last == 0)
                    statistics.FirstResponseMs.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(startTicks, now).TotalMilliseconds);
                else
                    statistics.InterTokenMs.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(last, now).TotalMilliseconds / output.TokenIds[0].Length);
                last = now;
            }
            yield return output;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_decoder is null)
            return;
        await Executor.DisposeAsync().ConfigureAwait(false);
        _decoder.Dispose();
        _backend?.Dispose();
    }
}
