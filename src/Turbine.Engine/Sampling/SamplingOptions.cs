namespace Turbine.Engine.Sampling;

/// <summary>How the next token is chosen from logits. Temperature 0 (or top_k 1) is greedy.</summary>
/// <param name="Temperature">Divides the logits; 0 means greedy.</param>
/// <param name="TopK">Keep only the k most likely tokens; 0 keeps all.</param>
/// <param name="TopP">Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.</param>
/// <param name="Seed">Seed of the random stream; the same seed gives the same tokens.</param>
public sealed record SamplingOptions(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong? Seed = null)
{
    /// <summary>Greedy decoding.</summary>
    public static SamplingOptions Greedy { get; } = new();

    /// <summary>True when sampling reduces to argmax.</summary>
    public bool IsGreedy => Temperature <= 0f || TopK == 1;

    /// <summary>A precise message for the first out-of-range option, or null.</summary>
    public string? Validate() =>
        Temperature < 0f || float.IsNaN(Temperature) ? $"temperature must be ≥ 0, not {Temperature}"
        : TopK < 0 ? $"top_k must be ≥ 0, not {TopK}"
        : !(TopP > 0f && TopP <= 1f) ? $"top_p must be in (0, 1], not {TopP}"
        : null;
}
