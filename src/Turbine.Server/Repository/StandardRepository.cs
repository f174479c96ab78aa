using System.Text;
using System.Text.RegularExpressions;

namespace Turbine.Server.Repository;

/// <summary>
/// TensorRT-LLM's <c>inflight_batcher_llm</c> repository layout (ensemble, preprocessing, tensorrt_llm,
/// postprocessing, tensorrt_llm_bls) with the same tensor names, types, shapes and optionality as its templates, so
/// clients written against Triton keep working. Templates carry <c>${key}</c> placeholders filled like
/// fill_template.py fills them; every key has a default, so the result never holds a placeholder.
/// </summary>
public static partial class StandardRepository
{
    /// <summary>The five models, in the order they are written.</summary>
    public static readonly IReadOnlyList<string> ModelNames = ["ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"];

    /// <summary>
    /// Every template key with its default. An empty value means "not set": the parameter is written empty and the
    /// executor keeps its own default.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["engine_dir"] = "",
        ["tokenizer_dir"] = "",
        ["tokenizer_type"] = "auto",
        ["triton_max_batch_size"] = "64",
        ["decoupled_mode"] = "false",
        ["max_beam_width"] = "1",
        ["max_tokens_in_paged_kv_cache"] = "",
        ["max_attention_window_size"] = "",
        ["kv_cache_free_gpu_mem_fraction"] = "",
        ["exclude_input_in_output"] = "true",
        ["enable_kv_cache_reuse"] = "false",
        ["batching_strategy"] = "inflight_fused_batching",
        ["batch_scheduler_policy"] = "guaranteed_no_evict",
        ["max_queue_delay_microseconds"] = "0",
        ["max_queue_size"] = "",
        ["preprocessing_instance_count"] = "1",
        ["postprocessing_instance_count"] = "1",
        ["bls_instance_count"] = "1",
        ["accumulate_tokens"] = "false",
        ["add_special_tokens"] = "true",
        ["skip_special_tokens"] = "true",
        ["tensorrt_llm_model_name"] = "tensorrt_llm",
        ["tensorrt_llm_draft_model_name"] = "",
    };

    /// <summary>
    /// Reads fill_template.py-style <c>key:value</c> arguments; each argument may hold several pairs separated by
    /// commas (<c>triton_max_batch_size:8,decoupled_mode:True</c>), as the seeds' commands write them.
    /// </summary>
    /// <exception cref="ArgumentException">A pair has no colon or names an unknown key.</exception>
    public static IReadOnlyDictionary<string, string> ParseOverrides(IEnumerable<string> arguments)
    {
        var overrides = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var argument in arguments)
        {
            foreach (var pair in argument.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int colon = pair.IndexOf(':');
                if (colon <= 0) throw new ArgumentException($"'{pair}' is not key:value");
                string key = pair[..colon].Trim();
                CheckKey(key);
                overrides[key] = pair[(colon + 1)..].Trim();
            }
        }
        return overrides;
    }

    /// <summary>The five config.pbtxt texts, by model name, fully filled.</summary>
    /// <param name="engineDir">The Hugging Face model directory the LLM loads.</param>
    /// <param name="tokenizerDir">Tokenizer directory; the engine directory when null.</param>
    /// <param name="decoupled">Whether tensorrt_llm and tensorrt_llm_bls stream (decoupled_mode).</param>
    /// <param name="overrides">Template keys to set, winning over the arguments above.</param>
    /// <exception cref="ArgumentException">An override names an unknown key.</exception>
    public static IReadOnlyDictionary<string, string> RenderConfigs(string engineDir, string? tokenizerDir = null, bool decoupled = false,
        IReadOnlyDictionary<string, string>? overrides = null)
    {
        var values = new Dictionary<string, string>(Defaults, StringComparer.Ordinal)
        {
            ["engine_dir"] = Path.GetFullPath(engineDir),
            ["tokenizer_dir"] = Path.GetFullPath(tokenizerDir ?? engineDir),
            ["decoupled_mode"] = decoupled ? "true" : "false",
        };
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            CheckKey(key);
            values[key] = key is "engine_dir" or "tokenizer_dir" && value.Length > 0 ? Path.GetFullPath(value) : value;
        }
        // Lower-case booleans so that the fields typed bool (decoupled) parse; fill_template users write True.
        values["decoupled_mode"] = values["decoupled_mode"].ToLowerInvariant();
        return Templates().ToDictionary(t => t.Key, t => Fill(t.Value, values), StringComparer.Ordinal);
    }

    /// <summary>
    /// The standard repository built in memory, loaded and checked, for <c>turbine serve --model DIR</c>.
    /// </summary>
    /// <exception cref="ModelRepositoryException">A value is not allowed (the message names the key and allowed values).</exception>
    /// <exception cref="ArgumentException">An override names an unknown key.</exception>
    public static ModelRepository Build(string engineDir, string? tokenizerDir = null, bool decoupled = false,
        IReadOnlyDictionary<string, string>? overrides = null)
    {
        var configs = RenderConfigs(engineDir, tokenizerDir, decoupled, overrides)
            .Select(c => ModelConfigLoader.Parse(c.Value, $"{c.Key}/config.pbtxt (generated)"));
        return ModelRepository.FromConfigs(configs);
    }

    /// <summary>
    /// Writes the standard repository under <paramref name="outputDir"/>: <c>&lt;model&gt;/config.pbtxt</c> and an
    /// empty <c>&lt;model&gt;/1/</c> for each model. Values are checked before anything is written.
    /// </summary>
    /// <returns>The config files written.</returns>
    /// <exception cref="ModelRepositoryException">A value is not allowed.</exception>
    /// <exception cref="IOException">A config file exists and <paramref name="overwrite"/> is false.</exception>
    public static IReadOnlyList<string> Write(string outputDir, string engineDir, string? tokenizerDir = null, bool decoupled = false,
        IReadOnlyDictionary<string, string>? overrides = null, bool overwrite = false)
    {
        Build(engineDir, tokenizerDir, decoupled, overrides);
        var configs = RenderConfigs(engineDir, tokenizerDir, decoupled, overrides);
        var files = ModelNames.Select(name => Path.Combine(Path.GetFullPath(outputDir), name, "config.pbtxt")).ToArray();
        if (!overwrite && files.FirstOrDefault(File.Exists) is { } existing)
            throw new IOException($"'{existing}' already exists; choose another --output or pass --overwrite");
        foreach (var (name, file) in ModelNames.Zip(files))
        {
            Directory.CreateDirectory(Path.Combine(Path.GetDirectoryName(file)!, "1"));
            File.WriteAllText(file, configs[name]);
        }
        return files;
    }

    private static void CheckKey(string key)
    {
        if (!Defaults.ContainsKey(key))
            throw new ArgumentException($"unknown key '{key}'; allowed: {string.Join(", ", Defaults.Keys)}");
    }

    /// <summary>Replaces <c>${key}</c> with the value escaped for a quoted string, as every value sits in one or is a plain token.</summary>
    private static string Fill(string template, IReadOnlyDictionary<string, string> values) =>
        PlaceholderPattern().Replace(template, match => values.TryGetValue(match.Groups[1].Value, out var value)
            ? value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)
            : throw new InvalidOperationException($"template key {match.Value} has no value"));

    [GeneratedRegex(@"\$\{(\w+)\}")]
    private static partial Regex PlaceholderPattern();

    /// <summary>A tensor of a template: name, type without the TYPE_ prefix, dims, and its flags.</summary>
    private sealed record Tensor(string Name, string Type, string Dims, bool Optional = false, bool Scalar = false, bool Ragged = false);

    private static Dictionary<string, string> Templates() => new(StringComparer.Ordinal)
    {
        ["ensemble"] = Header("ensemble", "platform: \"ensemble\"", "${triton_max_batch_size}")
            + Tensors("input", EnsembleInputs) + Tensors("output", EnsembleOutputs) + EnsembleScheduling(),
        ["preprocessing"] = Header("preprocessing", "backend: \"python\"", "${triton_max_batch_size}")
            + Tensors("input", PreprocessingInputs) + Tensors("output", PreprocessingOutputs)
            + Parameters("tokenizer_dir", "tokenizer_type", "add_special_tokens") + Instances("${preprocessing_instance_count}"),
        ["tensorrt_llm"] = Header("tensorrt_llm", "backend: \"tensorrtllm\"", "${triton_max_batch_size}")
            + "\nmodel_transaction_policy {\n  decoupled: ${decoupled_mode}\n}\n"
            + "\ndynamic_batching {\n  preferred_batch_size: [ ${triton_max_batch_size} ]\n  max_queue_delay_microseconds: ${max_queue_delay_microseconds}\n}\n"
            + Tensors("input", LlmInputs) + Tensors("output", LlmOutputs) + Instances("1")
            + Parameters(("gpt_model_path", "engine_dir"), ("tokenizer_dir", "tokenizer_dir"), ("max_beam_width", "max_beam_width"),
                ("gpt_model_type", "batching_strategy"), ("batch_scheduler_policy", "batch_scheduler_policy"),
                ("max_tokens_in_paged_kv_cache", "max_tokens_in_paged_kv_cache"), ("max_attention_window_size", "max_attention_window_size"),
                ("kv_cache_free_gpu_mem_fraction", "kv_cache_free_gpu_mem_fraction"), ("exclude_input_in_output", "exclude_input_in_output"),
                ("enable_kv_cache_reuse", "enable_kv_cache_reuse"), ("max_queue_delay_microseconds", "max_queue_delay_microseconds"),
                ("max_queue_size", "max_queue_size")),
        ["postprocessing"] = Header("postprocessing", "backend: \"python\"", "${triton_max_batch_size}")
            + Tensors("input", PostprocessingInputs) + Tensors("output", PostprocessingOutputs)
            + Parameters("tokenizer_dir", "tokenizer_type", "skip_special_tokens") + Instances("${postprocessing_instance_count}"),
        ["tensorrt_llm_bls"] = Header("tensorrt_llm_bls", "backend: \"python\"", "${triton_max_batch_size}")
            + "\nmodel_transaction_policy {\n  decoupled: ${decoupled_mode}\n}\n"
            + Tensors("input", BlsInputs) + Tensors("output", BlsOutputs)
            + Parameters("accumulate_tokens", "tensorrt_llm_model_name", "tensorrt_llm_draft_model_name") + Instances("${bls_instance_count}"),
    };

    private static readonly Tensor[] SamplingInputs =
    [
        new("end_id", "INT32", "1", Optional: true), new("pad_id", "INT32", "1", Optional: true),
        new("top_k", "INT32", "1", Optional: true), new("top_p", "FP32", "1", Optional: true),
        new("temperature", "FP32", "1", Optional: true), new("length_penalty", "FP32", "1", Optional: true),
        new("repetition_penalty", "FP32", "1", Optional: true), new("min_length", "INT32", "1", Optional: true),
        new("presence_penalty", "FP32", "1", Optional: true), new("frequency_penalty", "FP32", "1", Optional: true),
        new("random_seed", "UINT64", "1", Optional: true),
        new("return_log_probs", "BOOL", "1", Optional: true), new("return_context_logits", "BOOL", "1", Optional: true),
        new("return_generation_logits", "BOOL", "1", Optional: true),
        new("beam_width", "INT32", "1", Optional: true), new("stream", "BOOL", "1", Optional: true),
        new("prompt_embedding_table", "FP16", "-1, -1", Optional: true), new("prompt_vocab_size", "INT32", "1", Optional: true),
        new("embedding_bias_words", "STRING", "-1", Optional: true), new("embedding_bias_weights", "FP32", "-1", Optional: true),
    ];

    private static readonly Tensor[] EnsembleInputs =
    [
        new("text_input", "STRING", "-1"), new("max_tokens", "INT32", "-1"),
        new("bad_words", "STRING", "-1", Optional: true), new("stop_words", "STRING", "-1", Optional: true),
        .. SamplingInputs,
    ];

    private static readonly Tensor[] GenerationOutputs =
    [
        new("cum_log_probs", "FP32", "-1"), new("output_log_probs", "FP32", "-1, -1"),
        new("context_logits", "FP32", "-1, -1"), new("generation_logits", "FP32", "-1, -1, -1"),
    ];

    private static readonly Tensor[] EnsembleOutputs = [new("text_output", "STRING", "-1"), .. GenerationOutputs, new("batch_index", "INT32", "1")];

    private static readonly Tensor[] BlsInputs =
    [
        .. EnsembleInputs,
        new("num_draft_tokens", "INT32", "1", Optional: true), new("use_draft_logits", "BOOL", "1", Optional: true, Scalar: true),
    ];

    private static readonly Tensor[] BlsOutputs = EnsembleOutputs;

    private static readonly Tensor[] PreprocessingInputs =
    [
        new("QUERY", "STRING", "-1"), new("REQUEST_OUTPUT_LEN", "INT32", "-1"),
        new("BAD_WORDS_DICT", "STRING", "-1", Optional: true), new("STOP_WORDS_DICT", "STRING", "-1", Optional: true),
        new("EMBEDDING_BIAS_WORDS", "STRING", "-1", Optional: true), new("EMBEDDING_BIAS_WEIGHTS", "FP32", "-1", Optional: true),
        new("END_ID", "INT32", "-1", Optional: true), new("PAD_ID", "INT32", "-1", Optional: true),
    ];

    private static readonly Tensor[] PreprocessingOutputs =
    [
        new("INPUT_ID", "INT32", "-1"), new("REQUEST_INPUT_LEN", "INT32", "1"),
        new("BAD_WORDS_IDS", "INT32", "2, -1"), new("STOP_WORDS_IDS", "INT32", "2, -1"),
        new("EMBEDDING_BIAS", "FP32", "-1"), new("REQUEST_OUTPUT_LEN", "INT32", "-1"),
        new("OUT_END_ID", "INT32", "-1"), new("OUT_PAD_ID", "INT32", "-1"),
    ];

    private static readonly Tensor[] LlmInputs =
    [
        new("input_ids", "INT32", "-1", Ragged: true), new("input_lengths", "INT32", "1", Scalar: true),
        new("request_output_len", "INT32", "1"),
        new("draft_input_ids", "INT32", "-1", Optional: true, Ragged: true),
        new("draft_logits", "FP32", "-1, -1", Optional: true, Ragged: true),
        new("draft_acceptance_threshold", "FP32", "1", Optional: true, Scalar: true),
        new("end_id", "INT32", "1", Optional: true, Scalar: true), new("pad_id", "INT32", "1", Optional: true, Scalar: true),
        new("stop_words_list", "INT32", "2, -1", Optional: true, Ragged: true),
        new("bad_words_list", "INT32", "2, -1", Optional: true, Ragged: true),
        new("embedding_bias", "FP32", "-1", Optional: true, Ragged: true),
        new("beam_width", "INT32", "1", Optional: true, Scalar: true),
        new("temperature", "FP32", "1", Optional: true, Scalar: true),
        new("runtime_top_k", "INT32", "1", Optional: true, Scalar: true), new("runtime_top_p", "FP32", "1", Optional: true, Scalar: true),
        new("runtime_top_p_min", "FP32", "1", Optional: true, Scalar: true), new("runtime_top_p_decay", "FP32", "1", Optional: true, Scalar: true),
        new("runtime_top_p_reset_ids", "INT32", "1", Optional: true, Scalar: true),
        new("len_penalty", "FP32", "1", Optional: true, Scalar: true), new("early_stopping", "BOOL", "1", Optional: true, Scalar: true),
        new("repetition_penalty", "FP32", "1", Optional: true, Scalar: true), new("min_length", "INT32", "1", Optional: true, Scalar: true),
        new("beam_search_diversity_rate", "FP32", "1", Optional: true, Scalar: true),
        new("presence_penalty", "FP32", "1", Optional: true, Scalar: true), new("frequency_penalty", "FP32", "1", Optional: true, Scalar: true),
        new("random_seed", "UINT64", "1", Optional: true, Scalar: true),
        new("return_log_probs", "BOOL", "1", Optional: true, Scalar: true), new("return_context_logits", "BOOL", "1", Optional: true, Scalar: true),
        new("return_generation_logits", "BOOL", "1", Optional: true, Scalar: true),
        new("stop", "BOOL", "1", Optional: true), new("streaming", "BOOL", "1", Optional: true),
        new("prompt_embedding_table", "FP16", "-1, -1", Optional: true, Ragged: true),
        new("prompt_vocab_size", "INT32", "1", Optional: true, Scalar: true),
    ];

    private static readonly Tensor[] LlmOutputs =
    [
        new("output_ids", "INT32", "-1, -1"), new("sequence_length", "INT32", "-1"),
        .. GenerationOutputs, new("batch_index", "INT32", "1"),
    ];

    private static readonly Tensor[] PostprocessingInputs =
    [
        new("TOKENS_BATCH", "INT32", "-1, -1"), new("SEQUENCE_LENGTH", "INT32", "-1"),
        new("CUM_LOG_PROBS", "FP32", "-1", Optional: true), new("OUTPUT_LOG_PROBS", "FP32", "-1, -1", Optional: true),
        new("CONTEXT_LOGITS", "FP32", "-1, -1", Optional: true), new("GENERATION_LOGITS", "FP32", "-1, -1, -1", Optional: true),
    ];

    private static readonly Tensor[] PostprocessingOutputs =
    [
        new("OUTPUT", "STRING", "-1"), new("OUT_CUM_LOG_PROBS", "FP32", "-1"), new("OUT_OUTPUT_LOG_PROBS", "FP32", "-1, -1"),
        new("OUT_CONTEXT_LOGITS", "FP32", "-1, -1"), new("OUT_GENERATION_LOGITS", "FP32", "-1, -1, -1"),
    ];

    private static string Header(string name, string runner, string maxBatchSize) =>
        $"# Generated by 'turbine repo init' in the layout of TensorRT-LLM's inflight_batcher_llm.\nname: \"{name}\"\n{runner}\nmax_batch_size: {maxBatchSize}\n";

    private static string Tensors(string field, IReadOnlyList<Tensor> tensors)
    {
        var text = new StringBuilder().Append('\n').Append(field).Append(" [\n");
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            text.Append("  {\n")
                .Append("    name: \"").Append(t.Name).Append("\"\n")
                .Append("    data_type: TYPE_").Append(t.Type).Append('\n')
                .Append("    dims: [ ").Append(t.Dims).Append(" ]\n");
            if (t.Scalar) text.Append("    reshape: { shape: [ ] }\n");
            if (t.Optional) text.Append("    optional: true\n");
            if (t.Ragged) text.Append("    allow_ragged_batch: true\n");
            text.Append(i + 1 < tensors.Count ? "  },\n" : "  }\n");
        }
        return text.Append("]\n").ToString();
    }

    private static string Instances(string count) =>
        $"\ninstance_group [\n  {{\n    count: {count}\n    kind: KIND_CPU\n  }}\n]\n";

    private static string Parameters(params string[] keys) => Parameters(keys.Select(k => (k, k)).ToArray());

    private static string Parameters(params (string Parameter, string TemplateKey)[] entries)
    {
        var text = new StringBuilder();
        foreach (var (parameter, templateKey) in entries)
        {
            text.Append("\nparameters: {\n  key: \"").Append(parameter).Append("\"\n  value: {\n    string_value: \"${")
                .Append(templateKey).Append("}\"\n  }\n}\n");
        }
        return text.ToString();
    }

    private static string EnsembleScheduling()
    {
        var steps = new (string Model, (string ModelTensor, string EnsembleTensor)[] Inputs, (string ModelTensor, string EnsembleTensor)[] Outputs)[]
        {
            ("preprocessing",
                [("QUERY", "text_input"), ("REQUEST_OUTPUT_LEN", "max_tokens"), ("BAD_WORDS_DICT", "bad_words"),
                 ("STOP_WORDS_DICT", "stop_words"), ("EMBEDDING_BIAS_WORDS", "embedding_bias_words"),
                 ("EMBEDDING_BIAS_WEIGHTS", "embedding_bias_weights"), ("END_ID", "end_id"), ("PAD_ID", "pad_id")],
                [("REQUEST_INPUT_LEN", "_REQUEST_INPUT_LEN"), ("INPUT_ID", "_INPUT_ID"), ("REQUEST_OUTPUT_LEN", "_REQUEST_OUTPUT_LEN"),
                 ("STOP_WORDS_IDS", "_STOP_WORDS_IDS"), ("BAD_WORDS_IDS", "_BAD_WORDS_IDS"), ("EMBEDDING_BIAS", "_EMBEDDING_BIAS"),
                 ("OUT_END_ID", "_PREPROCESSOR_END_ID"), ("OUT_PAD_ID", "_PREPROCESSOR_PAD_ID")]),
            ("tensorrt_llm",
                [("input_ids", "_INPUT_ID"), ("input_lengths", "_REQUEST_INPUT_LEN"), ("request_output_len", "_REQUEST_OUTPUT_LEN"),
                 ("end_id", "_PREPROCESSOR_END_ID"), ("pad_id", "_PREPROCESSOR_PAD_ID"), ("embedding_bias", "_EMBEDDING_BIAS"),
                 ("runtime_top_k", "top_k"), ("runtime_top_p", "top_p"), ("temperature", "temperature"),
                 ("len_penalty", "length_penalty"), ("repetition_penalty", "repetition_penalty"), ("min_length", "min_length"),
                 ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"), ("random_seed", "random_seed"),
                 ("return_log_probs", "return_log_probs"), ("return_context_logits", "return_context_logits"),
                 ("return_generation_logits", "return_generation_logits"), ("beam_width", "beam_width"), ("streaming", "stream"),
                 ("prompt_embedding_table", "prompt_embedding_table"), ("prompt_vocab_size", "prompt_vocab_size"),
                 ("stop_words_list", "_STOP_WORDS_IDS"), ("bad_words_list", "_BAD_WORDS_IDS")],
                [("output_ids", "_TOKENS_BATCH"), ("sequence_length", "_SEQUENCE_LENGTH"), ("cum_log_probs", "_CUM_LOG_PROBS"),
                 ("output_log_probs", "_OUTPUT_LOG_PROBS"), ("context_logits", "_CONTEXT_LOGITS"),
                 ("generation_logits", "_GENERATION_LOGITS"), ("batch_index", "batch_index")]),
            ("postprocessing",
                [("TOKENS_BATCH", "_TOKENS_BATCH"), ("CUM_LOG_PROBS", "_CUM_LOG_PROBS"), ("OUTPUT_LOG_PROBS", "_OUTPUT_LOG_PROBS"),
                 ("CONTEXT_LOGITS", "_CONTEXT_LOGITS"), ("GENERATION_LOGITS", "_GENERATION_LOGITS"), ("SEQUENCE_LENGTH", "_SEQUENCE_LENGTH")],
                [("OUTPUT", "text_output"), ("OUT_OUTPUT_LOG_PROBS", "output_log_probs"), ("OUT_CUM_LOG_PROBS", "cum_log_probs"),
                 ("OUT_CONTEXT_LOGITS", "context_logits"), ("OUT_GENERATION_LOGITS", "generation_logits")]),
        };
        var text = new StringBuilder("\nensemble_scheduling {\n  step [\n");
        for (int i = 0; i < steps.Length; i++)
        {
            var (model, inputs, outputs) = steps[i];
            text.Append("    {\n      model_name: \"").Append(model).Append("\"\n      model_version: -1\n");
            foreach (var (modelTensor, ensembleTensor) in inputs)
                text.Append("      input_map {\n        key: \"").Append(modelTensor).Append("\"\n        value: \"").Append(ensembleTensor).Append("\"\n      }\n");
            foreach (var (modelTensor, ensembleTensor) in outputs)
                text.Append("      output_map {\n        key: \"").Append(modelTensor).Append("\"\n        value: \"").Append(ensembleTensor).Append("\"\n      }\n");
            text.Append(i + 1 < steps.Length ? "    },\n" : "    }\n");
        }
        return text.Append("  ]\n}\n").ToString();
    }
}
