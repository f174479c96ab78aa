using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Root-mean-square layer norm, computed in float32 as HF LlamaRMSNorm does.</summary>
public static unsafe class RmsNorm
{
    // Weights are widened this many at a time into a stack buffer, so any dim works without allocation.
    private const int Chunk = 512;

    /// <summary>y = w * (x * rsqrt(mean(x²) + eps)) for every row.</summary>
    /// <param name="x">Input, [rows×dim] float32.</param>
    /// <param name="rows">Rows (tokens).</param>
    /// <param name="dim">Row length.</param>
    /// <param name="wType">Weight dtype: F32, BF16 or F16.</param>
    /// <param name="weight">[dim] weights in <paramref name="wType"/>.</param>
    /// <param name="eps">Added to the mean square.</param>
    /// <param name="y">Output, [rows×dim] float32; may be x.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(float* x, int rows, int dim, DType wType, byte* weight, float eps, float* y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (nint)r * dim;
            float ss = TensorPrimitives.SumOfSquares(new ReadOnlySpan<float>(xr, dim));
            Normalize(xr, ss, dim, wType, weight, eps, y + (nint)r * dim);
        }
    }

    /// <summary>residual += delta, then y = RmsNorm(residual): the residual connection fused with the next norm.</summary>
    /// <param name="residual">Residual stream, [rows×dim] float32, updated in place.</param>
    /// <param name="delta">Sub-layer output to add, [rows×dim] float32.</param>
    /// <param name="rows">Rows (tokens).</param>
    /// <param name="dim">Row length.</param>
    /// <param name="wType">Weight dtype: F32, BF16 or F16.</param>
    /// <param name="weight">[dim] weights in <paramref name="wType"/>.</param>
    /// <param name="eps">Added to the mean square.</param>
    /// <param name="y">Output, [rows×dim] float32; may be delta.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddAndNorm(float* residual, float* delta, int rows, int dim, DType wType, byte* weight, float eps, float* y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        for (int r = 0; r < rows; r++)
        {
            var res = new Span<float>(residual + (nint)r * dim, dim);
            TensorPrimitives.Add(res, new ReadOnlySpan<float>(delta + (nint)r * dim, dim), res);
            float ss = TensorPrimitives.SumOfSquares(res);
            Normalize(residual + (nint)r * dim, ss, dim, wType, weight, eps, y + (nint)r * dim);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Normalize(float* x, float sumOfSquares, int dim, DType wType, byte* weight, float eps, float* y)
    {
        float inv = 1f / MathF.Sqrt(sumOfSquares / dim + eps);
        float* w = stackalloc float[Chunk];
        int size = wType.SizeOf();
        for (int i = 0; i < dim; i += Chunk)
        {
            int c = Math.Min(Chunk, dim - i);
            switch (wType)
            {
                case DType.F32: Buffer.MemoryCopy(weight + i * 4, w, Chunk * 4, c * 4); break;
                case DType.BF16: VectorOps.Widen<Bf16Weights>(weight + i * size, w, c); break;
                case DType.F16: VectorOps.Widen<F16Weights>(weight + i * size, w, c); break;
                default: throw new NotSupportedException($"RmsNorm weights of dtype {wType} are not supported.");
            }
            // HF order: normalise first, then scale by the weight.
            var yc = new Span<float>(y + i, c);
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(x + i, c), inv, yc);
            TensorPrimitives.Multiply(yc, new ReadOnlySpan<float>(w, c), yc);
        }
    }
}
