using System.Text.Json;

namespace Turbine.Core.Checkpoints;

/// <summary>
/// The safetensors weights of a Hugging Face model directory: one model.safetensors, or shards listed by
/// model.safetensors.index.json. Tensors are memory-mapped views, valid until the checkpoint is disposed.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private const string SingleFile = "model.safetensors";
    private const string IndexFile = "model.safetensors.index.json";
    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<string, SafetensorsFile> _byTensor = new(StringComparer.Ordinal);

    private Checkpoint(string directory) => Directory = directory;

    /// <summary>The model directory.</summary>
    public string Directory { get; }

    /// <summary>Every tensor name across all shards.</summary>
    public IReadOnlyCollection<string> TensorNames => _byTensor.Keys;

    /// <summary>Total bytes of tensor data.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>Opens the checkpoint in <paramref name="directory"/>; <paramref name="progress"/> is told of each shard mapped.</summary>
    public static Checkpoint Open(string directory, IProgress<(int Done, int Total)>? progress = null)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new CheckpointException(directory, null, "model directory not found");
        var checkpoint = new Checkpoint(directory);
        try
        {
            var index = Path.Combine(directory, IndexFile);
            var single = Path.Combine(directory, SingleFile);
            if (File.Exists(index))
                checkpoint.OpenSharded(index, progress);
            else if (File.Exists(single))
            {
                checkpoint.Add(SafetensorsFile.Open(single), expected: null);
                progress?.Report((1, 1));
            }
            else
            {
                var any = System.IO.Directory.GetFiles(directory, "*.safetensors");
                if (any.Length == 0)
                    throw new CheckpointException(directory, null, $"no {SingleFile}, {IndexFile} or other *.safetensors file");
                Array.Sort(any, StringComparer.Ordinal);
                for (int i = 0; i < any.Length; i++)
                {
                    checkpoint.Add(SafetensorsFile.Open(any[i]), expected: null);
                    progress?.Report((i + 1, any.Length));
                }
            }
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
        return checkpoint;
    }

    /// <summary>True when the checkpoint holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <summary>The tensor <paramref name="name"/>; a missing one is a <see cref="CheckpointException"/> naming it.</summary>
    public TensorSlice Get(string name)
    {
        if (_byTensor.TryGetValue(name, out var file) && file.TryGet(name, out var tensor))
            return tensor;
        throw new CheckpointException(Directory, name, "missing from the checkpoint");
    }

    private void OpenSharded(string indexPath, IProgress<(int Done, int Total)>? progress)
    {
        Dictionary<string, List<string>> byShard = new(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(indexPath, null, "has no weight_map object");
            foreach (var p in map.EnumerateObject())
            {
                var shard = p.Value.GetString();
                if (string.IsNullOrEmpty(shard) || shard.Contains('/') || shard.Contains('\\'))
                    throw new CheckpointException(indexPath, p.Name, $"maps to an invalid shard name '{shard}'");
                if (!byShard.TryGetValue(shard, out var names))
                    byShard[shard] = names = [];
                names.Add(p.Name);
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointException(indexPath, null, $"is not valid JSON: {e.Message}", e);
        }
        int done = 0;
        foreach (var (shard, names) in byShard)
        {
            var path = Path.Combine(Directory, shard);
            if (!File.Exists(path))
                throw new CheckpointException(path, names[0], $"shard listed in {IndexFile} is missing");
            Add(SafetensorsFile.Open(path), names);
            progress?.Report((++done, byShard.Count));
        }
    }

    private void Add(SafetensorsFile file, List<string>? expected)
    {
        _files.Add(file);
        if (expected is not null)
            foreach (var name in expected)
                if (!file.TryGet(name, out _))
                    throw new CheckpointException(file.Path, name, $"listed in {IndexFile} but not in this shard");
        foreach (var name in file.TensorNames)
        {
            if (_byTensor.TryGetValue(name, out var other))
                throw new CheckpointException(file.Path, name, $"also present in {other.Path}");
            _byTensor[name] = file;
            file.TryGet(name, out var t);
            TotalBytes += t.ByteLength;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files)
            f.Dispose();
        _files.Clear();
    }
}
