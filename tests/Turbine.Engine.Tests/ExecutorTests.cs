using Turbine.Backends.Cpu;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Tests;

/// <summary>The in-flight batching executor: outputs equal transformers' references however requests are batched.</summary>
public sealed class ExecutorTests
{
    private static LlmExecutor Start(string model, ExecutorOptions options, out CpuBackend backend)
    {
        backend = new CpuBackend(2);
        var decoder = Decoder.Load(RepositoryPaths.Fixture("models", model), backend, LlmExecutor.DecoderLimitsFor(options));
        return new LlmExecutor(decoder, options);
    }

    private static LlmExecutor StartDemo(ExecutorOptions options, out CpuBackend backend)
    {
        backend = new CpuBackend(2);
        var decoder = Decoder.Load(Path.Combine(RepositoryPaths.Root, "models", "demo"), backend, LlmExecutor.DecoderLimitsFor(options));
        return new LlmExecutor(decoder, options);
    }

    private static async Task<GenerationOutput> Final(IAsyncEnumerable<GenerationOutput> outputs)
    {
        GenerationOutput? last = null;
        await foreach (var o in outputs)
            last = o;
        return last!;
    }

    private static GenerationRequest Greedy(int[] prompt, int maxTokens = 24, bool streaming = false) =>
        new() { PromptIds = prompt, MaxTokens = maxTokens, EndId = -1, Streaming = streaming };

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2-sharded")]
    [InlineData("mistral-swa")]
    public async Task RequestsArrivingWhileOthersRunGetTheirReferenceContinuations(string model)
    {
        var reference = ReferenceModel.Load(model);
        using var executor = Start(model, new ExecutorOptions { MaxNumTokens = 32, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 }, out var backend);
        using var _ = backend;
        // The first request streams; the others join after it has produced tokens, with prompts of other lengths.
        var first = executor.Submit(Greedy(reference.Cases[0].PromptIds, streaming: true));
        var streamed = new List<int>();
        var tasks = new List<Task<GenerationOutput>>();
        await foreach (var o in first)
        {
            streamed.AddRange(o.TokenIds[0]);
            if (tasks.Count == 0 && streamed.Count >= 3)
                for (int i = 1; i < reference.Cases.Length; i++)
                    tasks.Add(Final(executor.Submit(Greedy(reference.Cases[i].PromptIds))));
        }
        Assert.Equal(reference.Cases[0].GreedyIds, streamed);
        for (int i = 1; i < reference.Cases.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, (await tasks[i - 1]).TokenIds[0]);
    }

