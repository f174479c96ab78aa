using Turbine.Core.Models;

namespace Turbine.Engine.Models;

/// <summary>
/// Rotary position embedding frequencies and per-token cos/sin rows, following transformers' definitions of
/// the default, linear, dynamic-NTK, Llama-3 and YaRN variants. Computed in double, stored as float like HF's float32.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly RopeScaling _rope;
    private readonly int _dim;
    private readonly int _maxPositions;
    private readonly double[] _invFreq;
    private readonly double _attentionFactor = 1.0;
    private float[] _cos = [];
    private float[] _sin = [];
    private int _tablePositions;

    /// <summary>Frequencies for head width <paramref name="headDim"/> under <paramref name="rope"/>.</summary>
    public RotaryEmbedding(RopeScaling rope, int headDim, int maxPositionEmbeddings)
    {
        _rope = rope;
        _dim = headDim;
        _maxPositions = maxPositionEmbeddings;
        _invFreq = new double[headDim / 2];
        BaseFrequencies(rope.Theta, _invFreq);
        if (rope.Type == RopeScalingType.Llama3)
            ApplyLlama3(_invFreq, rope, maxPositionEmbeddings);
        else if (rope.Type == RopeScalingType.Linear)
            for (int i = 0; i < _invFreq.Length; i++)
                _invFreq[i] /= rope.Factor;
        else if (rope.Type == RopeScalingType.Yarn)
        {
            var yarn = rope.Yarn ?? new YarnParameters();
            ApplyYarn(_invFreq, rope, yarn, headDim, rope.OriginalMaxPositionEmbeddings ?? maxPositionEmbeddings);
            _attentionFactor = YarnAttentionFactor(rope.Factor, yarn);
        }
    }

    /// <summary>Half the head width: the number of (cos, sin) pairs per token.</summary>
    public int HalfDim => _dim / 2;

    /// <summary>The inverse frequency of each pair (for dynamic scaling, those up to max_position_embeddings).</summary>
    public ReadOnlySpan<double> InverseFrequencies => _invFreq;

    /// <summary>The factor cos and sin are multiplied by: YaRN's attention factor, 1 for the other types.</summary>
    public double AttentionFactor => _attentionFactor;

    /// <summary>True when frequencies depend on the sequence length (dynamic NTK), so rows cannot come from a fixed table.</summary>
    public bool IsLengthDependent => _rope.Type == RopeScalingType.Dynamic;

    /// <summary>
    /// Writes cos/sin rows for <paramref name="positions"/> into <paramref name="cos"/> and <paramref name="sin"/>
    /// (positions.Length × HalfDim each). <paramref name="sequenceLength"/> is the largest position in this forward
    /// of the sequence plus one; only dynamic scaling uses it, as transformers does per forward call.
    /// </summary>
    public void Fill(ReadOnlySpan<int> positions, int sequenceLength, Span<float> cos, Span<float> sin)
    {
        int half = HalfDim;
        if (IsLengthDependent && sequenceLength > _maxPositions)
        {
            // transformers: base' = base * ((factor * len / max) - (factor - 1)) ^ (dim / (dim - 2)).
            double f = _rope.Factor;
            double theta = _rope.Theta * Math.Pow(f * sequenceLength / _maxPositions - (f - 1), _dim / (double)(_dim - 2));
            Span<double> inv = stackalloc double[half];
            BaseFrequencies(theta, inv);
            for (int t = 0; t < positions.Length; t++)
                for (int i = 0; i < half; i++)
                {
                    float angle = (float)((float)inv[i] * (float)positions[t]);
                    cos[t * half + i] = MathF.Cos(angle);
                    sin[t * half + i] = MathF.Sin(angle);
                }
            return;
        }
        int maxPos = 0;
        foreach (var p in positions)
            maxPos = Math.Max(maxPos, p);
        EnsureTable(maxPos + 1);
        for (int t = 0; t < positions.Length; t++)
        {
            _cos.AsSpan(positions[t] * half, half).CopyTo(cos.Slice(t * half, half));
            _sin.AsSpan(positions[t] * half, half).CopyTo(sin.Slice(t * half, half));
        }
    }

    private void EnsureTable(int positions)
    {
        if (positions <= _tablePositions)
            return;
        int n = Math.Max(positions, Math.Max(2 * _tablePositions, 256));
        int half = HalfDim;
        float scale = (float)_attentionFactor;
        var cos = new float[n * half];
        var sin = new float[n * half];
        for (int p = 0; p < n; p++)
            for (int i = 0; i < half; i++)
            {
                // float32 products, as HF computes inv_freq ⊗ position and then cos/sin × attention factor in float32.
                float angle = (float)_invFreq[i] * p;
                cos[p * half + i] = MathF.Cos(angle) * scale;
                sin[p * half + i] = MathF.Sin(angle) * scale;
            }
        _cos = cos;
        _sin = sin;
        _tablePositions = n;
    }

    private void BaseFrequencies(double theta, Span<double> inv)
    {
        for (int i = 0; i < inv.Length; i++)
            inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / _dim);
    }

    /// <summary>
    /// transformers 5.17's _compute_yarn_parameters: pair i keeps its frequency (extrapolation) below the correction
    /// dimension of <see cref="YarnParameters.BetaFast"/> rotations over the original context, takes it divided by the
    /// factor (interpolation) above that of <see cref="YarnParameters.BetaSlow"/>, and blends the two linearly between.
    /// </summary>
    private static void ApplyYarn(double[] invFreq, RopeScaling rope, YarnParameters yarn, int dim, int originalContext)
    {
        double low = CorrectionDimension(yarn.BetaFast, dim, rope.Theta, originalContext);
        double high = CorrectionDimension(yarn.BetaSlow, dim, rope.Theta, originalContext);
        if (yarn.Truncate)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }
        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high)
            high += 0.001; // transformers' guard against a zero-width ramp
        for (int i = 0; i < invFreq.Length; i++)
        {
            // ramp 0 keeps the frequency, 1 divides it by the factor.
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            invFreq[i] = invFreq[i] / rope.Factor * ramp + invFreq[i] * (1 - ramp);
        }
    }

    /// <summary>The (fractional) pair index whose frequency turns <paramref name="rotations"/> times over <paramref name="context"/> positions.</summary>
    private static double CorrectionDimension(double rotations, int dim, double theta, int context) =>
        dim * Math.Log(context / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));

    /// <summary>
    /// The given attention factor, else 0.1·ln(factor) + 1 (1 for factors up to 1), or, when mscale and mscale_all_dim
    /// are both set (and non-zero), the ratio of that formula weighted by each.
    /// </summary>
    private static double YarnAttentionFactor(double factor, YarnParameters yarn)
    {
        if (yarn.AttentionFactor is double given)
            return given;
        static double Mscale(double scale, double weight) => scale <= 1 ? 1.0 : 0.1 * weight * Math.Log(scale) + 1.0;
        if (yarn.Mscale is double m && m != 0 && yarn.MscaleAllDim is double all && all != 0)
            return Mscale(factor, m) / Mscale(factor, all);
        return Mscale(factor, 1.0);
    }

    private static void ApplyLlama3(double[] invFreq, RopeScaling rope, int maxPositionEmbeddings)
    {
        double oldContext = rope.OriginalMaxPositionEmbeddings ?? maxPositionEmbeddings;
        double lowWavelen = oldContext / rope.LowFreqFactor;
        double highWavelen = oldContext / rope.HighFreqFactor;
        for (int i = 0; i < invFreq.Length; i++)
        {
            double wavelen = 2 * Math.PI / invFreq[i];
            if (wavelen > lowWavelen)
                invFreq[i] /= rope.Factor;
            else if (wavelen >= highWavelen)
            {
                double smooth = (oldContext / wavelen - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
                invFreq[i] = (1 - smooth) * invFreq[i] / rope.Factor + smooth * invFreq[i];
            }
        }
    }
}
