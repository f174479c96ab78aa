using System.Runtime.CompilerServices;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Token embedding lookup.</summary>
public static unsafe class Embedding
{
    /// <summary>y[i] = table[tokens[i]] widened to float32.</summary>
    /// <param name="tokens">Token ids; the caller checks them against the vocabulary size.</param>
    /// <param name="count">Tokens.</param>
    /// <param name="tType">Table dtype: F32, BF16 or F16.</param>
    /// <param name="table">[vocab × dim] embedding table in <paramref name="tType"/>.</param>
    /// <param name="dim">Row length.</param>
    /// <param name="y">Output, [count × dim] float32.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gather(int* tokens, int count, DType tType, byte* table, int dim, float* y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        int size = tType.SizeOf();
        for (int i = 0; i < count; i++)
        {
            int token = tokens[i];
            if (token < 0)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, "token ids are non-negative");
            byte* row = table + (nint)token * dim * size;
            float* dst = y + (nint)i * dim;
            switch (tType)
            {
                case DType.F32: Buffer.MemoryCopy(row, dst, (long)dim * 4, (long)dim * 4); break;
                case DType.BF16: VectorOps.Widen<Bf16Weights>(row, dst, dim); break;
                case DType.F16: VectorOps.Widen<F16Weights>(row, dst, dim); break;
                default: throw new NotSupportedException($"Embedding tables of dtype {tType} are not supported.");
            }
        }
    }
}
