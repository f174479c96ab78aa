using System.Runtime.InteropServices;
using Turbine.Backends.Cpu;
using Turbine.Backends.Cuda;
using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Bench.Cuda;

/// <summary>Every backend operation on fresh random inputs, CUDA against the CPU backend (the float32 reference).</summary>
internal static unsafe class Ops
{
    public static int Run()
    {
        using var cuda = new CudaBackend(new CudaBackendOptions().FromEnvironment() with { KvCache = CudaKvCacheType.F32 });
        using var cpu = new CpuBackend(0);
        int failures = 0;
        foreach (var (tokens, cached, heads, kvHeads, hd, hidden, inter) in new[]
        {
            (17, 0, 4, 2, 16, 64, 160), (3, 14, 4, 1, 32, 64, 160), (1, 40, 4, 2, 16, 64, 160), (33, 0, 32, 8, 128, 4096, 512), (2, 150, 32, 8, 128, 4096, 512),
        })
        {
            Console.WriteLine($"-- tokens {tokens} after {cached} cached, heads {heads}/{kvHeads} x {hd}, hidden {hidden}");
            var random = new Random(tokens * 31 + hd);
            var pairs = new[] { (IComputeBackend)cpu, cuda };
            var batch = new ForwardBatch(tokens, 1, tokens, hd / 2);
            const int blockSize = 4;
            int context = cached + tokens;
            int blocks = (context + blockSize - 1) / blockSize;
            var table = Enumerable.Range(0, blocks).Select(b => blocks - 1 - b + 3).ToArray();
            batch.Add(Enumerable.Range(0, tokens).ToArray(), cached, table, blockSize, allLogits: true);
            for (int i = 0; i < tokens * hd / 2; i++)
            {
                double angle = random.NextDouble() * 6.28;
                batch.Cos[i] = (float)Math.Cos(angle);
                batch.Sin[i] = (float)Math.Sin(angle);
            }
            var results = new List<float[]>[2];
            for (int b = 0; b < 2; b++)
            {
                var be = pairs[b];
                var rng = new Random(5);
                var outputs = results[b] = [];
                var kv = be.AllocateKvCache(new KvCacheShape(1, blocks + 3, blockSize, kvHeads, hd));
                // Earlier context: written by a step over the cached positions with random k, v.
                if (cached > 0)
                {
                    var pre = new ForwardBatch(cached, 1, 1, hd / 2);
                    pre.Add(Enumerable.Range(0, cached).ToArray(), 0, table, blockSize);
                    be.BeginStep(pre);
                    var pq = Fill(be, pre, cached, heads * hd, rng);
                    var pk = Fill(be, pre, cached, kvHeads * hd, rng);
                    var pv = Fill(be, pre, cached, kvHeads * hd, rng);
                    var po = be.Allocate((long)cached * heads * hd);
                    be.Attention(kv, 0, pq, pk, pv, po, heads, kvHeads, hd, 0.25f, 0);
                    outputs.Add(Read(be, po, cached * heads * hd));
                }
                be.BeginStep(batch);
                var x = Fill(be, batch, tokens, hidden, rng);
                var delta = Fill(be, batch, tokens, hidden, rng);
                var y = be.Allocate((long)tokens * hidden);
                var norm = Weight(be, [hidden], DType.F32, rng, 1f);
                be.RmsNorm(x, tokens, norm, 1e-5f, y);
                outputs.Add(Read(be, y, tokens * hidden));
                be.AddRmsNorm(x, delta, tokens, norm, 1e-5f, y);
                outputs.Add(Read(be, y, tokens * hidden));
                outputs.Add(Read(be, x, tokens * hidden));
                foreach (var dt in new[] { DType.F32, DType.BF16 })
                {
                    var w = Weight(be, [inter, hidden], dt, rng, 0.05f);
                    var bias = Weight(be, [inter], DType.F32, rng, 0.1f);
                    var g = be.Allocate((long)tokens * inter);
                    be.Linear(y, tokens, w, bias, g);
                    outputs.Add(Read(be, g, tokens * inter));
                    var u = be.Allocate((long)tokens * inter);
                    be.Linear(y, tokens, w, null, u);
                    be.SiluMul(g, u, g, (long)tokens * inter);
                    outputs.Add(Read(be, g, tokens * inter));
                }
                var q = Fill(be, batch, tokens, heads * hd, rng);
                var k = Fill(be, batch, tokens, kvHeads * hd, rng);
                var v = Fill(be, batch, tokens, kvHeads * hd, rng);
                be.Rotary(q, heads, k, kvHeads, hd);
                outputs.Add(Read(be, q, tokens * heads * hd));
                outputs.Add(Read(be, k, tokens * kvHeads * hd));
                var o = be.Allocate((long)tokens * heads * hd);
                be.Attention(kv, 0, q, k, v, o, heads, kvHeads, hd, 0.25f, 0);
                outputs.Add(Read(be, o, tokens * heads * hd));
                be.Attention(kv, 0, q, k, v, o, heads, kvHeads, hd, 0.25f, 5);
                outputs.Add(Read(be, o, tokens * heads * hd));
            }
            var names = new List<string>();
            if (cached > 0)
                names.Add("attention (earlier context)");
            names.AddRange(["rmsnorm", "add_rmsnorm y", "add_rmsnorm residual", "linear f32 + bias", "silu_mul f32", "linear bf16 + bias", "silu_mul bf16",
                "rope q", "rope k", "attention", "attention window 5"]);
            for (int i = 0; i < names.Count; i++)
            {
                double err = RelativeL2(results[1][i], results[0][i]);
                bool ok = err < 1e-5 && !double.IsNaN(err);
                failures += ok ? 0 : 1;
                Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {names[i],-28} rel L2 {err:E2}");
            }
        }
        failures += ArgMaxCases(cuda, cpu);
        return failures == 0 ? 0 : 1;
    }

