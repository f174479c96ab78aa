using Turbine.Core.Checkpoints;
using Turbine.Core.Models;

namespace Turbine.Engine.Models;

/// <summary>
/// A model family as data: which HF architectures it covers and where each weight lives in the checkpoint.
/// A new family whose forward pass the generic decoder already computes is one more entry here.
/// </summary>
/// <param name="Name">Short name, e.g. llama.</param>
/// <param name="Architectures">The <c>architectures</c> entries of config.json it covers.</param>
/// <param name="Names">Where its weights are in the checkpoint.</param>
/// <param name="RotaryStyle">
/// How its heads pair dimensions for RoPE. HF configs do not say (transformers fixes it in each architecture's
/// modeling code), so the family declares it.
/// </param>
public sealed record ModelFamily(string Name, string[] Architectures, DecoderWeightNames Names, RotaryStyle RotaryStyle = RotaryStyle.Neox)
{
    /// <summary>Llama, Mistral and Qwen2 share one naming scheme; they differ in config (biases, windows, RoPE).</summary>
    private static readonly DecoderWeightNames LlamaNames = new(
        Embedding: "model.embed_tokens.weight",
        FinalNorm: "model.norm.weight",
        LmHead: "lm_head.weight",
        LayerPrefix: "model.layers.{0}.",
        InputNorm: "input_layernorm.weight",
        Query: "self_attn.q_proj",
        Key: "self_attn.k_proj",
        Value: "self_attn.v_proj",
        Output: "self_attn.o_proj",
        PostAttentionNorm: "post_attention_layernorm.weight",
        Gate: "mlp.gate_proj",
        Up: "mlp.up_proj",
        Down: "mlp.down_proj");

    /// <summary>The families the decoder runs.</summary>
    public static readonly IReadOnlyList<ModelFamily> All =
    [
        new("llama", ["LlamaForCausalLM"], LlamaNames),
        new("mistral", ["MistralForCausalLM"], LlamaNames),
        new("qwen2", ["Qwen2ForCausalLM"], LlamaNames),
    ];

    /// <summary>The family of <paramref name="config"/>'s architecture, or a precise error listing the supported ones.</summary>
    public static ModelFamily For(HfModelConfig config)
    {
        foreach (var family in All)
            if (Array.IndexOf(family.Architectures, config.Architecture) >= 0)
                return family;
        var supported = string.Join(", ", All.SelectMany(f => f.Architectures));
        throw new CheckpointException(config.Path, null, $"architecture '{config.Architecture}' is not supported (supported: {supported})");
    }
}

/// <summary>Checkpoint names of a decoder's weights; per-layer names are relative to <see cref="LayerPrefix"/>.</summary>
public sealed record DecoderWeightNames(
    string Embedding, string FinalNorm, string LmHead, string LayerPrefix, string InputNorm,
    string Query, string Key, string Value, string Output, string PostAttentionNorm,
    string Gate, string Up, string Down)
{
    /// <summary>The full name of a per-layer weight.</summary>
    public string Layer(int layer, string name) => string.Format(System.Globalization.CultureInfo.InvariantCulture, LayerPrefix, layer) + name;
}
