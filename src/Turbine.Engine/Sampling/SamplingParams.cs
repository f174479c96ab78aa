namespace Turbine.Engine.Sampling;

/// <summary>
/// Per-request sampling configuration with TensorRT-LLM's names: greedy when temperature is 0 or top_k is 1.
/// Penalties follow HF/TensorRT-LLM: repetition divides positive logits (multiplies negative ones) of tokens seen
/// in prompt or output; presence subtracts once and frequency per occurrence, for generated tokens.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>Greedy decoding with no penalties.</summary>
    public static SamplingParams Greedy { get; } = new();
    /// <summary>Softmax temperature; 0 is greedy.</summary>
    public float Temperature { get; init; }
    /// <summary>Keep the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus mass in (0, 1].</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Repetition penalty (1 = none).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Presence penalty (0 = none).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Frequency penalty (0 = none).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>End ids are suppressed until this many tokens were generated.</summary>
    public int MinLength { get; init; }
    /// <summary>Seed of the request's random stream; the same seed gives the same text.</summary>
    public ulong? Seed { get; init; }
    /// <summary>Beams for beam search; 1 is sampling/greedy.</summary>
    public int BeamWidth { get; init; } = 1;
    /// <summary>Beam scores are divided by length^length_penalty.</summary>
    public float LengthPenalty { get; init; } = 1f;
    /// <summary>Stop beam search once beam_width hypotheses have finished.</summary>
    public bool EarlyStopping { get; init; } = true;

    /// <summary>True when sampling reduces to argmax.</summary>
    public bool IsGreedy => Temperature <= 0f || TopK == 1;

    /// <summary>A precise message for the first invalid parameter, or null.</summary>
    public string? Validate(int maxBeamWidth) =>
        Temperature < 0f || float.IsNaN(Temperature) ? $"temperature must be ≥ 0, got {Temperature}"
        : TopK < 0 ? $"top_k must be ≥ 0, got {TopK}"
        : !(TopP > 0f && TopP <= 1f) ? $"top_p must be in (0, 1], got {TopP}"
        : !(RepetitionPenalty > 0f) ? $"repetition_penalty must be > 0, got {RepetitionPenalty}"
        : MinLength < 0 ? $"min_length must be ≥ 0, got {MinLength}"
        : BeamWidth < 1 ? $"beam_width must be ≥ 1, got {BeamWidth}"
        : BeamWidth > maxBeamWidth ? $"beam_width {BeamWidth} exceeds max_beam_width {maxBeamWidth}"
        : null;
}
