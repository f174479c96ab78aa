using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>Tensors to and from KServe v2 JSON: flat or nested data arrays, BYTES as strings, and the binary tensor extension.</summary>
public static class TensorJson
{
    /// <summary>Writer options: text such as Chinese stays readable, as tritonserver writes it.</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Parses the elements of <paramref name="data"/> (a flat or nested array, or a scalar) as <paramref name="dataType"/>.</summary>
    public static Array ReadData(string name, string dataType, JsonElement data, int expected)
    {
        var array = DataTypes.Allocate(dataType, expected);
        int count = 0;
        Fill(name, dataType, data, array, ref count);
        if (count != expected)
            throw Invalid($"unexpected number of elements for input '{name}': shape implies {expected}, data has {count}");
        return array;
    }

    private static void Fill(string name, string dataType, JsonElement e, Array array, ref int count)
    {
        if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in e.EnumerateArray())
                Fill(name, dataType, item, array, ref count);
            return;
        }
        if (count >= array.Length)
        {
            count++;
            return;
        }
        try
        {
            switch (array)
            {
                case string[] s when e.ValueKind == JsonValueKind.String: s[count] = e.GetString()!; break;
                case bool[] b when e.ValueKind is JsonValueKind.True or JsonValueKind.False: b[count] = e.GetBoolean(); break;
                case int[] i when e.ValueKind == JsonValueKind.Number: i[count] = e.GetInt32(); break;
                case long[] l when e.ValueKind == JsonValueKind.Number: l[count] = e.GetInt64(); break;
                case uint[] u when e.ValueKind == JsonValueKind.Number: u[count] = e.GetUInt32(); break;
                case ulong[] u when e.ValueKind == JsonValueKind.Number: u[count] = e.GetUInt64(); break;
                case float[] f when e.ValueKind == JsonValueKind.Number: f[count] = e.GetSingle(); break;
                case double[] d when e.ValueKind == JsonValueKind.Number: d[count] = e.GetDouble(); break;
                default: throw Invalid($"input '{name}' expects {dataType} values, got {Describe(e)}");
            }
        }
        catch (FormatException)
        {
            throw Invalid($"input '{name}' expects {dataType} values, got {e.GetRawText()}");
        }
        count++;
    }

    /// <summary>
    /// A generate-extension value (a scalar or an array) as a tensor of <paramref name="spec"/>'s datatype, with a
    /// batch dimension of 1.
    /// </summary>
    public static InferTensor FromGenerateValue(TensorSpec spec, JsonElement value)
    {
        int count = value.ValueKind == JsonValueKind.Array ? CountLeaves(value) : 1;
        var data = ReadData(spec.Name, spec.DataType, value, count);
        return new InferTensor(spec.Name, spec.DataType, [1, count], data);
    }

    private static int CountLeaves(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Array)
            return 1;
        int n = 0;
        foreach (var item in e.EnumerateArray())
            n += CountLeaves(item);
        return n;
    }

    /// <summary>Decodes binary tensor data (little-endian elements; BYTES as 4-byte length-prefixed strings).</summary>
    public static Array ReadBinary(string name, string dataType, ReadOnlySpan<byte> bytes, int expected)
    {
        var array = DataTypes.Allocate(dataType, expected);
        if (array is string[] strings)
        {
            int at = 0;
            for (int i = 0; i < expected; i++)
            {
                if (bytes.Length - at < 4)
                    throw Invalid($"binary data for input '{name}' ends before element {i}");
                int length = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
                at += 4;
                if (length < 0 || length > bytes.Length - at)
                    throw Invalid($"binary data for input '{name}' has a string of {length} bytes past its end");
                strings[i] = Encoding.UTF8.GetString(bytes.Slice(at, length));
                at += length;
            }
            if (at != bytes.Length)
                throw Invalid($"binary data for input '{name}' has {bytes.Length - at} bytes beyond its {expected} elements");
            return strings;
        }
        int size = DataTypes.ElementSize(dataType);
        if (bytes.Length != (long)size * expected)
            throw Invalid($"unexpected size for input '{name}': shape and {dataType} imply {(long)size * expected} bytes, got {bytes.Length}");
        switch (array)
        {
            case bool[] b: for (int i = 0; i < expected; i++) b[i] = bytes[i] != 0; break;
            default: bytes.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(SpanOf(array))); break;
        }
        return array;
    }

    /// <summary>The binary form of <paramref name="tensor"/>'s elements.</summary>
    public static byte[] ToBinary(InferTensor tensor)
    {
        switch (tensor.Data)
        {
            case string[] strings:
            {
                var stream = new MemoryStream();
                Span<byte> prefix = stackalloc byte[4];
                foreach (var s in strings)
                {
                    var bytes = Encoding.UTF8.GetBytes(s);
                    BinaryPrimitives.WriteInt32LittleEndian(prefix, bytes.Length);
                    stream.Write(prefix);
                    stream.Write(bytes);
                }
                return stream.ToArray();
            }
            case bool[] b:
                return [.. b.Select(v => v ? (byte)1 : (byte)0)];
            default:
                return System.Runtime.InteropServices.MemoryMarshal.AsBytes(SpanOf(tensor.Data)).ToArray();
        }
    }

    private static Span<byte> SpanOf(Array array) => array switch
    {
        int[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        long[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        uint[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        ulong[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        float[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        double[] a => System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()),
        _ => throw new ArgumentException("not a numeric array", nameof(array)),
    };

    /// <summary>Writes the elements of <paramref name="tensor"/> as a flat JSON array.</summary>
    public static void WriteData(Utf8JsonWriter w, InferTensor tensor)
    {
        w.WriteStartArray();
        WriteElements(w, tensor);
        w.WriteEndArray();
    }

    /// <summary>
    /// Writes a tensor as the generate extension does: a single element as a scalar, otherwise a flat array.
    /// </summary>
    public static void WriteGenerateValue(Utf8JsonWriter w, InferTensor tensor)
    {
        if (tensor.Count == 1)
            WriteElements(w, tensor);
        else
            WriteData(w, tensor);
    }

    private static void WriteElements(Utf8JsonWriter w, InferTensor tensor)
    {
        switch (tensor.Data)
        {
            case string[] a: foreach (var v in a) w.WriteStringValue(v); break;
            case bool[] a: foreach (var v in a) w.WriteBooleanValue(v); break;
            case int[] a: foreach (var v in a) w.WriteNumberValue(v); break;
            case long[] a: foreach (var v in a) w.WriteNumberValue(v); break;
            case uint[] a: foreach (var v in a) w.WriteNumberValue(v); break;
            case ulong[] a: foreach (var v in a) w.WriteNumberValue(v); break;
            case float[] a: foreach (var v in a) w.WriteNumberValue(Finite(v)); break;
            case double[] a: foreach (var v in a) w.WriteNumberValue(double.IsFinite(v) ? v : Finite((float)v)); break;
            default: throw new InvalidOperationException($"tensor '{tensor.Name}' holds {tensor.Data.GetType().Name}");
        }
    }

    // JSON has no infinities; a log probability of -inf is written as the most negative float, as Python's json would not.
    private static float Finite(float v) => float.IsFinite(v) ? v : float.IsNaN(v) ? 0f : v > 0 ? float.MaxValue : float.MinValue;

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"the string {e.GetRawText()}",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {e.GetRawText()}",
        JsonValueKind.Object => "an object",
        _ => e.ValueKind.ToString().ToLowerInvariant(),
    };

    private static InferenceException Invalid(string message) => new(InferenceError.InvalidArgument, message);
}
