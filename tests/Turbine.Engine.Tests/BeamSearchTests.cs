using Turbine.Backends.Cpu;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;

namespace Turbine.Engine.Tests;

/// <summary>
/// Beam search in the executor (beams sharing KV blocks, copy-on-write) against a brute-force reference that
/// recomputes every hypothesis from scratch with a fresh cache and ranks every (beam, token) candidate.
/// </summary>
public sealed class BeamSearchTests
{
    [Theory]
    [InlineData("llama-gqa", 2, 6, 1.0f, false)]
    [InlineData("llama-gqa", 3, 8, 0.6f, true)]
    [InlineData("qwen2-sharded", 4, 6, 1.0f, true)]
    public async Task BeamsMatchARecomputingReference(string model, int width, int maxTokens, float lengthPenalty, bool useEndId)
    {
        var reference = ReferenceModel.Load(model);
        var prompt = reference.Cases[0].PromptIds;
        // An end id the search meets (the greedy path's third token) exercises finished hypotheses.
        int[] endIds = useEndId ? [reference.Cases[0].GreedyIds[2]] : [];
        using var run = new DecoderRun(reference.Directory, new DecoderLimits(64, 8), blocks: 256);
        var expected = ReferenceSearch(run, prompt, width, maxTokens, lengthPenalty, endIds);

        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 8, MaxBeamWidth = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 512 };
        using var backend = new CpuBackend(2);
        using var decoder = Decoder.Load(reference.Directory, backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options);
        GenerationOutput? output = null;
        await foreach (var o in executor.Submit(new GenerationRequest
        {
            PromptIds = prompt, MaxTokens = maxTokens, EndId = useEndId ? endIds[0] : -1, ReturnLogProbs = true,
            Sampling = new SamplingParams { BeamWidth = width, LengthPenalty = lengthPenalty, EarlyStopping = true },
        }))
            output = o;

        Assert.Equal(expected.Count, output!.TokenIds.Length);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Tokens, output.TokenIds[i]);
            Assert.Equal(expected[i].Cum, output.CumLogProbs![i], 3);
        }
        var stats = executor.GetStatistics();
        Assert.Equal(stats.MaxKvBlocks, stats.FreeKvBlocks);
    }

    [Fact]
    public async Task BeamRequestsRunBesideOtherRequests()
    {
        var reference = ReferenceModel.Load("llama-gqa");
        var options = new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 8, MaxBeamWidth = 2, TokensPerBlock = 4, MaxTokensInPagedKvCache = 512 };
        using var backend = new CpuBackend(2);
        using var decoder = Decoder.Load(reference.Directory, backend, LlmExecutor.DecoderLimitsFor(options));
        using var executor = new LlmExecutor(decoder, options);
        async Task<GenerationOutput> Final(GenerationRequest request)
        {
            GenerationOutput? last = null;
            await foreach (var o in executor.Submit(request))
                last = o;
            return last!;
        }
        var beams = Final(new GenerationRequest { PromptIds = reference.Cases[0].PromptIds, MaxTokens = 8, EndId = -1, Sampling = new SamplingParams { BeamWidth = 2 } });
        var greedy = Final(new GenerationRequest { PromptIds = reference.Cases[1].PromptIds, MaxTokens = 24, EndId = -1 });
        Assert.Equal(reference.Cases[1].GreedyIds, (await greedy).TokenIds[0]);
        Assert.Equal(2, (await beams).TokenIds.Length);
    }

    private static List<(int[] Tokens, float Cum)> ReferenceSearch(DecoderRun run, int[] prompt, int width, int maxTokens, float lengthPenalty, int[] endIds)
    {
        var live = new List<(int[] Tokens, double Cum)> { ([], 0) };
        var finished = new List<(int[] Tokens, double Cum, double Score)>();
        double Score(double cum, int length) => cum / Math.Pow(Math.Max(1, length), lengthPenalty);
        while (true)
        {
            var candidates = new List<(double Score, int Beam, int Token)>();
            for (int b = 0; b < live.Count; b++)
            {
                var logits = run.PrefillLogits([.. prompt, .. live[b].Tokens]);
                double max = logits.Max(), lse = max + Math.Log(logits.Sum(v => Math.Exp(v - max)));
                for (int t = 0; t < logits.Length; t++)
                    candidates.Add((live[b].Cum + (logits[t] - lse), b, t));
            }
            candidates.Sort((x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Beam != y.Beam ? x.Beam.CompareTo(y.Beam) : x.Token.CompareTo(y.Token));
            var next = new List<(int[] Tokens, double Cum)>();
            for (int rank = 0; rank < candidates.Count && next.Count < width; rank++)
            {
                var (score, beam, token) = candidates[rank];
                if (endIds.Contains(token))
                {
                    if (rank < width)
                        finished.Add((live[beam].Tokens, score, Score(score, live[beam].Tokens.Length)));
                    continue;
                }
                next.Add(([.. live[beam].Tokens, token], score));
            }
            live = next;
            if (live.Count == 0 || live[0].Tokens.Length >= maxTokens)
            {
                finished.AddRange(live.Select(l => (l.Tokens, l.Cum, Score(l.Cum, l.Tokens.Length))));
                break;
            }
            if (finished.Count >= width)
                break;
        }
        return [.. finished.OrderByDescending(f => f.Score).Take(width).Select(f => (f.Tokens, (float)f.Cum))];
    }
}
