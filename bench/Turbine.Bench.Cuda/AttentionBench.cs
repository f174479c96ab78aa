using System.Runtime.InteropServices;
using Turbine.Backends.Cuda;
using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Bench.Cuda;

/// <summary>
/// Paged attention of one decode step alone, on a random KV cache: the attention kernel's time per call (CUDA events,
/// median after a warm-up) and the K+V bytes it reads per second, for the shapes of Llama-3-8B (32 query heads, 8 KV
/// heads, 128 dims) and Qwen2-7B (28 / 4), at several batches and contexts, with float32, F24 and f16 caches.
/// </summary>
internal static unsafe class AttentionBench
{
    private const int BlockSize = 16;
    // Cycling over layers whose K+V add up to this many bytes keeps the cache out of the 50 MB L2, as in a model's step.
    private const long ColdBytes = 256L << 20;

    /// <summary>
    /// The table of every shape, or only <paramref name="only"/> ("f16,32,8,128,64,1024": cache (f32, f24, f16 or bf16),
    /// heads, KV heads, head width, batch, context).
    /// </summary>
    public static int Run(int reps, string? only)
    {
        Console.WriteLine("| cache | heads | dims | batch | context | µs / call | K+V GB/s |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
        (int, int, int, int, int)[] shapes =
        [
            (32, 8, 128, 1, 192), (32, 8, 128, 1, 2048), (32, 8, 128, 1, 8192), (32, 8, 128, 64, 192), (32, 8, 128, 64, 1024),
            (32, 8, 128, 256, 192), (28, 4, 128, 1, 2048), (28, 4, 128, 64, 1024),
        ];
        CudaKvCacheType[] types = [CudaKvCacheType.F32, CudaKvCacheType.F24, CudaKvCacheType.F16];
        if (only is not null)
        {
            var f = only.Split(',');
            types = [Enum.Parse<CudaKvCacheType>(f[0], ignoreCase: true)];
            shapes = [(int.Parse(f[1]), int.Parse(f[2]), int.Parse(f[3]), int.Parse(f[4]), int.Parse(f[5]))];
        }
        foreach (var type in types)
        {
            using var cuda = new CudaBackend(new CudaBackendOptions().FromEnvironment() with { KvCache = type, Profile = true });
            foreach (var (heads, kvHeads, headDim, batch, context) in shapes)
            {
                var (micros, gbps) = Case(cuda, heads, kvHeads, headDim, batch, context, reps);
                Console.WriteLine($"| {type.ToString().ToLowerInvariant()} | {heads}/{kvHeads} | {headDim} | {batch} | {context} | {micros:F1} | {gbps:F0} |");
            }
        }
        return 0;
    }

    // Median microseconds of the attention kernel over `reps` decode-step calls, and the K+V bytes read per second.
    private static (double Micros, double GBps) Case(CudaBackend cuda, int heads, int kvHeads, int headDim, int batchSize, int context, int reps)
    {
        int elementBytes = cuda.KvElementBytes, kvDim = kvHeads * headDim;
        int perSeq = (context + BlockSize - 1) / BlockSize;
        long kvBytes = 2L * batchSize * context * kvDim * elementBytes;
        long layerBytes = 2L * batchSize * perSeq * BlockSize * kvDim * elementBytes;
        int layers = (int)Math.Clamp((ColdBytes + layerBytes - 1) / layerBytes, 1, 128);
        using var kv = cuda.AllocateKvCache(new KvCacheShape(layers, batchSize * perSeq, BlockSize, kvHeads, headDim));
        FillCache(cuda, kv, layers, batchSize * perSeq, heads, kvHeads, headDim);

        var rng = new Random(3);
        using var q = Random(cuda, batchSize, heads * headDim, rng);
        using var k = Random(cuda, batchSize, kvDim, rng);
        using var v = Random(cuda, batchSize, kvDim, rng);
        using var o = cuda.Allocate((long)batchSize * heads * headDim);
        var step = new ForwardBatch(batchSize, batchSize, batchSize, headDim / 2);
        for (int s = 0; s < batchSize; s++)
            step.Add([1], context - 1, [.. Enumerable.Range(s * perSeq, perSeq)], BlockSize);
        cuda.BeginStep(step);
        float scale = 1f / MathF.Sqrt(headDim);
        for (int i = 0; i < 20; i++)
            cuda.Attention(kv, i % layers, q, k, v, o, heads, kvHeads, headDim, scale, 0);
        cuda.Synchronize();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            cuda.ResetProfile();
            cuda.Attention(kv, i % layers, q, k, v, o, heads, kvHeads, headDim, scale, 0);
            cuda.Synchronize();
            times[i] = cuda.Profile["attention"].Milliseconds * 1000;
        }
        Array.Sort(times);
        double micros = times[reps / 2];
        return (micros, kvBytes / micros / 1000);
    }

    // Random K and V in every slot of every layer: prompt steps of 256-token sequences (16 blocks each, so their own
    // attention stays cheap) write the same random rows over each chunk of the cache.
    private static void FillCache(CudaBackend cuda, KvCacheStorage kv, int layers, int blocks, int heads, int kvHeads, int headDim)
    {
        const int ChunkBlocks = 256 / BlockSize, StepTokens = 8192;
        var rng = new Random(1);
        using var k = Random(cuda, StepTokens, kvHeads * headDim, rng);
        using var v = Random(cuda, StepTokens, kvHeads * headDim, rng);
        using var q = cuda.Allocate((long)StepTokens * heads * headDim);
        using var o = cuda.Allocate((long)StepTokens * heads * headDim);
        var ids = Enumerable.Range(0, ChunkBlocks * BlockSize).ToArray();
        var step = new ForwardBatch(StepTokens, StepTokens / BlockSize, 1, headDim / 2);
        for (int first = 0; first < blocks;)
        {
            step.Clear();
            while (first < blocks && step.FreeTokens >= ChunkBlocks * BlockSize)
            {
                int count = Math.Min(ChunkBlocks, blocks - first);
                step.Add(ids.AsSpan(0, count * BlockSize), 0, [.. Enumerable.Range(first, count)], BlockSize, wantLogits: false);
                first += count;
            }
            cuda.BeginStep(step);
            // q need not be random: the step's own attention output is discarded.
            for (int layer = 0; layer < layers; layer++)
                cuda.Attention(kv, layer, q, k, v, o, heads, kvHeads, headDim, 1f, 0);
        }
        cuda.Synchronize();
    }

    // A buffer of rows × width uniform values in [-1, 1), put there by Embed of a random table with token ids 0..rows-1.
    private static DeviceBuffer Random(CudaBackend cuda, int rows, int width, Random rng)
    {
        long count = (long)rows * width;
        var data = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
        for (long i = 0; i < count; i++)
            data[i] = (float)(rng.NextDouble() * 2 - 1);
        var table = cuda.Upload(new TensorSlice("random", "random", DType.F32, [rows, width], (byte*)data, count * sizeof(float)));
        NativeMemory.AlignedFree(data);
        var step = new ForwardBatch(rows, 1, 1, 1);
        step.Add([.. Enumerable.Range(0, rows)], 0, [0], rows);
        cuda.BeginStep(step);
        var buffer = cuda.Allocate(count);
        cuda.Embed(table, buffer);
        cuda.Synchronize();
        return buffer;
    }
}
