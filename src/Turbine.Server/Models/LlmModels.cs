using System.Diagnostics;
using System.Runtime.CompilerServices;
using Turbine.Engine.Executor;

namespace Turbine.Server.Models;

/// <summary>The <c>tensorrt_llm</c> model: token ids in, token ids out, run by the executor (decoupled: streams when asked).</summary>
public sealed class TensorRtLlmModel(LlmService llm, string name = "tensorrt_llm", bool excludeInputByDefault = false) : ServedModel
{
    private static readonly TensorSpec[] InputSpecs =
    [
        new("input_ids", DataTypes.Int32, [-1]),
        new("input_lengths", DataTypes.Int32, [1], true),
        new("request_output_len", DataTypes.Int32, [1]),
        new("end_id", DataTypes.Int32, [1], true),
        new("pad_id", DataTypes.Int32, [1], true),
        new("stop_words_list", DataTypes.Int32, [2, -1], true),
        new("bad_words_list", DataTypes.Int32, [2, -1], true),
        new("streaming", DataTypes.Bool, [1], true),
        .. SamplingInputs.Specs("runtime_top_k", "runtime_top_p", "len_penalty"),
    ];

    /// <summary>The LLM this model runs.</summary>
    public LlmService Llm => llm;

    /// <summary>Whether output_ids leave the prompt out when a request does not say (exclude_input_in_output).</summary>
    public bool ExcludeInputByDefault => excludeInputByDefault;

    /// <inheritdoc />
    public override string Name => name;
    /// <inheritdoc />
    public override string Platform => "tensorrt_llm";
    /// <inheritdoc />
    public override string Backend => "tensorrtllm";
    /// <inheritdoc />
    public override bool Decoupled => true;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Inputs => InputSpecs;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Outputs => LlmOutputs.Specs("output_ids", DataTypes.Int32, [-1, -1], withSequenceLength: true);
    /// <inheritdoc />
    public override IReadOnlyDictionary<string, string> Parameters => LlmOutputs.ExecutorParameters(llm);

    /// <inheritdoc />
    public override async IAsyncEnumerable<InferResponse> InferAsync(InferRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var ids = request.Required("input_ids").ToInt32Array();
        if (request.IntOrNull("input_lengths") is long length)
            ids = length >= 0 && length <= ids.Length ? ids[..(int)length]
                : throw new InferenceException(InferenceError.InvalidArgument, $"input_lengths {length} is outside [0, {ids.Length}]");
        bool streaming = request.Streaming && request.Bool("streaming", true);
        bool excludeInput = request.Bool("exclude_input_in_output", excludeInputByDefault);
        var generation = new GenerationRequest
        {
            PromptIds = ids,
            MaxTokens = (int)request.Required("request_output_len").GetInt64(0),
            Sampling = SamplingInputs.Read(request, "runtime_top_k", "runtime_top_p", "len_penalty"),
            EndId = request.IntOrNull("end_id") is long end ? (int)end : null,
            PadId = request.IntOrNull("pad_id") is long pad ? (int)pad : null,
            StopWords = WordLists.FromTensor(request.Input("stop_words_list")),
            BadWords = WordLists.FromTensor(request.Input("bad_words_list")),
            ReturnLogProbs = request.Bool("return_log_probs", false),
            ReturnContextLogits = request.Bool("return_context_logits", false),
            ReturnGenerationLogits = request.Bool("return_generation_logits", false),
            Streaming = true,
        };
        var run = new GenerationRun(generation);
        await foreach (var output in llm.GenerateTimed(generation, Statistics, request.StartTicks, cancellationToken).ConfigureAwait(false))
        {
            run.Add(output);
            if (streaming && (output.TokenIds[0].Length > 0 || output.IsFinal))
                yield return new InferResponse(LlmOutputs.Build(run, new InferTensor("output_ids", DataTypes.Int32, [1, 1, output.TokenIds[0].Length], output.TokenIds[0]),
                    output.TokenIds[0].Length, delta: output), output.IsFinal);
        }
        if (!streaming)
        {
            var all = excludeInput ? run.Tokens : [.. ids, .. run.Tokens];
            yield return new InferResponse(LlmOutputs.Build(run, new InferTensor("output_ids", DataTypes.Int32, [1, 1, all.Length], all), all.Length, delta: null));
        }
    }
}

/// <summary>
/// The text-in, text-out models: <c>ensemble</c> (preprocessing → tensorrt_llm → postprocessing) and
/// <c>tensorrt_llm_bls</c> (the same pipeline, in-process, with <c>accumulate_tokens</c>). Streamed text is decoded
/// incrementally, so a character split across tokens is never cut in half.
/// </summary>
public sealed class TextGenerationModel : ServedModel
{
    private readonly LlmService _llm;
    private readonly bool _bls;
    private readonly TensorSpec[] _inputs;
    private readonly bool _excludeInputByDefault;
    private readonly bool _accumulateByDefault;

