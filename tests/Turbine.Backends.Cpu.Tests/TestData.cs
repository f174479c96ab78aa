using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Tests;

/// <summary>Random inputs and dtype encodings shared by the kernel tests.</summary>
internal static class TestData
{
    public static readonly DType[] WeightTypes = [DType.F32, DType.BF16, DType.F16];

    /// <summary>A fresh seed per call, printed in failure messages so a failure can be replayed.</summary>
    public static int NewSeed() => Random.Shared.Next();

    public static float[] Floats(Random rng, int count, float scale = 1f)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++)
            a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Encodes values in <paramref name="type"/>; returns the bytes and the values the encoding actually holds.</summary>
    public static (byte[] Bytes, double[] Values) Encode(float[] values, DType type)
    {
        int size = type.SizeOf();
        var bytes = new byte[values.Length * size];
        var exact = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            switch (type)
            {
                case DType.F32:
                    BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), values[i]);
                    exact[i] = values[i];
                    break;
                case DType.BF16:
                    {
                        // Round to nearest even, as torch does when casting to bfloat16.
                        uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                        ushort b = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                        BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), b);
                        exact[i] = BitConverter.UInt32BitsToSingle((uint)b << 16);
                        break;
                    }
                case DType.F16:
                    {
                        var h = (Half)values[i];
                        BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), BitConverter.HalfToUInt16Bits(h));
                        exact[i] = (double)h;
                        break;
                    }
                default:
                    throw new NotSupportedException(type.ToString());
            }
        }
        return (bytes, exact);
    }

    /// <summary>Asserts |actual − expected| ≤ tol · scale element-wise, naming the first bad index.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= tol * scale[i]))
                Assert.Fail($"{what}: index {i}: got {actual[i]}, expected {expected[i]} (error {err:E3}, allowed {tol * scale[i]:E3})");
        }
    }

    /// <summary>Scale for relative checks: |expected| plus a floor so values near zero are not held to zero error.</summary>
    public static double[] RelativeScale(ReadOnlySpan<double> expected, double floor)
    {
        var s = new double[expected.Length];
        for (int i = 0; i < s.Length; i++)
            s[i] = Math.Abs(expected[i]) + floor;
        return s;
    }
}
