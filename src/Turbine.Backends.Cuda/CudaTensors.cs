using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

/// <summary>
/// A checkpoint tensor on the device in its stored dtype. Vectors (norm weights, biases) are held as float32, the
/// form the kernels that add or scale by them read.
/// </summary>
internal sealed class CudaWeight(DType dtype, long[] shape, ulong pointer) : DeviceWeight
{
    public override DType DType { get; } = dtype;
    public override long[] Shape { get; } = shape;

    /// <summary>Device address of the data (float32 for vectors).</summary>
    public ulong Pointer { get; } = pointer;

    /// <summary>A linear's e4m3 copy for <see cref="CudaGemmPrecision.Fp8Lo"/> (0: none), scaled per output channel.</summary>
    public ulong Fp8 { get; init; }

    /// <summary>The e4m3 copy's float32 dequantization factor per output channel.</summary>
    public ulong Fp8Scale { get; init; }
}

/// <summary>Float32 activations in device memory.</summary>
internal sealed class CudaBuffer(CudaDevice device, long floats) : DeviceBuffer
{
    public ulong Pointer { get; private set; } = device.Allocate(floats * sizeof(float), $"an activation buffer of {floats} floats");

    public override long Length { get; } = floats;

    public override void Dispose()
    {
        device.Free(Pointer);
        Pointer = 0;
    }
}

/// <summary>
/// K and V of every layer in one device allocation: per layer K then V, each [blocks × blockSize × kvHeads × headDim]
/// of float32, f16 or bf16.
/// </summary>
internal sealed class CudaKvCache : KvCacheStorage
{
    private readonly CudaDevice _device;
    private readonly long _layerBytes;
    private ulong _base;

    public CudaKvCache(CudaDevice device, KvCacheShape shape, CudaKvCacheType type)
    {
        _device = device;
        Shape = shape;
        Type = type;
        _layerBytes = (long)shape.Blocks * shape.BlockSize * shape.SlotWidth * ElementBytes;
        _base = device.Allocate(2 * shape.Layers * _layerBytes, $"the KV cache ({shape.Blocks} blocks of {shape.BlockSize} tokens, {shape.Layers} layers)");
    }

    public override KvCacheShape Shape { get; }

    /// <summary>The entries' element type.</summary>
    public CudaKvCacheType Type { get; }

    /// <summary>Bytes of one entry.</summary>
    public int ElementBytes => Type == CudaKvCacheType.F32 ? 4 : 2;

    /// <summary>The kernels' name suffix for this element type.</summary>
    public string Suffix => Type switch { CudaKvCacheType.F16 => "f16", CudaKvCacheType.BF16 => "bf16", _ => "f32" };

    public ulong Keys(int layer) => _base + (ulong)(2L * layer * _layerBytes);

    public ulong Values(int layer) => _base + (ulong)((2L * layer + 1) * _layerBytes);

    public override void Dispose()
    {
        _device.Free(_base);
        _base = 0;
    }
}

/// <summary>Weights in a few large device allocations, bump-allocated at 256-byte alignment; freed together.</summary>
internal sealed class WeightArena(CudaDevice device) : IDisposable
{
    private const long ChunkBytes = 512L << 20;
    private readonly List<ulong> _chunks = [];
    private ulong _next;
    private long _left;

    /// <summary>Bytes handed out so far.</summary>
    public long Used { get; private set; }

    public ulong Allocate(long bytes, string what)
    {
        long size = (bytes + 255) & ~255L;
        Used += size;
        if (size > ChunkBytes / 4)
        {
            // Large tensors get their own allocation so chunks are not left mostly empty.
            var own = device.Allocate(size, what);
            _chunks.Add(own);
            return own;
        }
        if (size > _left)
        {
            _next = device.Allocate(ChunkBytes, what);
            _chunks.Add(_next);
            _left = ChunkBytes;
        }
        var p = _next;
        _next += (ulong)size;
        _left -= size;
        return p;
    }

    public void Dispose()
    {
        foreach (var c in _chunks)
            device.Free(c);
        _chunks.Clear();
    }
}
