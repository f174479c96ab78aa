using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Short float32 vector loops used inside kernels, where TensorPrimitives' span setup would dominate.</summary>
internal static unsafe class VectorOps
{
    /// <summary>Σ a[i]·b[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(float* a, float* b, int n)
    {
        nint i = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            // Two chains halve the FMA latency the loop waits on.
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i <= n - 32; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }
            if (i <= n - 16)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                i += 16;
            }
            s = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }
            if (i <= n - 8)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                i += 8;
            }
            s = Vector256.Sum(acc0 + acc1);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i <= n - 4; i += 4)
                acc += Vector128.Load(a + i) * Vector128.Load(b + i);
            s = Vector128.Sum(acc);
        }
        for (; i < n; i++)
            s += a[i] * b[i];
        return s;
    }

    /// <summary>Widens <paramref name="count"/> weights of dtype <typeparamref name="TW"/> to float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Widen<TW>(byte* src, float* dst, int count) where TW : unmanaged, IWeightType
    {
        nint i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
                TW.Load512(src, i).Store(dst + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 8; i += 8)
                TW.Load256(src, i).Store(dst + i);
        }
        for (; i < count; i++)
            dst[i] = TW.Load(src, i);
    }
}
