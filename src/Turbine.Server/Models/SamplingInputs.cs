using Turbine.Engine.Sampling;

namespace Turbine.Server.Models;

/// <summary>
/// The sampling inputs shared by the tensorrt_llm, ensemble and BLS models, read into <see cref="SamplingParams"/>.
/// The ensemble names top-k and top-p <c>top_k</c>/<c>top_p</c>, the tensorrt_llm model <c>runtime_top_k</c>/<c>runtime_top_p</c>.
/// </summary>
internal static class SamplingInputs
{
    public static TensorSpec[] Specs(string topK, string topP, string lengthPenalty) =>
    [
        new(topK, DataTypes.Int32, [1], true),
        new(topP, DataTypes.Fp32, [1], true),
        new("temperature", DataTypes.Fp32, [1], true),
        new(lengthPenalty, DataTypes.Fp32, [1], true),
        new("repetition_penalty", DataTypes.Fp32, [1], true),
        new("min_length", DataTypes.Int32, [1], true),
        new("presence_penalty", DataTypes.Fp32, [1], true),
        new("frequency_penalty", DataTypes.Fp32, [1], true),
        new("random_seed", DataTypes.UInt64, [1], true),
        new("beam_width", DataTypes.Int32, [1], true),
        new("return_log_probs", DataTypes.Bool, [1], true),
        new("return_context_logits", DataTypes.Bool, [1], true),
        new("return_generation_logits", DataTypes.Bool, [1], true),
        new("exclude_input_in_output", DataTypes.Bool, [1], true),
    ];

    public static SamplingParams Read(InferRequest r, string topK, string topP, string lengthPenalty)
    {
        var sampling = new SamplingParams
        {
            TopK = (int)r.Int(topK, 0),
            TopP = (float)r.Float(topP, 1.0),
            Temperature = (float)r.Float("temperature", 0.0),
            LengthPenalty = (float)r.Float(lengthPenalty, 1.0),
            RepetitionPenalty = (float)r.Float("repetition_penalty", 1.0),
            MinLength = (int)r.Int("min_length", 0),
            PresencePenalty = (float)r.Float("presence_penalty", 0.0),
            FrequencyPenalty = (float)r.Float("frequency_penalty", 0.0),
            Seed = r.IntOrNull("random_seed") is long seed ? unchecked((ulong)seed) : null,
            BeamWidth = (int)r.Int("beam_width", 1),
        };
        // TensorRT-LLM samples with top_k/top_p at temperature 1 unless told otherwise; greedy needs neither.
        if (sampling.Temperature == 0f && (sampling.TopK > 1 || sampling.TopP < 1f) && r.Input("temperature") is null)
            sampling = sampling with { Temperature = 1f };
        return sampling;
    }
}
