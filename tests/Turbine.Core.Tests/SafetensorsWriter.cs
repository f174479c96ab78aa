using System.Text;
using System.Text.Json;

namespace Turbine.Core.Tests;

/// <summary>Writes safetensors files byte by byte, including deliberately broken ones.</summary>
internal static class SafetensorsWriter
{
    public static string TempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "turbine-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A file with <paramref name="header"/> as its JSON header (written verbatim) followed by <paramref name="data"/>.</summary>
    public static void WriteRaw(string path, string header, byte[] data, ulong? headerLengthOverride = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes(headerLengthOverride ?? (ulong)json.Length));
        f.Write(json);
        f.Write(data);
    }

    /// <summary>A well-formed file holding float32 tensors.</summary>
    public static void WriteF32(string path, params (string Name, long[] Shape, float[] Values)[] tensors)
    {
        var header = new Dictionary<string, object>();
        var data = new MemoryStream();
        foreach (var (name, shape, values) in tensors)
        {
            long begin = data.Length;
            foreach (var v in values)
                data.Write(BitConverter.GetBytes(v));
            header[name] = new { dtype = "F32", shape, data_offsets = new[] { begin, data.Length } };
        }
        WriteRaw(path, JsonSerializer.Serialize(header), data.ToArray());
    }
}
