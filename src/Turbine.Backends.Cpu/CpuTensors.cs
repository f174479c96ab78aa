using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cpu;

/// <summary>A checkpoint tensor used in place in its memory map. Vectors (norms, biases) also get a float32 copy for kernels that add them.</summary>
internal sealed unsafe class CpuWeight : DeviceWeight
{
    private readonly float[]? _float32;

    public CpuWeight(in TensorSlice tensor)
    {
        DType = tensor.DType;
        Shape = tensor.Shape;
        Data = tensor.Data;
        if (tensor.Shape.Length == 1)
        {
            _float32 = GC.AllocateArray<float>((int)tensor.Shape[0], pinned: true);
            for (int i = 0; i < _float32.Length; i++)
                _float32[i] = ReadAsFloat(tensor.Data, tensor.DType, i);
        }
    }

    public override DType DType { get; }
    public override long[] Shape { get; }

    /// <summary>The stored bytes.</summary>
    public byte* Data { get; }

    /// <summary>A pinned float32 copy of a vector weight.</summary>
    public float* Float32 => _float32 is null
        ? throw new InvalidOperationException("only vector weights have a float32 copy")
        : (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_float32));

    private static float ReadAsFloat(byte* data, DType dtype, int i) => dtype switch
    {
        DType.F32 => ((float*)data)[i],
        DType.BF16 => BitConverter.Int32BitsToSingle(((ushort*)data)[i] << 16),
        DType.F16 => (float)((Half*)data)[i],
        _ => throw new NotSupportedException($"{dtype} vectors are not supported"),
    };
}

/// <summary>Float32 activations in 64-byte aligned native memory.</summary>
internal sealed unsafe class CpuBuffer : DeviceBuffer
{
    public CpuBuffer(long floats)
    {
        Length = floats;
        Data = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, floats) * sizeof(float), 64);
    }

    public float* Data { get; private set; }

    public override long Length { get; }

    public override void Dispose()
    {
        NativeMemory.AlignedFree(Data);
        Data = null;
    }
}

/// <summary>K and V of every layer: [blocks × blockSize × kvHeads × headDim] float32 each, in one native allocation per layer.</summary>
internal sealed unsafe class CpuKvCache : KvCacheStorage
{
    private readonly float*[] _keys;
    private readonly float*[] _values;

    public CpuKvCache(KvCacheShape shape)
    {
        Shape = shape;
        _keys = new float*[shape.Layers];
        _values = new float*[shape.Layers];
        nuint bytes = (nuint)shape.Blocks * (nuint)shape.BlockSize * (nuint)shape.SlotWidth * sizeof(float);
        for (int l = 0; l < shape.Layers; l++)
        {
            _keys[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
            _values[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        }
    }

    public override KvCacheShape Shape { get; }

    public float* Keys(int layer) => _keys[layer];

    public float* Values(int layer) => _values[layer];

    public override void Dispose()
    {
        for (int l = 0; l < _keys.Length; l++)
        {
            NativeMemory.AlignedFree(_keys[l]);
            NativeMemory.AlignedFree(_values[l]);
            _keys[l] = _values[l] = null;
        }
    }
}
