namespace Turbine.Server.Models;

/// <summary>
/// A named tensor of an inference request or response, as KServe v2 describes one: a datatype name
/// (BOOL, INT32, FP32, BYTES ...), a shape, and its elements in row-major order in a typed array
/// (bool[], int[], long[], uint[], ulong[], float[], double[], or string[] for BYTES).
/// </summary>
public sealed class InferTensor
{
    /// <summary>Creates a tensor; <paramref name="data"/>'s length must be the product of <paramref name="shape"/>.</summary>
    public InferTensor(string name, string dataType, long[] shape, Array data)
    {
        Name = name;
        DataType = dataType;
        Shape = shape;
        Data = data;
    }

    /// <summary>The tensor's name.</summary>
    public string Name { get; }
    /// <summary>KServe v2 datatype name.</summary>
    public string DataType { get; }
    /// <summary>Dimensions.</summary>
    public long[] Shape { get; }
    /// <summary>Elements, row-major.</summary>
    public Array Data { get; }

    /// <summary>Number of elements.</summary>
    public int Count => Data.Length;

    /// <summary>A [1, n] INT32 tensor.</summary>
    public static InferTensor Int32(string name, int[] values) => new(name, DataTypes.Int32, [1, values.Length], values);
    /// <summary>A [1, n] FP32 tensor.</summary>
    public static InferTensor Fp32(string name, float[] values, params long[] shape) => new(name, DataTypes.Fp32, shape.Length > 0 ? shape : [1, values.Length], values);
    /// <summary>A [1, 1] BYTES tensor holding one string.</summary>
    public static InferTensor Text(string name, string value) => new(name, DataTypes.Bytes, [1, 1], new[] { value });

    /// <summary>Element <paramref name="i"/> as a 64-bit integer (numeric and boolean tensors).</summary>
    public long GetInt64(int i) => Data switch
    {
        int[] a => a[i],
        long[] a => a[i],
        uint[] a => a[i],
        ulong[] a => unchecked((long)a[i]),
        bool[] a => a[i] ? 1 : 0,
        float[] a => (long)a[i],
        double[] a => (long)a[i],
        _ => throw new InferenceException(InferenceError.InvalidArgument, $"input '{Name}' must be numeric, not {DataType}"),
    };

    /// <summary>Element <paramref name="i"/> as a double (numeric and boolean tensors).</summary>
    public double GetDouble(int i) => Data switch
    {
        float[] a => a[i],
        double[] a => a[i],
        int[] a => a[i],
        long[] a => a[i],
        uint[] a => a[i],
        ulong[] a => a[i],
        bool[] a => a[i] ? 1 : 0,
        _ => throw new InferenceException(InferenceError.InvalidArgument, $"input '{Name}' must be numeric, not {DataType}"),
    };

    /// <summary>Element <paramref name="i"/> of a BYTES tensor.</summary>
    public string GetString(int i) => Data is string[] s
        ? s[i]
        : throw new InferenceException(InferenceError.InvalidArgument, $"input '{Name}' must be BYTES, not {DataType}");

    /// <summary>All elements as 32-bit integers.</summary>
    public int[] ToInt32Array()
    {
        if (Data is int[] ints)
            return ints;
        var result = new int[Count];
        for (int i = 0; i < result.Length; i++)
            result[i] = checked((int)GetInt64(i));
        return result;
    }
}

/// <summary>KServe v2 datatype names and their element types.</summary>
public static class DataTypes
{
    /// <summary>Boolean.</summary>
    public const string Bool = "BOOL";
    /// <summary>32-bit signed integer.</summary>
    public const string Int32 = "INT32";
    /// <summary>64-bit signed integer.</summary>
    public const string Int64 = "INT64";
    /// <summary>32-bit unsigned integer.</summary>
    public const string UInt32 = "UINT32";
    /// <summary>64-bit unsigned integer.</summary>
    public const string UInt64 = "UINT64";
    /// <summary>32-bit float.</summary>
    public const string Fp32 = "FP32";
    /// <summary>64-bit float.</summary>
    public const string Fp64 = "FP64";
    /// <summary>Byte strings (text here).</summary>
    public const string Bytes = "BYTES";

    /// <summary>Bytes per element in the binary tensor format; 0 for BYTES (length-prefixed) and unsupported types.</summary>
    public static int ElementSize(string dataType) => dataType switch
    {
        Bool => 1,
        Int32 or UInt32 or Fp32 => 4,
        Int64 or UInt64 or Fp64 => 8,
        _ => 0,
    };

    /// <summary>True for the datatypes this server carries.</summary>
    public static bool IsSupported(string dataType) => dataType is Bool or Int32 or Int64 or UInt32 or UInt64 or Fp32 or Fp64 or Bytes;

    /// <summary>A zeroed array of <paramref name="count"/> elements of <paramref name="dataType"/>.</summary>
    public static Array Allocate(string dataType, int count) => dataType switch
    {
        Bool => new bool[count],
        Int32 => new int[count],
        Int64 => new long[count],
        UInt32 => new uint[count],
        UInt64 => new ulong[count],
        Fp32 => new float[count],
        Fp64 => new double[count],
        Bytes => new string[count],
        _ => throw new InferenceException(InferenceError.InvalidArgument, $"datatype '{dataType}' is not supported"),
    };

    /// <summary>Triton's model-config spelling (TYPE_INT32, TYPE_STRING ...).</summary>
    public static string ConfigName(string dataType) => dataType == Bytes ? "TYPE_STRING" : "TYPE_" + dataType;
}
