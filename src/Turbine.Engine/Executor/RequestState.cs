using System.Threading.Channels;
using Turbine.Engine.KvCache;
using Turbine.Engine.Sampling;
using Turbine.Tokenizers;

namespace Turbine.Engine.Executor;

/// <summary>
/// A request inside the executor: every known token (prompt, then generated), how many have K/V in the cache,
/// its blocks, sampler and output channel. Owned by the loop thread; only <see cref="CancelRequested"/> is set from outside.
/// </summary>
internal sealed class RequestState
{
    public RequestState(long id, GenerationRequest request, int[] endIds, int vocabSize, IncrementalDecoder? textDecoder)
    {
        TextDecoder = textDecoder;
        Id = id;
        Request = request;
        EndIds = endIds;
        PromptLength = request.PromptIds.Length;
        Tokens = new int[PromptLength + request.MaxTokens];
        request.PromptIds.CopyTo(Tokens, 0);
        Count = PromptLength;
        Sampler = new RequestSampler(request.Sampling, request.PromptIds);
        if (request.ReturnLogProbs)
            LogProbs = new float[request.MaxTokens];
        if (request.ReturnContextLogits)
            ContextLogits = new float[(long)PromptLength * vocabSize];
        if (request.ReturnGenerationLogits)
            GenerationLogits = new float[(long)request.MaxTokens * vocabSize];
        var s = request.Sampling;
        // Plain greedy needs nothing from the logits but their argmax, which the backend can find where they are.
        PlainGreedy = s.IsGreedy && s.BeamWidth == 1 && s.RepetitionPenalty == 1f && s.PresencePenalty == 0f && s.FrequencyPenalty == 0f
            && s.MinLength == 0 && request.BadWords.Length == 0 && !request.ReturnLogProbs && !request.ReturnContextLogits
            && !request.ReturnGenerationLogits;
        StopWordLength = 0;
        foreach (var w in request.StopWords)
            StopWordLength = Math.Max(StopWordLength, w.Length);
    }

    public long Id { get; }
    public GenerationRequest Request { get; }
    public int[] EndIds { get; }
    public Channel<GenerationOutput> Outputs { get; } = Channel.CreateUnbounded<GenerationOutput>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    public RequestSampler Sampler { get; }
    public SequenceBlocks Blocks { get; } = new();
    public int[] Tokens { get; }
    public int Count { get; set; }
    public int PromptLength { get; }
    public int Computed { get; set; }
    public int Generated => Count - PromptLength;
    public int Emitted { get; set; }
    public float[]? LogProbs { get; }
    public float CumLogProb { get; set; }
    public float[]? ContextLogits { get; }
    public float[]? GenerationLogits { get; }
    public int ReusedTokens { get; set; }
    public int StopWordLength { get; }
    public bool PlainGreedy { get; }
    public FinishReason Finish { get; set; }
    public IncrementalDecoder? TextDecoder { get; }
    public BeamSearch? Beams { get; init; }
    public int DecodedTokens { get; set; }
    public volatile bool CancelRequested;
}
