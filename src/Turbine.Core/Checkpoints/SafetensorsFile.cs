using System.IO.MemoryMappedFiles;
using System.Text.Json;
using Turbine.Core.Tensors;

namespace Turbine.Core.Checkpoints;

/// <summary>
/// A .safetensors file mapped into memory: an 8-byte little-endian header length, a JSON header of
/// {name: {dtype, shape, data_offsets}}, then the data. Tensors are views into the map; nothing is copied.
/// Every offset and size is checked against the file before any tensor is handed out.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly Dictionary<string, TensorSlice> _tensors = new(StringComparer.Ordinal);

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePtr;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Names of the tensors in the file, in header order.</summary>
    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;

    /// <summary>Metadata strings from the header's __metadata__ entry.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();

    /// <summary>Maps and validates <paramref name="path"/>; throws <see cref="CheckpointException"/> on any inconsistency.</summary>
    public static SafetensorsFile Open(string path)
    {
        long length;
        try
        {
            length = new FileInfo(path).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, null, $"cannot read: {e.Message}", e);
        }
        if (!File.Exists(path))
            throw new CheckpointException(path, null, "file not found");
        if (length < 8)
            throw new CheckpointException(path, null, $"truncated: {length} bytes, shorter than the 8-byte header length");

        MemoryMappedFile map;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, null, $"cannot map: {e.Message}", e);
        }
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* ptr = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref ptr);
        ptr += view.PointerOffset;
        var file = new SafetensorsFile(path, map, view, ptr);
        try
        {
            file.ReadHeader(length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
        return file;
    }

    /// <summary>The tensor called <paramref name="name"/>, or false.</summary>
    public bool TryGet(string name, out TensorSlice tensor) => _tensors.TryGetValue(name, out tensor);

    private void ReadHeader(long fileLength)
    {
        ulong headerLength = *(ulong*)_base;
        if (headerLength > (ulong)(fileLength - 8))
            throw new CheckpointException(Path, null, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var header = new ReadOnlySpan<byte>(_base + 8, checked((int)headerLength));
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray());
        }
        catch (JsonException e)
        {
            throw new CheckpointException(Path, null, $"header is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(Path, null, "header is not a JSON object");
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    ReadMetadata(entry.Value);
                    continue;
                }
                _tensors[entry.Name] = ReadEntry(entry.Name, entry.Value, dataStart, dataLength);
            }
        }
    }

    private void ReadMetadata(JsonElement value)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (value.ValueKind == JsonValueKind.Object)
            foreach (var p in value.EnumerateObject())
                metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
        Metadata = metadata;
    }

    private TensorSlice ReadEntry(string name, JsonElement e, long dataStart, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw new CheckpointException(Path, name, "header entry needs dtype, shape and two data_offsets");
        var dtypeName = dtypeEl.GetString()!;
        var dtype = DTypes.Parse(dtypeName)
            ?? throw new CheckpointException(Path, name, $"unsupported dtype {dtypeName} (supported: F32, F16, BF16, I8, U8, I32, I64, F8_E4M3)");
        var shape = new long[shapeEl.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw new CheckpointException(Path, name, $"shape {shapeEl.GetRawText()} is not a list of non-negative integers");
            shape[i++] = dim;
            count = checked(count * dim);
        }
        if (!offEl[0].TryGetInt64(out var begin) || !offEl[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new CheckpointException(Path, name, $"data_offsets {offEl.GetRawText()} are not an ordered pair of non-negative integers");
        if (end > dataLength)
            throw new CheckpointException(Path, name, $"data_offsets [{begin}, {end}] lie outside the {dataLength} bytes of data");
        long expected = checked(count * dtype.SizeOf());
        if (end - begin != expected)
            throw new CheckpointException(Path, name, $"holds {end - begin} bytes but {dtypeName} {FormatShape(shape)} needs {expected}");
        return new TensorSlice(name, Path, dtype, shape, _base + dataStart + begin, end - begin);
    }

    private static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <inheritdoc />
    public void Dispose()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
