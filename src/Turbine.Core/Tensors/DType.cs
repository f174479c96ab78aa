namespace Turbine.Core.Tensors;

/// <summary>Element types of checkpoint tensors, named as safetensors names them.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    F32,
    /// <summary>IEEE 754 binary16.</summary>
    F16,
    /// <summary>bfloat16: the upper half of a binary32.</summary>
    BF16,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>8-bit float with 4 exponent and 3 mantissa bits, no infinities (OCP FP8 E4M3FN).</summary>
    F8E4M3,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.I8 or DType.U8 or DType.F8E4M3 => 1,
        DType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    /// <summary>Parses a safetensors dtype name ("F32", "BF16", "F8_E4M3" ...); null when unsupported.</summary>
    public static DType? Parse(string name) => name switch
    {
        "F32" => DType.F32,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "I8" => DType.I8,
        "U8" => DType.U8,
        "I32" => DType.I32,
        "I64" => DType.I64,
        "F8_E4M3" => DType.F8E4M3,
        _ => null,
    };

    /// <summary>The safetensors name of a dtype.</summary>
    public static string Name(this DType t) => t == DType.F8E4M3 ? "F8_E4M3" : t.ToString();
}