    /// <summary>
    /// An ensemble (<paramref name="bls"/> false) or BLS model named <paramref name="name"/> over <paramref name="llm"/>;
    /// the defaults stand where a request leaves exclude_input_in_output and accumulate_tokens out.
    /// </summary>
    public TextGenerationModel(string name, LlmService llm, bool bls, bool excludeInputByDefault = false, bool accumulateByDefault = false)
    {
        Name = name;
        _llm = llm;
        _bls = bls;
        _excludeInputByDefault = excludeInputByDefault;
        _accumulateByDefault = accumulateByDefault;
        TensorSpec[] common =
        [
            new("text_input", DataTypes.Bytes, [-1]),
            new("max_tokens", DataTypes.Int32, [-1]),
            new("bad_words", DataTypes.Bytes, [-1], true),
            new("stop_words", DataTypes.Bytes, [-1], true),
            new("end_id", DataTypes.Int32, [1], true),
            new("pad_id", DataTypes.Int32, [1], true),
            new("stream", DataTypes.Bool, [1], true),
            .. SamplingInputs.Specs("top_k", "top_p", "length_penalty"),
        ];
        _inputs = bls ? [.. common, new("accumulate_tokens", DataTypes.Bool, [1], true)] : common;
    }

    /// <inheritdoc />
    public override string Name { get; }
    /// <inheritdoc />
    public override string Platform => _bls ? "python" : "ensemble";
    /// <inheritdoc />
    public override string Backend => _bls ? "python" : "";
    /// <inheritdoc />
    public override bool Decoupled => true;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Inputs => _inputs;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Outputs => LlmOutputs.Specs("text_output", DataTypes.Bytes, [-1], withSequenceLength: false);
    /// <inheritdoc />
    public override IReadOnlyList<string> EnsembleSteps => _bls ? [] : ["preprocessing", "tensorrt_llm", "postprocessing"];
    /// <inheritdoc />
    public override IReadOnlyDictionary<string, string> Parameters => _bls
        ? new Dictionary<string, string> { ["accumulate_tokens"] = _accumulateByDefault ? "true" : "false", ["tensorrt_llm_model_name"] = "tensorrt_llm" }
        : new Dictionary<string, string>();

    /// <summary>The LLM behind this model.</summary>
    public LlmService Llm => _llm;

    /// <inheritdoc />
    public override async IAsyncEnumerable<InferResponse> InferAsync(InferRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        var text = request.Required("text_input").GetString(0);
        var prompt = _llm.Tokenizer.Encode(text, addSpecialTokens: true);
        bool streaming = request.Streaming && request.Bool("stream", true);
        bool accumulate = _bls && request.Bool("accumulate_tokens", _accumulateByDefault);
        bool excludeInput = request.Bool("exclude_input_in_output", _excludeInputByDefault);
        var generation = new GenerationRequest
        {
            PromptIds = prompt,
            MaxTokens = (int)request.Required("max_tokens").GetInt64(0),
            Sampling = SamplingInputs.Read(request, "top_k", "top_p", "length_penalty"),
            EndId = request.IntOrNull("end_id") is long end ? (int)end : null,
            PadId = request.IntOrNull("pad_id") is long pad ? (int)pad : null,
            StopWords = _llm.EncodeWords(request.Input("stop_words")),
            BadWords = _llm.EncodeWords(request.Input("bad_words")),
            ReturnLogProbs = request.Bool("return_log_probs", false),
            ReturnContextLogits = request.Bool("return_context_logits", false),
            ReturnGenerationLogits = request.Bool("return_generation_logits", false),
            Streaming = true,
        };
        request.Timings.InputTicks += Stopwatch.GetTimestamp() - start;
        var run = new GenerationRun(generation);
        var detokenizer = streaming ? _llm.Tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true) : null;
        var accumulated = accumulate ? new System.Text.StringBuilder() : null;
        await foreach (var output in _llm.GenerateTimed(generation, Statistics, request.StartTicks, cancellationToken).ConfigureAwait(false))
        {
            run.Add(output);
            if (detokenizer is null || (output.TokenIds[0].Length == 0 && !output.IsFinal))
                continue;
            long t = Stopwatch.GetTimestamp();
            string delta = "";
            foreach (int id in output.TokenIds[0])
                delta += detokenizer.Push(id);
            if (output.IsFinal)
                delta += detokenizer.Flush();
            string piece = accumulated is null ? delta : accumulated.Append(delta).ToString();
            var response = new InferResponse(LlmOutputs.Build(run, InferTensor.Text("text_output", piece), output.TokenIds[0].Length, delta: output), output.IsFinal);
            request.Timings.OutputTicks += Stopwatch.GetTimestamp() - t;
            yield return response;
        }
        if (detokenizer is null)
        {
            long t = Stopwatch.GetTimestamp();
            var ids = excludeInput ? run.Tokens : [.. prompt, .. run.Tokens];
            var result = _llm.Tokenizer.Decode(ids, skipSpecialTokens: true);
            var response = new InferResponse(LlmOutputs.Build(run, InferTensor.Text("text_output", result), run.Tokens.Length, delta: null));
            request.Timings.OutputTicks += Stopwatch.GetTimestamp() - t;
            yield return response;
        }
    }
}

