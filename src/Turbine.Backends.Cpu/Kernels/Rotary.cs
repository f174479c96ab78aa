using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>How a head's dimensions are paired for rotation.</summary>
public enum RotaryLayout
{
    /// <summary>HF "rotate_half" (GPT-NeoX): dimension i pairs with i + rotaryDim/2.</summary>
    Neox,
    /// <summary>GPT-J: dimension 2i pairs with 2i + 1.</summary>
    Interleaved,
}

/// <summary>Rotary position embedding applied in place to queries and keys.</summary>
public static unsafe class Rotary
{
    /// <summary>
    /// Rotates q [tokens × numHeads × headDim] and k [tokens × numKvHeads × headDim] in place with
    /// per-token tables cos, sin [tokens × rotaryDim/2]; in the Neox layout
    /// out = (x1·cos − x2·sin, x2·cos + x1·sin) with x1 = x[:d/2], x2 = x[d/2:].
    /// </summary>
    /// <param name="q">Queries, updated in place.</param>
    /// <param name="k">Keys, updated in place; may be null to rotate q only.</param>
    /// <param name="tokens">Tokens.</param>
    /// <param name="numHeads">Query heads.</param>
    /// <param name="numKvHeads">Key heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="cos">[tokens × rotaryDim/2] cosines.</param>
    /// <param name="sin">[tokens × rotaryDim/2] sines.</param>
    /// <param name="layout">Pairing of dimensions.</param>
    /// <param name="rotaryDim">Leading dimensions of each head that rotate (partial rotary); 0 means headDim.</param>
    public static void Apply(float* q, float* k, int tokens, int numHeads, int numKvHeads, int headDim,
        float* cos, float* sin, RotaryLayout layout = RotaryLayout.Neox, int rotaryDim = 0)
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
                RotateHead(q + ((nint)t * numHeads + h) * headDim, c, s, half, layout);
            if (k != null)
            {
                for (int h = 0; h < numKvHeads; h++)
                    RotateHead(k + ((nint)t * numKvHeads + h) * headDim, c, s, half, layout);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateHead(float* x, float* cos, float* sin, int half, RotaryLayout layout)
    {
        if (layout == RotaryLayout.Neox)
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
        else
        {
            for (int i = 0; i < half; i++)
            {
                float a = x[2 * i], b = x[2 * i + 1];
                x[2 * i] = a * cos[i] - b * sin[i];
                x[2 * i + 1] = b * cos[i] + a * sin[i];
            }
        }
    }
}
