using System.Numerics.Tensors;

namespace Turbine.Engine.Sampling;

/// <summary>
/// Picks a token from one row of logits under <see cref="SamplingOptions"/>: argmax, or temperature, top-k and
/// top-p (nucleus) sampling from its own seeded random stream. Scratch space is sized once for the vocabulary.
/// </summary>
public sealed class TokenSampler
{
    private readonly SamplingOptions _options;
    private readonly Random _random;
    private readonly float[] _probs;
    private readonly int[] _order;
    private readonly float[] _keys;

    /// <summary>A sampler for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public TokenSampler(SamplingOptions options, int vocabSize)
    {
        _options = options;
        _random = options.Seed is { } seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
        _probs = options.IsGreedy ? [] : new float[vocabSize];
        _order = options.IsGreedy ? [] : new int[vocabSize];
        _keys = options.IsGreedy ? [] : new float[vocabSize];
    }

    /// <summary>The first index of the largest logit, as torch.argmax picks it.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => TensorPrimitives.IndexOfMax(logits);

    /// <summary>Chooses the next token.</summary>
    public int Sample(ReadOnlySpan<float> logits)
    {
        if (_options.IsGreedy)
            return ArgMax(logits);
        int n = logits.Length;
        var probs = _probs.AsSpan(0, n);
        TensorPrimitives.Divide(logits, _options.Temperature, probs);
        TensorPrimitives.SoftMax(probs, probs);
        var order = _order.AsSpan(0, n);
        for (int i = 0; i < n; i++)
            order[i] = i;
        int kept = n;
        if (_options.TopK > 0 && _options.TopK < n)
            kept = _options.TopK;
        // Candidates by descending probability: sort negated copies as keys, carrying the ids along.
        var p = _probs;
        var keys = _keys.AsSpan(0, n);
        TensorPrimitives.Negate(probs, keys);
        keys.Sort(order);
        if (_options.TopP < 1f)
        {
            float cumulative = 0f;
            for (int i = 0; i < kept; i++)
            {
                cumulative += p[order[i]];
                if (cumulative >= _options.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }
        }
        float total = 0f;
        for (int i = 0; i < kept; i++)
            total += p[order[i]];
        float r = (float)_random.NextDouble() * total;
        for (int i = 0; i < kept; i++)
        {
            r -= p[order[i]];
            if (r <= 0f)
                return order[i];
        }
        return order[kept - 1];
    }
}
