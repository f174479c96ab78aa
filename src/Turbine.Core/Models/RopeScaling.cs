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
}

/// <summary>Rotary embedding parameters: base, scaling type and the scaling's constants.</summary>
public sealed record RopeScaling(
    RopeScalingType Type,
    double Theta,
    double Factor = 1.0,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int? OriginalMaxPositionEmbeddings = null);