    // Argmax of logit rows: random rows of vocabulary widths, and rows built to test the rules (first index of equal
    // maxima, NaN wins, all -inf), whose ids must equal the CPU backend's exactly.
    private static int ArgMaxCases(CudaBackend cuda, CpuBackend cpu)
    {
        Console.WriteLine("-- argmax of logit rows");
        int failures = 0;
        var rng = new Random(11);
        foreach (var (rows, width) in new[] { (1, 128256), (3, 1000), (64, 128256), (5, 151936), (2, 7) })
        {
            var data = new float[rows * width];
            for (int i = 0; i < data.Length; i++)
                data[i] = (float)(rng.NextDouble() * 20 - 10);
            if (rows >= 3)
            {
                // Row 0: the maximum at 5 and again at 1026, which a 1024-thread block scans in thread 2, before thread 5;
                // row 1: every value equal; row 2: a NaN after the maximum.
                data[5] = data[1026 % width] = 50f;
                data.AsSpan(width, width).Fill(-3f);
                data[2 * width + width / 2] = 60f;
                data[2 * width + width - 1] = float.NaN;
            }
            if (rows >= 5)
                data.AsSpan(4 * width, width).Fill(float.NegativeInfinity);
            var ids = new int[2][];
            var pairs = new[] { (IComputeBackend)cpu, cuda };
            for (int b = 0; b < 2; b++)
            {
                var be = pairs[b];
                var batch = new ForwardBatch(rows, 1, rows, 1);
                batch.Add(Enumerable.Range(0, rows).ToArray(), 0, [0], rows, allLogits: true);
                be.BeginStep(batch);
                var table = Upload(be, data, rows, width);
                var logits = be.Allocate((long)rows * width);
                be.Embed(table, logits);
                ids[b] = new int[rows];
                be.ArgMax(logits, rows, width, ids[b]);
            }
            bool ok = ids[1].SequenceEqual(ids[0]);
            failures += ok ? 0 : 1;
            Console.WriteLine($"{(ok ? "ok  " : "FAIL")} argmax {rows} x {width,-22} ids {string.Join(',', ids[1].Take(5))}{(rows > 5 ? ",…" : "")}"
                + (ok ? "" : $" expected {string.Join(',', ids[0].Take(5))}"));
        }
        return failures;
    }

    private static DeviceWeight Upload(IComputeBackend be, float[] data, int rows, int width)
    {
        var copy = (float*)NativeMemory.AlignedAlloc((nuint)(data.Length * sizeof(float)), 64);
        data.CopyTo(new Span<float>(copy, data.Length));
        // Kept alive for the process: the CPU backend reads weights in place.
        return be.Upload(new TensorSlice("logits", "random", DType.F32, [rows, width], (byte*)copy, (long)data.Length * sizeof(float)));
    }

    // A buffer of rows × width random floats, put there through Embed of a random table with the step's token ids 0..rows-1.
    private static DeviceBuffer Fill(IComputeBackend be, ForwardBatch batch, int rows, int width, Random rng)
    {
        var table = Weight(be, [rows, width], DType.F32, rng, 1f);
        var buffer = be.Allocate((long)rows * width);
        be.Embed(table, buffer);
        return buffer;
    }

    private static DeviceWeight Weight(IComputeBackend be, long[] shape, DType dtype, Random rng, float scale)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int size = dtype == DType.F32 ? 4 : 2;
        var data = (byte*)NativeMemory.AlignedAlloc((nuint)(count * size), 64);
        for (long i = 0; i < count; i++)
        {
            float f = (float)((rng.NextDouble() * 2 - 1) * scale) + (shape.Length == 1 && scale == 1f ? 1f : 0f);
            if (dtype == DType.F32)
                ((float*)data)[i] = f;
            else
                ((ushort*)data)[i] = (ushort)(BitConverter.SingleToInt32Bits(f) >> 16);
        }
        // Kept alive for the process: the CPU backend reads weights in place.
        return be.Upload(new TensorSlice("w", "random", dtype, shape, data, count * size));
    }

    private static float[] Read(IComputeBackend be, DeviceBuffer b, int count)
    {
        var f = new float[count];
        be.Download(b, f);
        return f;
    }

    private static double RelativeL2(float[] actual, float[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(diff / norm);
    }
}
