using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Element-wise activation kernels.</summary>
public static unsafe class Activations
{
    // Sigmoid goes through a stack buffer of this size so that y may alias gate or up.
    private const int Chunk = 1024;

    /// <summary>y = silu(gate) * up with silu(x) = x / (1 + exp(−x)): the SwiGLU MLP gate.</summary>
    /// <param name="gate">Gate projection, float32.</param>
    /// <param name="up">Up projection, float32.</param>
    /// <param name="y">Output, float32; may be gate or up.</param>
    /// <param name="count">Elements.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SiluMul(float* gate, float* up, float* y, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        float* tmp = stackalloc float[Chunk];
        for (int i = 0; i < count; i += Chunk)
        {
            int c = Math.Min(Chunk, count - i);
            var t = new Span<float>(tmp, c);
            var g = new ReadOnlySpan<float>(gate + i, c);
            TensorPrimitives.Sigmoid(g, t);
            TensorPrimitives.Multiply(t, g, t);
            TensorPrimitives.Multiply(t, new ReadOnlySpan<float>(up + i, c), new Span<float>(y + i, c));
        }
    }

    /// <summary>y = a + b element-wise.</summary>
    /// <param name="a">First operand.</param>
    /// <param name="b">Second operand.</param>
    /// <param name="y">Output; may be a or b.</param>
    /// <param name="count">Elements.</param>
    public static void Add(float* a, float* b, float* y, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        TensorPrimitives.Add(new ReadOnlySpan<float>(a, count), new ReadOnlySpan<float>(b, count), new Span<float>(y, count));
    }
}
