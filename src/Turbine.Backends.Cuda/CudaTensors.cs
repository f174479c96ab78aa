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
/// K and V of every layer in one device allocation: per layer a K region then a V region, each [blocks × blockSize ×
/// kvHeads × headDim] of float32, f16 or bf16. An F24 region is two planes of that indexing: the elements' top 16 bits
/// (a bf16 cache's layout), then at <see cref="LowOffset"/> their low bytes, each plane at a 256-byte boundary so that
/// rows of 16-byte multiples stay 16-byte aligned in both.
/// </summary>
internal sealed class CudaKvCache : KvCacheStorage
{
    private const long PlaneAlignment = 256;
    private readonly CudaDevice _device;
    private readonly long _regionBytes;
    private ulong _base;

    public CudaKvCache(CudaDevice device, KvCacheShape shape, CudaKvCacheType type)
    {
        _device = device;
        Shape = shape;
        Type = type;
        (_regionBytes, LowOffset) = Layout(shape, type);
        _base = device.Allocate(2 * shape.Layers * _regionBytes, $"the KV cache ({shape.Blocks} blocks of {shape.BlockSize} tokens, {shape.Layers} layers)");
    }

    /// <summary>
    /// Bytes of one layer's K (or V) region, and where F24's low-byte plane starts in it (0 for the types of one plane).
    /// </summary>
    internal static (long RegionBytes, long LowOffset) Layout(KvCacheShape shape, CudaKvCacheType type)
    {
        long elements = (long)shape.Blocks * shape.BlockSize * shape.SlotWidth;
        if (type != CudaKvCacheType.F24)
            return (elements * type.ElementBytes(), 0);
        long low = Align(elements * sizeof(ushort));
        return (low + Align(elements), low);
    }

    private static long Align(long bytes) => (bytes + PlaneAlignment - 1) / PlaneAlignment * PlaneAlignment;

    public override KvCacheShape Shape { get; }

    /// <summary>The entries' element type.</summary>
    public CudaKvCacheType Type { get; }

    /// <summary>Bytes of one entry (over both planes for F24).</summary>
    public int ElementBytes => Type.ElementBytes();

    /// <summary>Bytes from a K or V region's start (<see cref="Keys"/>, <see cref="Values"/>) to F24's low-byte plane; 0 otherwise.</summary>
    public long LowOffset { get; }

    /// <summary>Each plane of a region: its offset from the region's start and its bytes per element.</summary>
    public (long Offset, int Bytes)[] Planes => Type == CudaKvCacheType.F24 ? [(0, sizeof(ushort)), (LowOffset, 1)] : [(0, ElementBytes)];

    /// <summary>The kernels' name suffix for this element type.</summary>
    public string Suffix => Type.ToString().ToLowerInvariant();

    public ulong Keys(int layer) => _base + (ulong)(2L * layer * _regionBytes);

    public ulong Values(int layer) => _base + (ulong)((2L * layer + 1) * _regionBytes);

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