/// <summary>Gathers a streamed request's outputs into the whole result.</summary>
internal sealed class GenerationRun(GenerationRequest request)
{
    private readonly List<int> _tokens = [];
    private readonly List<float> _logProbs = [];

    public GenerationRequest Request { get; } = request;
    public int[] Tokens => [.. _tokens];
    public float[] LogProbs => [.. _logProbs];
    public float CumLogProb { get; private set; }
    public FinishReason Finish { get; private set; }
    public float[]? ContextLogits { get; private set; }
    public float[]? GenerationLogits { get; private set; }
    public int PromptTokens { get; private set; }

    public void Add(GenerationOutput output)
    {
        _tokens.AddRange(output.TokenIds[0]);
        if (output.LogProbs is { } lp)
            _logProbs.AddRange(lp[0]);
        if (output.CumLogProbs is { } cum)
            CumLogProb = cum[0];
        ContextLogits = output.ContextLogits ?? ContextLogits;
        GenerationLogits = output.GenerationLogits ?? GenerationLogits;
        PromptTokens = output.PromptTokens;
        if (output.IsFinal)
            Finish = output.FinishReasons[0];
    }
}

/// <summary>The outputs TensorRT-LLM's models share: log probs, logits and batch index, zero-filled when not requested as the backend does.</summary>
internal static class LlmOutputs
{
    public static TensorSpec[] Specs(string main, string dataType, long[] dims, bool withSequenceLength) =>
    [
        new(main, dataType, dims),
        .. withSequenceLength ? new[] { new TensorSpec("sequence_length", DataTypes.Int32, [-1]) } : [],
        new("cum_log_probs", DataTypes.Fp32, [-1]),
        new("output_log_probs", DataTypes.Fp32, [-1, -1]),
        new("context_logits", DataTypes.Fp32, [-1, -1]),
        new("generation_logits", DataTypes.Fp32, [-1, -1, -1]),
        new("batch_index", DataTypes.Int32, [1]),
    ];

    public static IReadOnlyDictionary<string, string> ExecutorParameters(LlmService llm)
    {
        var o = llm.Executor.Options;
        return new Dictionary<string, string>
        {
            ["gpt_model_path"] = llm.Name,
            ["max_beam_width"] = o.MaxBeamWidth.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["batching_strategy"] = o.Batching == BatchingMode.InFlight ? "inflight_fused_batching" : "V1",
            ["batch_scheduler_policy"] = o.Policy == SchedulerPolicy.GuaranteedNoEvict ? "guaranteed_no_evict" : "max_utilization",
            ["max_tokens_in_paged_kv_cache"] = llm.Executor.KvCapacityTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["enable_kv_cache_reuse"] = o.EnableKvCacheReuse ? "true" : "false",
        };
    }

    /// <summary>
    /// One response: <paramref name="main"/> then the log-prob and logit tensors. <paramref name="delta"/> is the step's
    /// output when streaming (its log probs only), or null for the whole run.
    /// </summary>
    public static InferTensor[] Build(GenerationRun run, InferTensor main, int tokens, GenerationOutput? delta)
    {
        bool withSequenceLength = main.Name == "output_ids";
        var list = new List<InferTensor>(7) { main };
        if (withSequenceLength)
            list.Add(new InferTensor("sequence_length", DataTypes.Int32, [1, 1], new[] { main.Count }));
        float[] logProbs = !run.Request.ReturnLogProbs ? new float[tokens]
            : delta is null ? run.LogProbs
            : delta.LogProbs?[0] ?? [];
        list.Add(new InferTensor("cum_log_probs", DataTypes.Fp32, [1, 1], new[] { run.Request.ReturnLogProbs ? run.CumLogProb : 0f }));
        list.Add(new InferTensor("output_log_probs", DataTypes.Fp32, [1, 1, logProbs.Length], logProbs));
        var context = run.ContextLogits is { } c && (delta is null || delta.IsFinal) ? c : [0f];
        long vocab = context.Length > 1 && run.PromptTokens > 0 ? context.Length / run.PromptTokens : 1;
        list.Add(new InferTensor("context_logits", DataTypes.Fp32, [1, context.Length / vocab, vocab], context));
        var generation = run.GenerationLogits is { } g && (delta is null || delta.IsFinal) ? g : [0f];
        long rows = generation.Length > 1 ? Math.Max(1, run.Tokens.Length) : 1;
        list.Add(new InferTensor("generation_logits", DataTypes.Fp32, [1, 1, rows, generation.Length / rows], generation));
        list.Add(new InferTensor("batch_index", DataTypes.Int32, [1, 1], new[] { 0 }));
        return [.. list];
    }
}
