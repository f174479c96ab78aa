using Turbine.Backends.Cpu.Kernels;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Tests;

/// <summary>Linear.ForwardGroup (several decode GEMVs of one input in one dispatch) against one Linear.Forward per weight.</summary>
public sealed unsafe class LinearGroupTests : IDisposable
{
    private readonly WorkerPool pool = new(3);

    public void Dispose() => pool.Dispose();

    public static TheoryData<DType, int, int[], bool> Groups()
    {
        var data = new TheoryData<DType, int, int[], bool>();
        foreach (var t in TestData.WeightTypes)
        {
            data.Add(t, 64, [64, 16, 16], true);   // q/k/v with GQA
            data.Add(t, 781, [130, 7], false);     // gate/up, awkward sizes
            data.Add(t, 33, [1], true);
            data.Add(t, 256, [1031, 5, 300], false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Groups))]
    public void GroupEqualsOneForwardPerWeight(DType type, int k, int[] rows, bool withBias)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        var x = TestData.Floats(rng, k);
        var weights = new byte[rows.Length][];
        var biases = new float[rows.Length][];
        var grouped = new float[rows.Length][];
        var single = new float[rows.Length][];
        for (int i = 0; i < rows.Length; i++)
        {
            weights[i] = TestData.Encode(TestData.Floats(rng, rows[i] * k), type).Bytes;
            biases[i] = withBias ? TestData.Floats(rng, rows[i]) : [];
            grouped[i] = new float[rows[i]];
            single[i] = new float[rows[i]];
            Array.Fill(grouped[i], float.NaN);
        }
        var targets = new GemvTarget[rows.Length];
        var pins = new List<System.Runtime.InteropServices.GCHandle>();
        try
        {
            byte* Pin(Array a)
            {
                var h = System.Runtime.InteropServices.GCHandle.Alloc(a, System.Runtime.InteropServices.GCHandleType.Pinned);
                pins.Add(h);
                return (byte*)h.AddrOfPinnedObject();
            }
            float* xp = (float*)Pin(x);
            for (int i = 0; i < rows.Length; i++)
            {
                float* bias = withBias ? (float*)Pin(biases[i]) : null;
                targets[i] = new GemvTarget(Pin(weights[i]), rows[i], bias, (float*)Pin(grouped[i]));
                Linear.Forward(xp, 1, k, type, Pin(weights[i]), rows[i], bias, (float*)Pin(single[i]), pool);
            }
            Linear.ForwardGroup(xp, k, type, targets, pool);
        }
        finally
        {
            foreach (var h in pins)
                h.Free();
        }
        for (int i = 0; i < rows.Length; i++)
            Assert.True(single[i].AsSpan().SequenceEqual(grouped[i]), $"weight {i} of {type} k={k} seed={seed}");
    }

    [Fact]
    public void MoreThanThreeWeightsAreRefused()
    {
        var targets = new GemvTarget[4];
        Assert.Throws<ArgumentOutOfRangeException>(() => Linear.ForwardGroup(null, 4, DType.F32, targets, pool));
    }
}
