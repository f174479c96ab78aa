using Turbine.Core.Tensors;

namespace Turbine.Core.Checkpoints;

/// <summary>One tensor of a memory-mapped checkpoint: its dtype, shape and bytes, valid while the checkpoint is open.</summary>
public readonly unsafe struct TensorSlice
{
    /// <summary>Creates a view of <paramref name="byteLength"/> bytes at <paramref name="data"/>.</summary>
    public TensorSlice(string name, string file, DType dtype, long[] shape, byte* data, long byteLength)
    {
        Name = name;
        File = file;
        DType = dtype;
        Shape = shape;
        Data = data;
        ByteLength = byteLength;
    }

    /// <summary>The tensor's name in the checkpoint.</summary>
    public string Name { get; }

    /// <summary>The file that holds it.</summary>
    public string File { get; }

    /// <summary>Element type as stored.</summary>
    public DType DType { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public long[] Shape { get; }

    /// <summary>The first byte, inside the memory map.</summary>
    public byte* Data { get; }

    /// <summary>Size in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>Number of elements.</summary>
    public long ElementCount => ByteLength / DType.SizeOf();

    /// <summary>The shape as text, e.g. [4096, 4096].</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
