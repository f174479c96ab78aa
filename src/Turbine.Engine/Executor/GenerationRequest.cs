using Turbine.Engine.Sampling;

namespace Turbine.Engine.Executor;

/// <summary>
/// One generation request, as TensorRT-LLM's executor takes it: the prompt as token ids or as text, how to sample,
/// when to stop and what to return. Text (prompt, stop and bad words) needs an executor created with a tokenizer.
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>The prompt's token ids (input_ids); leave empty and set <see cref="Prompt"/> to send text.</summary>
    public int[] PromptIds { get; init; } = [];
    /// <summary>The prompt as text, encoded with the model's tokenizer (special tokens added) when no ids are given.</summary>
    public string? Prompt { get; init; }
    /// <summary>Stop words as text, each encoded with the model's tokenizer (no special tokens).</summary>
    public string[] StopStrings { get; init; } = [];
    /// <summary>Bad words as text, each encoded with the model's tokenizer (no special tokens).</summary>
    public string[] BadStrings { get; init; } = [];
    /// <summary>Tokens to generate at most (max_tokens / request_output_len).</summary>
    public required int MaxTokens { get; init; }
    /// <summary>Sampling parameters (temperature, top_k, top_p, penalties, seed, beams ...).</summary>
    public SamplingParams Sampling { get; init; } = SamplingParams.Greedy;
    /// <summary>Token that ends the sequence; null uses the model's end-of-sequence ids, a negative value none (generate max_tokens).</summary>
    public int? EndId { get; init; }
    /// <summary>Padding id reported for finished beams.</summary>
    public int? PadId { get; init; }
    /// <summary>Token sequences that end generation when produced (the stop sequence is not returned).</summary>
    public int[][] StopWords { get; init; } = [];
    /// <summary>Token sequences that may never be produced.</summary>
    public int[][] BadWords { get; init; } = [];
    /// <summary>Stream each new token as it is produced rather than one final output.</summary>
    public bool Streaming { get; init; }
    /// <summary>Return per-token log probabilities and their cumulative sum.</summary>
    public bool ReturnLogProbs { get; init; }
    /// <summary>Return only generated tokens (true), or the prompt followed by them (false).</summary>
    public bool ExcludeInputInOutput { get; init; } = true;
    /// <summary>Return the logits of every prompt position.</summary>
    public bool ReturnContextLogits { get; init; }
    /// <summary>Return the logits of every generated position.</summary>
    public bool ReturnGenerationLogits { get; init; }
}

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>Still generating.</summary>
    None,
    /// <summary>It produced its end id.</summary>
    EndId,
    /// <summary>It produced a stop word.</summary>
    StopWords,
    /// <summary>It reached max_tokens or the model's sequence limit.</summary>
    Length,
    /// <summary>It was cancelled.</summary>
    Cancelled,
}

/// <summary>
/// What the executor returns for a request: in streaming mode one per step with the new tokens, otherwise one
/// final output with all of them. Per beam where beam_width &gt; 1.
/// </summary>
public sealed record GenerationOutput
{
    /// <summary>The request's id within the executor.</summary>
    public required long RequestId { get; init; }
    /// <summary>Per beam: the tokens of this output (new tokens when streaming; all when final).</summary>
    public required int[][] TokenIds { get; init; }
    /// <summary>Per beam: the generated text (a delta when streaming, all of it otherwise) when the executor has a tokenizer.</summary>
    public string[]? Text { get; init; }
    /// <summary>True for the request's last output.</summary>
    public required bool IsFinal { get; init; }
    /// <summary>Per beam, why it finished (None while streaming).</summary>
    public required FinishReason[] FinishReasons { get; init; }
    /// <summary>Per beam: log probability of each returned token, when requested.</summary>
    public float[][]? LogProbs { get; init; }
    /// <summary>Per beam: cumulative log probability so far, when requested.</summary>
    public float[]? CumLogProbs { get; init; }
    /// <summary>Prompt positions × vocabulary, when requested (final output only).</summary>
    public float[]? ContextLogits { get; init; }
    /// <summary>Generated positions × vocabulary for beam 0, when requested.</summary>
    public float[]? GenerationLogits { get; init; }
    /// <summary>Prompt tokens.</summary>
    public int PromptTokens { get; init; }
    /// <summary>Prompt tokens whose KV blocks were reused from the cache.</summary>
    public int ReusedPromptTokens { get; init; }
}

/// <summary>A request the executor refuses (bad parameters, too long, over capacity), with a precise message.</summary>
public sealed class RequestRejectedException(string message, bool isOverload = false) : Exception(message)
{
    /// <summary>True when the request was valid but the executor is full or stopping (HTTP 503 rather than 400).</summary>
    public bool IsOverload { get; } = isOverload;
}