    [Fact]
    public async Task PrefixReuseReportsHitsAndChangesNoOutput()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 512, TokensPerBlock = 4, EnableKvCacheReuse = true };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var c = reference.Cases[2];
        var cold = await Final(executor.Submit(Greedy(c.PromptIds)));
        var warm = await Final(executor.Submit(Greedy(c.PromptIds)));
        Assert.Equal(0, cold.ReusedPromptTokens);
        Assert.Equal((c.PromptIds.Length - 1) / 4 * 4, warm.ReusedPromptTokens);
        Assert.True(executor.GetStatistics().ReuseHits > 0);
        Assert.Equal(c.GreedyIds, cold.TokenIds[0]);
        Assert.Equal(c.GreedyIds, warm.TokenIds[0]);
    }

    [Fact]
    public async Task UnderPreemptionEveryRequestCompletesWithIdenticalOutput()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        // 80 tokens of KV: one request at a time fits (≤ 68 tokens), three at once do not.
        var options = new ExecutorOptions
        {
            MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 80, TokensPerBlock = 4, Policy = SchedulerPolicy.MaxUtilization,
        };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var tasks = reference.Cases.Select(c => Final(executor.Submit(Greedy(c.PromptIds)))).ToArray();
        for (int i = 0; i < tasks.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, (await tasks[i]).TokenIds[0]);
        var stats = executor.GetStatistics();
        Assert.True(stats.Preemptions > 0, "the budget was meant to force preemption");
        Assert.Equal(stats.MaxKvBlocks, stats.FreeKvBlocks);
    }

    [Fact]
    public async Task GuaranteedNoEvictQueuesInsteadOfPreempting()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 80, TokensPerBlock = 4 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var tasks = reference.Cases.Select(c => Final(executor.Submit(Greedy(c.PromptIds)))).ToArray();
        for (int i = 0; i < tasks.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, (await tasks[i]).TokenIds[0]);
        Assert.Equal(0, executor.GetStatistics().Preemptions);
    }

    [Fact]
    public async Task StaticBatchingGivesTheSameOutputs()
    {
        var reference = ReferenceModel.Load("qwen2-sharded");
        var options = new ExecutorOptions
        {
            MaxNumTokens = 64, MaxBatchSize = 3, MaxTokensInPagedKvCache = 512, TokensPerBlock = 4,
            Batching = BatchingMode.Static, StaticBatchTimeout = TimeSpan.FromMilliseconds(50),
        };
        using var executor = Start("qwen2-sharded", options, out var backend);
        using var _ = backend;
        var tasks = reference.Cases.Select(c => Final(executor.Submit(Greedy(c.PromptIds)))).ToArray();
        for (int i = 0; i < tasks.Length; i++)
            Assert.Equal(reference.Cases[i].GreedyIds, (await tasks[i]).TokenIds[0]);
    }

    [Fact]
    public async Task CancelledRequestFreesItsBlocksWithinAStep()
    {
        // The demo model's 1024 positions give a long generation to cancel, so a busy machine cannot let it finish first.
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 2048, TokensPerBlock = 16 };
        using var executor = StartDemo(options, out var backend);
        using var _ = backend;
        using var cts = new CancellationTokenSource();
        var outputs = executor.Submit(new GenerationRequest { PromptIds = [0, 400, 500], MaxTokens = 1000, EndId = -1, Streaming = true }, cts.Token);
        GenerationOutput? last = null;
        int received = 0;
        await foreach (var o in outputs)
        {
            last = o;
            received += o.TokenIds[0].Length;
            if (!o.IsFinal)
                cts.Cancel();
        }
        Assert.True(last!.IsFinal);
        Assert.Equal(FinishReason.Cancelled, last.FinishReasons[0]);
        Assert.True(received < 1000);
        var stats = executor.GetStatistics();
        Assert.Equal(stats.MaxKvBlocks, stats.FreeKvBlocks);
        Assert.Equal(0, stats.ActiveRequests);
    }

    [Fact]
    public async Task OverlapSchedulingQueuesGreedyStepsAheadAndChangesNoOutput()
    {
        // Requests that end in every way while a step queued ahead of their end is in flight: an end id, a stop word,
        // max_tokens, cancellation; and one that keeps going. The same outputs with and without overlap, and no block left.
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };
        var greedy = reference.Cases[0].GreedyIds;
        GenerationRequest[] requests =
        [
            Greedy(reference.Cases[0].PromptIds) with { EndId = greedy[6] },
            Greedy(reference.Cases[1].PromptIds, streaming: true) with { StopWords = [[reference.Cases[1].GreedyIds[9]]] },
            Greedy(reference.Cases[2].PromptIds, maxTokens: 5),
            Greedy(reference.Cases[1].PromptIds, maxTokens: 24),
        ];
        async Task<(List<int[]> Outputs, ExecutorStatistics Stats, int FedSteps)> Run(bool overlap)
        {
            using var backend = new FeedCountingBackend(new CpuBackend(2));
            using var decoder = Decoder.Load(RepositoryPaths.Fixture("models", "llama-gqa"), backend, LlmExecutor.DecoderLimitsFor(options));
            using var executor = new LlmExecutor(decoder, options with { OverlapScheduling = overlap });
            using var cts = new CancellationTokenSource();
            var cancelled = executor.Submit(new GenerationRequest { PromptIds = reference.Cases[2].PromptIds, MaxTokens = 24, EndId = -1, Streaming = true },
                cts.Token);
            var finals = requests.Select(r => Final(executor.Submit(r))).ToArray();
            await foreach (var o in cancelled)
                if (!o.IsFinal)
                    cts.Cancel();
            var outputs = new List<int[]>();
            foreach (var f in finals)
                outputs.Add((await f).TokenIds[0]);
            return (outputs, executor.GetStatistics(), backend.FedSteps);
        }
        var plain = await Run(overlap: false);
        var ahead = await Run(overlap: true);
        Assert.Equal(0, plain.FedSteps);
        Assert.True(ahead.FedSteps > 0, "no step was queued ahead");
        Assert.Equal(plain.Outputs, ahead.Outputs);
        Assert.Equal(reference.Cases[0].GreedyIds[..6], plain.Outputs[0]);
        Assert.Equal(5, plain.Outputs[2].Length);
        Assert.Equal(reference.Cases[1].GreedyIds, plain.Outputs[3]);
        Assert.Equal(ahead.Stats.MaxKvBlocks, ahead.Stats.FreeKvBlocks);
        Assert.Equal(0, ahead.Stats.ActiveRequests);
    }

    /// <summary>A CPU backend that counts the steps fed from a queued argmax.</summary>
    private sealed class FeedCountingBackend(CpuBackend cpu) : ForwardingCpuBackend(cpu)
    {
        public int FedSteps { get; private set; }

        public override void BeginStep(ForwardBatch batch)
        {
            FedSteps += batch.FeedsTokens ? 1 : 0;
            base.BeginStep(batch);
        }
    }

    [Fact]
    public async Task AbandonedEnumerationCancelsTheRequest()
    {
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 2048, TokensPerBlock = 16 };
        using var executor = StartDemo(options, out var backend);
        using var _ = backend;
        await foreach (var o in executor.Submit(new GenerationRequest { PromptIds = [0, 400, 500], MaxTokens = 1000, EndId = -1, Streaming = true }))
            break;
        // A short follow-up request runs after the loop has dropped the abandoned one.
        await Final(executor.Submit(new GenerationRequest { PromptIds = [0, 600], MaxTokens = 2, EndId = -1 }));
        var stats = executor.GetStatistics();
        Assert.Equal(stats.MaxKvBlocks, stats.FreeKvBlocks);
        Assert.True(stats.Iterations < 900, $"{stats.Iterations} steps ran");
    }

    [Fact]
    public async Task SeededSamplingIsReproducible()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        GenerationRequest Sampled(ulong seed) => Greedy(reference.Cases[1].PromptIds, 32) with
        {
            Sampling = new SamplingParams { Temperature = 1.5f, TopK = 50, TopP = 0.95f, Seed = seed },
        };
        var a = await Final(executor.Submit(Sampled(7)));
        var b = await Final(executor.Submit(Sampled(7)));
        var c = await Final(executor.Submit(Sampled(8)));
        Assert.Equal(a.TokenIds[0], b.TokenIds[0]);
        Assert.NotEqual(a.TokenIds[0], c.TokenIds[0]);
        Assert.NotEqual(reference.Cases[1].GreedyIds, a.TokenIds[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StopWordsCutTheOutputBeforeTheStopSequence(bool streaming)
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var greedy = reference.Cases[0].GreedyIds;
        int[] stop = [greedy[5], greedy[6]];
        var tokens = new List<int>();
        GenerationOutput? last = null;
        await foreach (var o in executor.Submit(Greedy(reference.Cases[0].PromptIds, streaming: streaming) with { StopWords = [stop, [1022, 1021]] }))
        {
            tokens.AddRange(o.TokenIds[0]);
            last = o;
        }
        Assert.Equal(greedy[..5], tokens);
        Assert.Equal(FinishReason.StopWords, last!.FinishReasons[0]);
    }

    [Fact]
    public async Task BadWordsEndIdAndMinLengthSteerTheOutput()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var c = reference.Cases[0];
        var banned = await Final(executor.Submit(Greedy(c.PromptIds) with { BadWords = [[c.GreedyIds[0]]] }));
        Assert.NotEqual(c.GreedyIds[0], banned.TokenIds[0][0]);

        var ended = await Final(executor.Submit(Greedy(c.PromptIds) with { EndId = c.GreedyIds[3] }));
        Assert.Equal(c.GreedyIds[..3], ended.TokenIds[0]);
        Assert.Equal(FinishReason.EndId, ended.FinishReasons[0]);

        var atLeast = await Final(executor.Submit(Greedy(c.PromptIds) with { EndId = c.GreedyIds[3], Sampling = new SamplingParams { MinLength = 4 } }));
        Assert.True(atLeast.TokenIds[0].Length >= 4);
        Assert.Equal(c.GreedyIds[..3], atLeast.TokenIds[0][..3]);
    }

    [Fact]
    public async Task LogProbsAndContextLogitsAgreeWithTransformersLogits()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 8, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var c = reference.Cases[0];
        var o = await Final(executor.Submit(Greedy(c.PromptIds, 4) with
        {
            ReturnLogProbs = true, ReturnContextLogits = true, ReturnGenerationLogits = true, ExcludeInputInOutput = false,
        }));
        Assert.Equal([.. c.PromptIds, .. c.GreedyIds[..4]], o.TokenIds[0]);
        double max = c.LastLogits.Max(), lse = max + Math.Log(c.LastLogits.Sum(v => Math.Exp(v - max)));
        Assert.Equal(c.LastLogits[c.GreedyIds[0]] - lse, o.LogProbs![0][0], 3);
        Assert.Equal(o.LogProbs[0].Sum(), o.CumLogProbs![0], 3);
        int vocab = c.LastLogits.Length;
        var lastContextRow = o.ContextLogits!.AsSpan((c.PromptIds.Length - 1) * vocab, vocab).ToArray();
        Assert.True(DecoderReferenceTests.RelativeL2(lastContextRow, c.LastLogits) < 1e-4);
        Assert.True(DecoderReferenceTests.RelativeL2(o.GenerationLogits!.AsSpan(0, vocab), c.LastLogits) < 1e-4);
    }

    [Fact]
    public void YarnStretchesTheOriginalContextByItsFactor()
    {
        // Qwen2.5's recipe leaves max_position_embeddings at the original context: the factor is what extends it.
        var dir = DecoderLoadErrorTests.CopyFixture("llama-yarn", c => c["max_position_embeddings"] = 32);
        var options = new ExecutorOptions { MaxNumTokens = 16, MaxBatchSize = 1, TokensPerBlock = 4, MaxTokensInPagedKvCache = 256 };
        using var backend = new CpuBackend(1);
        using var decoder = Decoder.Load(dir, backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options);
        var e = Assert.Throws<RequestRejectedException>(() => executor.Submit(new GenerationRequest { PromptIds = [5], MaxTokens = 128 }));
        Assert.Contains("max_seq_len 128", e.Message);
    }

    public static TheoryData<string, GenerationRequest> BadRequests() => new()
    {
        { "empty", new GenerationRequest { PromptIds = [], MaxTokens = 4 } },
        { "max_input_len", new GenerationRequest { PromptIds = new int[300], MaxTokens = 4 } },
        { "max_tokens", new GenerationRequest { PromptIds = [5], MaxTokens = 0 } },
        { "max_seq_len", new GenerationRequest { PromptIds = [5], MaxTokens = 1000 } },
        { "top_p", new GenerationRequest { PromptIds = [5], MaxTokens = 4, Sampling = new SamplingParams { Temperature = 1, TopP = 1.5f } } },
        { "temperature", new GenerationRequest { PromptIds = [5], MaxTokens = 4, Sampling = new SamplingParams { Temperature = -1 } } },
        { "beam_width", new GenerationRequest { PromptIds = [5], MaxTokens = 4, Sampling = new SamplingParams { BeamWidth = 4 } } },
        { "vocabulary", new GenerationRequest { PromptIds = [5, 4096], MaxTokens = 4 } },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadRequestsFailPreciselyAndOthersGoOn(string expected, GenerationRequest bad)
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, MaxTokensInPagedKvCache = 1024, TokensPerBlock = 4, MaxSeqLen = 256 };
        using var executor = Start("llama-gqa", options, out var backend);
        using var _ = backend;
        var good = Final(executor.Submit(Greedy(reference.Cases[1].PromptIds)));
        var e = Assert.Throws<RequestRejectedException>(() => executor.Submit(bad));
        Assert.Contains(expected, e.Message);
        Assert.Equal(reference.Cases[1].GreedyIds, (await good).TokenIds[0]);
    }
}

