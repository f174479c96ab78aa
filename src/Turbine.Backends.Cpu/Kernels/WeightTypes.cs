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

    /// <summary>True when <see cref="LoadPairs512"/> splits even and odd elements, so x must be permuted to match.</summary>
    static abstract bool Paired { get; }

    /// <summary>
    /// Elements i .. i+31 as two vectors: for 16-bit types the even and the odd elements (one 64-byte
    /// load, no widening shuffles), for float32 simply the first and the second sixteen.
    /// </summary>
    static abstract void LoadPairs512(byte* row, nint i, out Vector512<float> first, out Vector512<float> second);

    /// <summary>Elements i .. i+15 as two vectors, split like <see cref="LoadPairs512"/>.</summary>
    static abstract void LoadPairs256(byte* row, nint i, out Vector256<float> first, out Vector256<float> second);
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

    public static bool Paired => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs512(byte* row, nint i, out Vector512<float> first, out Vector512<float> second)
    {
        first = Vector512.Load((float*)row + i);
        second = Vector512.Load((float*)row + i + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs256(byte* row, nint i, out Vector256<float> first, out Vector256<float> second)
    {
        first = Vector256.Load((float*)row + i);
        second = Vector256.Load((float*)row + i + 8);
    }
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

    public static bool Paired => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs512(byte* row, nint i, out Vector512<float> first, out Vector512<float> second)
    {
        // Each 32-bit lane holds an even element in its low half and an odd one in its high half.
        var v = Vector512.Load((uint*)((ushort*)row + i));
        first = Vector512.ShiftLeft(v, 16).AsSingle();
        second = (v & Vector512.Create(0xFFFF_0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs256(byte* row, nint i, out Vector256<float> first, out Vector256<float> second)
    {
        var v = Vector256.Load((uint*)((ushort*)row + i));
        first = Vector256.ShiftLeft(v, 16).AsSingle();
        second = (v & Vector256.Create(0xFFFF_0000u)).AsSingle();
    }
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

    public static bool Paired => true;

    // A binary16 in the top half of a lane, shifted right arithmetically by 3 and masked, is sign,
    // 5-bit exponent and mantissa in float32 position; the multiply by 2^112 then finishes the job.
    private const uint PairMask = 0x8FFF_E000;
    // Magnitude bits of such a lane shifted up by 4: at or above this the binary16 was Inf or NaN.
    private const uint SpecialShifted = 0xF800_0000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs512(byte* row, nint i, out Vector512<float> first, out Vector512<float> second)
    {
        var v = Vector512.Load((int*)((ushort*)row + i));
        var odd = Vector512.ShiftRightArithmetic(v, 3).AsUInt32() & Vector512.Create(PairMask);
        var even = Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(v, 16), 3).AsUInt32() & Vector512.Create(PairMask);
        var scale = Vector512.Create(Rebias).AsSingle();
        var inf = Vector512.Create(0x7F80_0000u);
        first = ((even.AsSingle() * scale).AsUInt32()
            | (Vector512.GreaterThanOrEqual(Vector512.ShiftLeft(even, 4), Vector512.Create(SpecialShifted)) & inf)).AsSingle();
        second = ((odd.AsSingle() * scale).AsUInt32()
            | (Vector512.GreaterThanOrEqual(Vector512.ShiftLeft(odd, 4), Vector512.Create(SpecialShifted)) & inf)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadPairs256(byte* row, nint i, out Vector256<float> first, out Vector256<float> second)
    {
        var v = Vector256.Load((int*)((ushort*)row + i));
        var odd = Vector256.ShiftRightArithmetic(v, 3).AsUInt32() & Vector256.Create(PairMask);
        var even = Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(v, 16), 3).AsUInt32() & Vector256.Create(PairMask);
        var scale = Vector256.Create(Rebias).AsSingle();
        var inf = Vector256.Create(0x7F80_0000u);
        first = ((even.AsSingle() * scale).AsUInt32()
            | (Vector256.GreaterThanOrEqual(Vector256.ShiftLeft(even, 4), Vector256.Create(SpecialShifted)) & inf)).AsSingle();
        second = ((odd.AsSingle() * scale).AsUInt32()
            | (Vector256.GreaterThanOrEqual(Vector256.ShiftLeft(odd, 4), Vector256.Create(SpecialShifted)) & inf)).AsSingle();
    }
}
