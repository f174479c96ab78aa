using System.Text.Json;
using Turbine.Core.Checkpoints;

namespace Turbine.Core.Models;

/// <summary>
/// The fields of a Hugging Face decoder-only <c>config.json</c> that inference needs. Reads both the
/// transformers 4.x layout (rope_theta + rope_scaling) and the 5.x one (rope_parameters, layer_types).
/// </summary>
public sealed class HfModelConfig
{
    /// <summary>The file it was read from.</summary>
    public required string Path { get; init; }
    /// <summary>First entry of <c>architectures</c>, e.g. LlamaForCausalLM.</summary>
    public required string Architecture { get; init; }
    /// <summary><c>model_type</c>, e.g. llama.</summary>
    public string? ModelType { get; init; }
    /// <summary>Vocabulary size (rows of the embedding table).</summary>
    public required int VocabSize { get; init; }
    /// <summary>Width of the residual stream.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Width of the gated MLP.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Number of decoder layers.</summary>
    public required int NumLayers { get; init; }
    /// <summary>Query heads.</summary>
    public required int NumHeads { get; init; }
    /// <summary>Key/value heads (GQA when fewer than query heads, MQA when one).</summary>
    public required int NumKvHeads { get; init; }
    /// <summary>Per-head width; hidden_size / heads unless the config says otherwise.</summary>
    public required int HeadDim { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    public required double RmsNormEps { get; init; }
    /// <summary>Trained context length.</summary>
    public required int MaxPositionEmbeddings { get; init; }
    /// <summary>Rotary embedding parameters.</summary>
    public required RopeScaling Rope { get; init; }
    /// <summary>True when lm_head shares the embedding table.</summary>
    public required bool TieWordEmbeddings { get; init; }
    /// <summary>Whether q/k/v projections carry biases (Qwen2 always; Llama when attention_bias is true).</summary>
    public required bool QkvBias { get; init; }
    /// <summary>Whether the output projection carries a bias.</summary>
    public required bool OutputBias { get; init; }
    /// <summary>Whether the MLP projections carry biases.</summary>
    public required bool MlpBias { get; init; }
    /// <summary>Per layer: the sliding attention window in tokens, or 0 for full attention.</summary>
    public required int[] SlidingWindows { get; init; }
    /// <summary>The MLP activation (<c>hidden_act</c>).</summary>
    public required string HiddenAct { get; init; }
    /// <summary>Beginning-of-sequence token id, if the config gives one.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>End-of-sequence token ids (a config may list several).</summary>
    public required int[] EosTokenIds { get; init; }
    /// <summary>Padding token id, if given.</summary>
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint was saved in (<c>torch_dtype</c> or <c>dtype</c>), if given.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>Reads <c>config.json</c> in <paramref name="directory"/>.</summary>
    public static HfModelConfig Load(string directory)
    {
        var path = System.IO.Path.Combine(directory, "config.json");
        if (!File.Exists(path))
            throw new CheckpointException(path, null, "config.json not found");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, null, $"is not valid JSON: {e.Message}", e);
        }
        using (doc)
            return Parse(path, doc.RootElement);
    }

    /// <summary>Parses a config already in memory; <paramref name="path"/> names it in errors.</summary>
    public static HfModelConfig Parse(string path, JsonElement root)
    {
        var r = new Reader(path, root);
        string architecture = r.Architecture();
        string? modelType = r.String("model_type");
        int hidden = r.RequiredInt("hidden_size");
        int heads = r.RequiredInt("num_attention_heads");
        int kvHeads = r.Int("num_key_value_heads") ?? heads;
        int headDim = r.Int("head_dim") ?? hidden / heads;
        int layers = r.RequiredInt("num_hidden_layers");
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
            throw new CheckpointException(path, null, $"num_attention_heads {heads} is not a positive multiple of num_key_value_heads {kvHeads}");
        if (r.Int("head_dim") is null && hidden % heads != 0)
            throw new CheckpointException(path, null, $"hidden_size {hidden} is not divisible by num_attention_heads {heads}");
        if (headDim % 2 != 0)
            throw new CheckpointException(path, null, $"head_dim {headDim} must be even for rotary embeddings");
        bool isQwen2 = architecture == "Qwen2ForCausalLM" || modelType == "qwen2";
        bool attentionBias = r.Bool("attention_bias") ?? false;
        int maxPositions = r.Int("max_position_embeddings") ?? 2048;
        return new HfModelConfig
        {
            Path = path,
            Architecture = architecture,
            ModelType = modelType,
            VocabSize = r.RequiredInt("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = r.RequiredInt("intermediate_size"),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = r.Double("rms_norm_eps") ?? 1e-6,
            MaxPositionEmbeddings = maxPositions,
            Rope = r.Rope(maxPositions),
            TieWordEmbeddings = r.Bool("tie_word_embeddings") ?? false,
            QkvBias = isQwen2 || attentionBias,
            OutputBias = !isQwen2 && attentionBias,
            MlpBias = r.Bool("mlp_bias") ?? false,
            SlidingWindows = r.SlidingWindows(layers, isQwen2),
            HiddenAct = r.String("hidden_act") ?? "silu",
            BosTokenId = r.Int("bos_token_id"),
            EosTokenIds = r.IntOrList("eos_token_id"),
            PadTokenId = r.Int("pad_token_id"),
            TorchDtype = r.String("torch_dtype") ?? r.String("dtype"),
        };
    }

    /// <summary>Typed access to config fields, with errors that name the file and the key.</summary>
    private readonly struct Reader(string path, JsonElement root)
    {
        /// <summary>The keys transformers' YaRN reads or tolerates (its _validate_yarn_rope_parameters).</summary>
        private static readonly string[] YarnKeys =
        [
            "rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "attention_factor",
            "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate", "partial_rotary_factor",
        ];

        public string Architecture()
        {
            if (!root.TryGetProperty("architectures", out var a) || a.ValueKind != JsonValueKind.Array || a.GetArrayLength() == 0
                || a[0].ValueKind != JsonValueKind.String)
                throw new CheckpointException(path, null, "has no 'architectures' list naming the model class");
            return a[0].GetString()!;
        }

        public string? String(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        public int? Int(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
                throw new CheckpointException(path, null, $"'{key}' should be an integer, not {v.GetRawText()}");
            return i;
        }

        public int RequiredInt(string key)
        {
            var v = Int(key) ?? throw new CheckpointException(path, null, $"'{key}' is missing");
            if (v <= 0)
                throw new CheckpointException(path, null, $"'{key}' must be positive, not {v}");
            return v;
        }

        public double? Double(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return null;
            if (v.ValueKind != JsonValueKind.Number)
                throw new CheckpointException(path, null, $"'{key}' should be a number, not {v.GetRawText()}");
            return v.GetDouble();
        }

        public bool? Bool(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

        public int[] IntOrList(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return [];
            if (v.ValueKind == JsonValueKind.Number)
                return [v.GetInt32()];
            if (v.ValueKind == JsonValueKind.Array)
            {
                var ids = new int[v.GetArrayLength()];
                for (int i = 0; i < ids.Length; i++)
                    ids[i] = v[i].GetInt32();
                return ids;
            }
            throw new CheckpointException(path, null, $"'{key}' should be an integer or a list of integers");
        }

        public RopeScaling Rope(int maxPositionEmbeddings)
        {
            // transformers 5 keeps everything in rope_parameters; 4.x splits rope_theta and rope_scaling.
            JsonElement scaling = default;
            bool hasScaling = root.TryGetProperty("rope_parameters", out scaling) && scaling.ValueKind == JsonValueKind.Object
                || root.TryGetProperty("rope_scaling", out scaling) && scaling.ValueKind == JsonValueKind.Object;
            double theta = Double("rope_theta") ?? 10000.0;
            if (!hasScaling)
                return new RopeScaling(RopeScalingType.Default, theta);
            var s = new Reader(path, scaling);
            theta = s.Double("rope_theta") ?? theta;
            string type = s.String("rope_type") ?? s.String("type") ?? "default";
            var kind = type switch
            {
                "default" => RopeScalingType.Default,
                "linear" => RopeScalingType.Linear,
                "dynamic" => RopeScalingType.Dynamic,
                "llama3" => RopeScalingType.Llama3,
                "yarn" => RopeScalingType.Yarn,
                _ => throw new CheckpointException(path, null, $"rope scaling type '{type}' is not supported (supported: default, linear, dynamic, llama3, yarn)"),
            };
            if (kind == RopeScalingType.Yarn)
                return s.Yarn(theta, maxPositionEmbeddings, Double("partial_rotary_factor"));
            double factor = s.Double("factor") ?? 1.0;
            if (kind != RopeScalingType.Default && factor <= 0)
                throw new CheckpointException(path, null, $"rope scaling factor must be positive, not {factor}");
            return new RopeScaling(kind, theta, factor,
                s.Double("low_freq_factor") ?? 1.0,
                s.Double("high_freq_factor") ?? 4.0,
                s.Int("original_max_position_embeddings"));
        }

        /// <summary>
        /// YaRN's parameters from this rope scaling object, read as transformers 5.17's _compute_yarn_parameters reads them.
        /// Unlike the other types, unknown keys are errors: a misspelt beta or mscale would otherwise change the
        /// frequencies without a word.
        /// </summary>
        public RopeScaling Yarn(double theta, int maxPositionEmbeddings, double? topLevelPartialRotaryFactor)
        {
            foreach (var property in root.EnumerateObject())
                if (Array.IndexOf(YarnKeys, property.Name) < 0)
                    throw new CheckpointException(path, null,
                        $"rope scaling key '{property.Name}' is not a yarn parameter (yarn takes factor, original_max_position_embeddings, "
                        + "attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim, truncate)");
            if (!root.TryGetProperty("factor", out _))
                throw new CheckpointException(path, null, "rope scaling 'factor' is missing (yarn needs it)");
            // transformers fills a missing original context with max_position_embeddings.
            int original = Int("original_max_position_embeddings") ?? maxPositionEmbeddings;
            if (original <= 0)
                throw new CheckpointException(path, null, $"rope scaling 'original_max_position_embeddings' must be positive, not {original}");
            // A null factor is derived from the two context lengths (DeepSeek-V3 style); a given one is used even where
            // it disagrees with them, as transformers does (it only warns).
            double factor = Double("factor") ?? (double)maxPositionEmbeddings / original;
            if (!(factor > 0))
                throw new CheckpointException(path, null, $"rope scaling 'factor' must be positive, not {factor}");
            double betaFast = Beta("beta_fast", 32.0), betaSlow = Beta("beta_slow", 1.0);
            if (betaFast < betaSlow)
                throw new CheckpointException(path, null, $"rope scaling 'beta_fast' ({betaFast}) must not be below 'beta_slow' ({betaSlow})");
            double? attentionFactor = Double("attention_factor");
            if (attentionFactor is double a && !(a > 0))
                throw new CheckpointException(path, null, $"rope scaling 'attention_factor' must be positive, not {a}");
            double? mscale = NonNegative("mscale"), mscaleAllDim = NonNegative("mscale_all_dim");
            bool truncate = true;
            if (root.TryGetProperty("truncate", out var t) && t.ValueKind != JsonValueKind.Null)
                truncate = t.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw new CheckpointException(path, null, $"rope scaling 'truncate' should be true or false, not {t.GetRawText()}"),
                };
            // Llama, Mistral and Qwen2 rotate whole heads in transformers: there YaRN with a partial factor makes
            // cos/sin narrower than the heads, which transformers cannot run either.
            double partial = Double("partial_rotary_factor") ?? topLevelPartialRotaryFactor ?? 1.0;
            if (partial != 1.0)
                throw new CheckpointException(path, null, $"'partial_rotary_factor' {partial} is not supported with yarn (the decoder rotates whole heads)");
            return new RopeScaling(RopeScalingType.Yarn, theta, factor, OriginalMaxPositionEmbeddings: original,
                Yarn: new YarnParameters(betaFast, betaSlow, attentionFactor, mscale, mscaleAllDim, truncate));
        }

        // transformers reads the betas with `or`, so 0 (like null) means the default.
        private double Beta(string key, double defaultValue)
        {
            double value = Double(key) ?? 0.0;
            if (value < 0)
                throw new CheckpointException(path, null, $"rope scaling '{key}' must be positive, not {value}");
            return value == 0 ? defaultValue : value;
        }

        private double? NonNegative(string key)
        {
            double? value = Double(key);
            if (value is double v && v < 0)
                throw new CheckpointException(path, null, $"rope scaling '{key}' must not be negative, not {v}");
            return value;
        }

        public int[] SlidingWindows(int layers, bool isQwen2)
        {
            var windows = new int[layers];
            int window = Int("sliding_window") ?? 0;
            if (window <= 0)
                return windows;
            if (root.TryGetProperty("layer_types", out var types) && types.ValueKind == JsonValueKind.Array)
            {
                if (types.GetArrayLength() != layers)
                    throw new CheckpointException(path, null, $"'layer_types' has {types.GetArrayLength()} entries for {layers} layers");
                for (int i = 0; i < layers; i++)
                    windows[i] = types[i].GetString() == "sliding_attention" ? window : 0;
                return windows;
            }
            if (isQwen2)
            {
                // Qwen2 slides only when use_sliding_window is set, and then only from max_window_layers on.
                if (Bool("use_sliding_window") != true)
                    return windows;
                int from = Int("max_window_layers") ?? 0;
                for (int i = from; i < layers; i++)
                    windows[i] = window;
                return windows;
            }
            Array.Fill(windows, window);
            return windows;
        }
    }
}
