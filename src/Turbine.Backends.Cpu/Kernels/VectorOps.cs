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
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc);
            s = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            s = Vector256.Sum(acc);
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

    /// <summary>y[i] += a·x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MultiplyAdd(float a, float* x, float* y, int n)
    {
        nint i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var av = Vector512.Create(a);
            for (; i <= n - 16; i += 16)
                Vector512.FusedMultiplyAdd(av, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var av = Vector256.Create(a);
            for (; i <= n - 8; i += 8)
                Vector256.FusedMultiplyAdd(av, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var av = Vector128.Create(a);
            for (; i <= n - 4; i += 4)
                (Vector128.Load(y + i) + av * Vector128.Load(x + i)).Store(y + i);
        }
        for (; i < n; i++)
            y[i] += a * x[i];
    }

    /// <summary>x[i] *= a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scale(float a, float* x, int n)
    {
        nint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var av = Vector256.Create(a);
            for (; i <= n - 8; i += 8)
                (Vector256.Load(x + i) * av).Store(x + i);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var av = Vector128.Create(a);
            for (; i <= n - 4; i += 4)
                (Vector128.Load(x + i) * av).Store(x + i);
        }
        for (; i < n; i++)
            x[i] *= a;
    }

    /// <summary>Widens <paramref name="count"/> weights of dtype <typeparamref name="TW"/> to float32.</summary>
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