/// <summary>Requests and outputs as text, through the model's tokenizer.</summary>
public sealed class ExecutorTextTests
{
    [Fact]
    public async Task TextPromptsStopStringsAndStreamedTextAgreeWithTheTokenizer()
    {
        var dir = Path.Combine(RepositoryPaths.Root, "models", "demo");
        var tokenizer = Turbine.Tokenizers.Tokenizer.FromDirectory(dir);
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 2, TokensPerBlock = 16, MaxTokensInPagedKvCache = 512 };
        using var backend = new CpuBackend(2);
        using var decoder = Decoder.Load(dir, backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options, tokenizer);
        var full = await Collect(executor.Submit(new GenerationRequest { Prompt = "And the LORD said unto Moses", MaxTokens = 24, EndId = -1 }));
        Assert.Equal(tokenizer.Decode(full.Ids, skipSpecialTokens: true), full.Text);
        var streamed = await Collect(executor.Submit(new GenerationRequest { Prompt = "And the LORD said unto Moses", MaxTokens = 24, EndId = -1, Streaming = true }));
        Assert.Equal(full.Ids, streamed.Ids);
        Assert.Equal(full.Text, streamed.Text);
        // Stop at the first comma that the model writes (its own tokenization of "," is one token).
        int comma = full.Text.IndexOf(',', StringComparison.Ordinal);
        Assert.True(comma >= 0, "the reference continuation has a comma");
        var stopped = await Collect(executor.Submit(new GenerationRequest
        {
            Prompt = "And the LORD said unto Moses", MaxTokens = 24, EndId = -1, StopStrings = [","], Streaming = true,
        }));
        Assert.Equal(full.Text[..comma], stopped.Text);
    }

    [Fact]
    public void TextNeedsATokenizer()
    {
        var options = new ExecutorOptions { MaxNumTokens = 16, MaxBatchSize = 1, TokensPerBlock = 4, MaxTokensInPagedKvCache = 64 };
        using var backend = new CpuBackend(1);
        using var decoder = Decoder.Load(RepositoryPaths.Fixture("models", "llama-gqa"), backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options);
        var e = Assert.Throws<RequestRejectedException>(() => executor.Submit(new GenerationRequest { Prompt = "hi", MaxTokens = 2 }));
        Assert.Contains("tokenizer", e.Message);
    }

    private static async Task<(int[] Ids, string Text)> Collect(IAsyncEnumerable<GenerationOutput> outputs)
    {
        var ids = new List<int>();
        var text = new System.Text.StringBuilder();
        await foreach (var o in outputs)
        {
            ids.AddRange(o.TokenIds[0]);
            text.Append(o.Text![0]);
        }
        return ([.. ids], text.ToString());
    }
}
