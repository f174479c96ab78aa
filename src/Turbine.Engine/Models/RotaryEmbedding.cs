using Turbine.Core.Models;

namespace Turbine.Engine.Models;

/// <summary>
/// Rotary position embedding frequencies and per-token cos/sin rows, following transformers' definitions of
/// the default, linear, dynamic-NTK and Llama-3 variants. Computed in double, stored as float like HF's float32.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly RopeScaling _rope;
    private readonly int _dim;
    private readonly int _maxPositions;
    private readonly double[] _invFreq;
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
        InverseFrequencies(rope.Theta, _invFreq);
        if (rope.Type == RopeScalingType.Llama3)
            ApplyLlama3(_invFreq, rope, maxPositionEmbeddings);
        else if (rope.Type == RopeScalingType.Linear)
            for (int i = 0; i < _invFreq.Length; i++)
                _invFreq[i] /= rope.Factor;
    }

    /// <summary>Half the head width: the number of (cos, sin) pairs per token.</summary>
    public int HalfDim => _dim / 2;

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
            InverseFrequencies(theta, inv);
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
        var cos = new float[n * half];
        var sin = new float[n * half];
        for (int p = 0; p < n; p++)
            for (int i = 0; i < half; i++)
            {
                // float32 products, as HF computes inv_freq ⊗ position in float32 before cos/sin.
                float angle = (float)_invFreq[i] * p;
                cos[p * half + i] = MathF.Cos(angle);
                sin[p * half + i] = MathF.Sin(angle);
            }
        _cos = cos;
        _sin = sin;
        _tablePositions = n;
    }

    private void InverseFrequencies(double theta, Span<double> inv)
    {
        for (int i = 0; i < inv.Length; i++)
            inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / _dim);
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
