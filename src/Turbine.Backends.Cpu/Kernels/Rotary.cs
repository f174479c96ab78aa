using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Turbine.Core.Models;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Rotary position embedding applied in place to queries and keys.</summary>
public static unsafe class Rotary
{
    /// <summary>
    /// Rotates q [tokens × numHeads × headDim] and k [tokens × numKvHeads × headDim] in place with
    /// per-token tables cos, sin [tokens × rotaryDim/2]: pair i = (x1, x2) of a head becomes
    /// (x1·cos[i] − x2·sin[i], x2·cos[i] + x1·sin[i]), with x1 = x[i], x2 = x[i + rotaryDim/2] in the Neox style and
    /// x1 = x[2i], x2 = x[2i + 1] in the interleaved one. Dimensions from rotaryDim on are left unchanged.
    /// </summary>
    /// <param name="q">Queries, updated in place.</param>
    /// <param name="k">Keys, updated in place; may be null to rotate q only.</param>
    /// <param name="tokens">Tokens.</param>
    /// <param name="numHeads">Query heads.</param>
    /// <param name="numKvHeads">Key heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="cos">[tokens × rotaryDim/2] cosines.</param>
    /// <param name="sin">[tokens × rotaryDim/2] sines.</param>
    /// <param name="style">Pairing of dimensions.</param>
    /// <param name="rotaryDim">Leading dimensions of each head that rotate (partial rotary); 0 means headDim.</param>
    public static void Apply(float* q, float* k, int tokens, int numHeads, int numKvHeads, int headDim,
        float* cos, float* sin, RotaryStyle style = RotaryStyle.Neox, int rotaryDim = 0)
    {
        if (rotaryDim == 0)
            rotaryDim = headDim;
        if (rotaryDim < 0 || rotaryDim > headDim || (rotaryDim & 1) != 0)
            throw new ArgumentOutOfRangeException(nameof(rotaryDim), rotaryDim, "must be even and at most headDim");
        int half = rotaryDim / 2;
        for (int t = 0; t < tokens; t++)
        {
            float* c = cos + (nint)t * half;
            float* s = sin + (nint)t * half;
            for (int h = 0; h < numHeads; h++)
                RotateHead(q + ((nint)t * numHeads + h) * headDim, c, s, half, style);
            if (k != null)
            {
                for (int h = 0; h < numKvHeads; h++)
                    RotateHead(k + ((nint)t * numKvHeads + h) * headDim, c, s, half, style);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RotateHead(float* x, float* cos, float* sin, int half, RotaryStyle style)
    {
        if (style == RotaryStyle.Neox)
            RotateNeox(x, cos, sin, half);
        else
            RotateInterleaved(x, cos, sin, half);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateNeox(float* x, float* cos, float* sin, int half)
    {
        float* x2 = x + half;
        nint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= half - 8; i += 8)
            {
                var a = Vector256.Load(x + i);
                var b = Vector256.Load(x2 + i);
                var c = Vector256.Load(cos + i);
                var s = Vector256.Load(sin + i);
                (a * c - b * s).Store(x + i);
                (b * c + a * s).Store(x2 + i);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= half - 4; i += 4)
            {
                var a = Vector128.Load(x + i);
                var b = Vector128.Load(x2 + i);
                var c = Vector128.Load(cos + i);
                var s = Vector128.Load(sin + i);
                (a * c - b * s).Store(x + i);
                (b * c + a * s).Store(x2 + i);
            }
        }
        for (; i < half; i++)
        {
            float a = x[i], b = x2[i];
            x[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }

    // Pairs (2i, 2i + 1): a vector of x holds whole pairs, so each cos/sin value is duplicated into both lanes of its
    // pair, and the pair's partner comes from swapping neighbouring lanes. x1·cos − x2·sin is computed as
    // x1·cos + x2·(−sin), which rounds the same, so the vector paths agree with the scalar tail bit for bit.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateInterleaved(float* x, float* cos, float* sin, int half)
    {
        nint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= half - 8; i += 8)
            {
                var c = Vector256.Load(cos + i);
                var s = Vector256.Load(sin + i);
                var low = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
                var high = Vector256.Create(4, 4, 5, 5, 6, 6, 7, 7);
                Rotate256(x + 2 * i, Vector256.Shuffle(c, low), Vector256.Shuffle(s, low));
                Rotate256(x + 2 * i + 8, Vector256.Shuffle(c, high), Vector256.Shuffle(s, high));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= half - 4; i += 4)
            {
                var c = Vector128.Load(cos + i);
                var s = Vector128.Load(sin + i);
                var low = Vector128.Create(0, 0, 1, 1);
                var high = Vector128.Create(2, 2, 3, 3);
                Rotate128(x + 2 * i, Vector128.Shuffle(c, low), Vector128.Shuffle(s, low));
                Rotate128(x + 2 * i + 4, Vector128.Shuffle(c, high), Vector128.Shuffle(s, high));
            }
        }
        for (; i < half; i++)
        {
            float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * cos[i] - b * sin[i];
            x[2 * i + 1] = b * cos[i] + a * sin[i];
        }
    }

    // The pairs of one vector at x (four in 256 bits, two in 128), with c and s holding each pair's cos and sin in both its lanes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rotate256(float* x, Vector256<float> c, Vector256<float> s)
    {
        var v = Vector256.Load(x);
        var partner = Vector256.Shuffle(v, Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6));
        (v * c + partner * (s * Vector256.Create(-1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f))).Store(x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rotate128(float* x, Vector128<float> c, Vector128<float> s)
    {
        var v = Vector128.Load(x);
        var partner = Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2));
        (v * c + partner * (s * Vector128.Create(-1f, 1f, -1f, 1f))).Store(x);
    }
}
