namespace Turbine.Core.Models;

/// <summary>How rotary position embedding frequencies are scaled, as HF configs describe it.</summary>
public enum RopeScalingType
{
    /// <summary>No scaling: inv_freq = theta^(-2i/d).</summary>
    Default,
    /// <summary>Positions divided by the factor (position interpolation).</summary>
    Linear,
    /// <summary>Dynamic NTK: theta grows with the sequence length once it passes max_position_embeddings.</summary>
    Dynamic,
    /// <summary>Llama 3.1's frequency-dependent interpolation with low/high frequency factors.</summary>
    Llama3,
    /// <summary>
    /// YaRN (Qwen2.5 and DeepSeek long-context configs): each frequency blends interpolation (divided by the factor) and
    /// extrapolation (unchanged) along a ramp between two correction dimensions, and cos/sin are scaled by an attention factor.
    /// </summary>
    Yarn,
}

/// <summary>Rotary embedding parameters: base, scaling type and the scaling's constants.</summary>
public sealed record RopeScaling(
    RopeScalingType Type,
    double Theta,
    double Factor = 1.0,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int? OriginalMaxPositionEmbeddings = null,
    YarnParameters? Yarn = null);

/// <summary>YaRN's constants besides the factor and the original context, with transformers' defaults.</summary>
/// <param name="BetaFast">Rotations (over the original context) above which a frequency is only extrapolated.</param>
/// <param name="BetaSlow">Rotations below which a frequency is only interpolated.</param>
/// <param name="AttentionFactor">Scales cos and sin; null derives it from the factor (and the mscales, when both are set).</param>
/// <param name="Mscale">With <paramref name="MscaleAllDim"/>, the numerator's weight of ln(factor) in the derived attention factor.</param>
/// <param name="MscaleAllDim">With <paramref name="Mscale"/>, the denominator's weight of ln(factor).</param>
/// <param name="Truncate">Whether the correction dimensions are rounded outwards to whole dimensions.</param>
public sealed record YarnParameters(
    double BetaFast = 32.0,
    double BetaSlow = 1.0,
    double? AttentionFactor = null,
    double? Mscale = null,
    double? MscaleAllDim = null,
    bool Truncate = true);
