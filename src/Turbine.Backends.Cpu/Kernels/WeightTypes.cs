using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>
/// Loads checkpoint-dtype weights as float32 vectors, widening in registers. Kernels are generic over
/// a struct implementing this so the JIT emits one specialised loop per dtype.
/// </summary>
internal unsafe interface IWeightType
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>Elements i .. i+15 of <paramref name="row"/>.</summary>
    static abstract Vector512<float> Load512(byte* row, nint i);

    /// <summary>Elements i .. i+7 of <paramref name="row"/>.</summary>
    static abstract Vector256<float> Load256(byte* row, nint i);

    /// <summary>Element i of <paramref name="row"/>.</summary>
    static abstract float Load(byte* row, nint i);
}

/// <summary>float32 weights.</summary>
internal readonly unsafe struct F32Weights : IWeightType
{
    public static int Size => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, nint i) => Vector512.Load((float*)row + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, nint i) => Vector256.Load((float*)row + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, nint i) => ((float*)row)[i];
}

/// <summary>bfloat16 weights: the upper half of a float32, so widening is a zero-extend and a 16-bit shift.</summary>
internal readonly unsafe struct Bf16Weights : IWeightType
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, nint i)
    {
        var h = Vector256.Load((ushort*)row + i);
        var u = Avx512F.IsSupported ? Avx512F.ConvertToVector512UInt32(h) : Vector512.WidenLower(h.ToVector512Unsafe());
        return Vector512.ShiftLeft(u, 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, nint i)
    {
        var h = Vector128.Load((ushort*)row + i);
        var u = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h).AsUInt32() : Vector256.WidenLower(h.ToVector256Unsafe());
        return Vector256.ShiftLeft(u, 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, nint i) => BitConverter.Int32BitsToSingle(((ushort*)row)[i] << 16);
}

/// <summary>
/// IEEE binary16 weights. .NET exposes no vcvtph2ps, so vectors are widened with exact integer
/// arithmetic: shifting the magnitude into float32 position and multiplying by 2^112 rebiases the
/// exponent and handles subnormals; infinities and NaNs get the exponent forced to all ones.
/// </summary>
internal readonly unsafe struct F16Weights : IWeightType
{
    private const uint Rebias = 0x7780_0000; // 2^112 as float32 bits

    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, nint i)
    {
        var h = Vector256.Load((ushort*)row + i);
        var u = Avx512F.IsSupported ? Avx512F.ConvertToVector512UInt32(h) : Vector512.WidenLower(h.ToVector512Unsafe());
        var mag = u & Vector512.Create(0x7FFFu);
        var f = Vector512.ShiftLeft(mag, 13).AsSingle() * Vector512.Create(Rebias).AsSingle();
        var special = Vector512.GreaterThanOrEqual(mag, Vector512.Create(0x7C00u)) & Vector512.Create(0x7F80_0000u);
        var sign = Vector512.ShiftLeft(u & Vector512.Create(0x8000u), 16);
        return (f.AsUInt32() | special | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, nint i)
    {
        var h = Vector128.Load((ushort*)row + i);
        var u = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h).AsUInt32() : Vector256.WidenLower(h.ToVector256Unsafe());
        var mag = u & Vector256.Create(0x7FFFu);
        var f = Vector256.ShiftLeft(mag, 13).AsSingle() * Vector256.Create(Rebias).AsSingle();
        var special = Vector256.GreaterThanOrEqual(mag, Vector256.Create(0x7C00u)) & Vector256.Create(0x7F80_0000u);
        var sign = Vector256.ShiftLeft(u & Vector256.Create(0x8000u), 16);
        return (f.AsUInt32() | special | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, nint i) => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[i]);
}
