using Turbine.Backends.Cpu.Kernels;

namespace Turbine.Backends.Cpu.Tests;

public sealed unsafe class PagedAttentionTests : IDisposable
{
    private readonly WorkerPool pool = new(3);

    public void Dispose() => pool.Dispose();

    /// <summary>(queryLength, contextLength) of each sequence: decode, prefill, chunked prefill, empty step.</summary>
    private static readonly (int Query, int Context)[] MixedBatch = [(1, 37), (13, 13), (5, 70), (1, 1), (0, 9), (2, 130)];

    [Theory]
    [InlineData(4, 4, 16, 16, 0)]   // MHA
    [InlineData(8, 2, 64, 16, 0)]   // GQA
    [InlineData(6, 1, 32, 4, 0)]    // MQA
    [InlineData(8, 2, 20, 5, 7)]    // GQA, sliding window, head dim not a multiple of 16
    [InlineData(4, 1, 128, 16, 1)]  // window of one: each query sees only itself
    [InlineData(3, 3, 5, 1, 100)]   // window wider than every context, block size 1
    [InlineData(32, 2, 64, 16, 0)]  // more query heads per KV head than one item takes
    public void MatchesFloat64Reference(int numHeads, int numKvHeads, int headDim, int blockSize, int window)
        => Check(MixedBatch, numHeads, numKvHeads, headDim, blockSize, window);

    [Fact]
    public void SingleLongDecode() => Check([(1, 1000)], 4, 1, 64, 16, 0);

    /// <summary>Few query tokens over long contexts: keys are split into ranges whose partials are merged.</summary>
    [Theory]
    [InlineData(8, 2, 64, 16, 0)]
    [InlineData(8, 2, 64, 16, 300)]
    [InlineData(4, 4, 24, 7, 0)]
    [InlineData(6, 1, 40, 3, 257)]
    public void SplitKeyRangesMatchReference(int numHeads, int numKvHeads, int headDim, int blockSize, int window)
        => Check([(1, 700), (2, 300), (1, 129), (0, 50)], numHeads, numKvHeads, headDim, blockSize, window);

    [Fact]
    public void LargeScoresStayFinite()
        => Check([(3, 50)], 2, 1, 16, 8, 0, valueScale: 40f);

    private void Check((int Query, int Context)[] batch, int numHeads, int numKvHeads, int headDim, int blockSize, int window, float valueScale = 1f)
    {
        int seed = TestData.NewSeed();
        var rng = new Random(seed);
        int kvDim = numKvHeads * headDim;
        int tokens = batch.Sum(s => s.Query);
        int blocksNeeded = batch.Sum(s => (s.Context + blockSize - 1) / blockSize);
        int numBlocks = blocksNeeded + 3;

        // Hand out cache blocks in a shuffled order so block tables are not monotone.
        var freeBlocks = Enumerable.Range(0, numBlocks).OrderBy(_ => rng.Next()).ToArray();
        int nextFree = 0;
        var kCache = new float[numBlocks * blockSize * kvDim];
        var vCache = new float[numBlocks * blockSize * kvDim];
        Array.Fill(kCache, float.NaN); // unused slots must never be read
        Array.Fill(vCache, float.NaN);
        var tables = new int[batch.Length][];
        var keys = new float[batch.Length][];
        var values = new float[batch.Length][];
        var q = TestData.Floats(rng, tokens * numHeads * headDim, valueScale);
        var output = new float[q.Length];
        var seqs = new AttentionSequence[batch.Length];
        var handles = new List<System.Runtime.InteropServices.GCHandle>();
        try
        {
            int queryStart = 0;
            for (int s = 0; s < batch.Length; s++)
            {
                var (ql, ctx) = batch[s];
                tables[s] = new int[Math.Max(1, (ctx + blockSize - 1) / blockSize)];
                for (int b = 0; b < (ctx + blockSize - 1) / blockSize; b++)
                    tables[s][b] = freeBlocks[nextFree++];
                keys[s] = TestData.Floats(rng, ctx * kvDim, valueScale);
                values[s] = TestData.Floats(rng, ctx * kvDim);
                var slots = new int[ctx];
                for (int p = 0; p < ctx; p++)
                    slots[p] = tables[s][p / blockSize] * blockSize + p % blockSize;
                fixed (float* kp = keys[s])
                fixed (float* vp = values[s])
                fixed (int* sp = slots)
                fixed (float* kc = kCache)
                fixed (float* vc = vCache)
                    PagedAttention.WriteKv(kp, vp, ctx, sp, kvDim, kc, vc);
                var h = System.Runtime.InteropServices.GCHandle.Alloc(tables[s], System.Runtime.InteropServices.GCHandleType.Pinned);
                handles.Add(h);
                seqs[s] = new AttentionSequence(queryStart, ql, ctx, (int*)h.AddrOfPinnedObject());
                queryStart += ql;
            }

            float scale = 1f / MathF.Sqrt(headDim);
            fixed (float* qp = q)
            fixed (float* op = output)
            fixed (float* kc = kCache)
            fixed (float* vc = vCache)
                PagedAttention.Forward(qp, op, numHeads, numKvHeads, headDim, scale, kc, vc, blockSize, seqs, window, pool);

            var expected = new double[q.Length];
            var bound = new double[q.Length];
            int group = numHeads / numKvHeads;
            for (int s = 0; s < batch.Length; s++)
            {
                var (ql, ctx) = batch[s];
                for (int i = 0; i < ql; i++)
                {
                    int row = seqs[s].QueryStart + i, pos = ctx - ql + i;
                    int start = window > 0 ? Math.Max(0, pos - window + 1) : 0;
                    for (int h = 0; h < numHeads; h++)
                    {
                        int kvh = h / group;
                        var logits = new double[pos - start + 1];
                        for (int j = start; j <= pos; j++)
                        {
                            double dot = 0;
                            for (int e = 0; e < headDim; e++)
                                dot += (double)q[(row * numHeads + h) * headDim + e] * keys[s][j * kvDim + kvh * headDim + e];
                            logits[j - start] = dot * scale;
                        }
                        double max = logits.Max(), denom = logits.Sum(l => Math.Exp(l - max));
                        for (int e = 0; e < headDim; e++)
                        {
                            double acc = 0, mag = 0;
                            for (int j = start; j <= pos; j++)
                            {
                                double p = Math.Exp(logits[j - start] - max) / denom;
                                acc += p * values[s][j * kvDim + kvh * headDim + e];
                                mag += p * Math.Abs(values[s][j * kvDim + kvh * headDim + e]);
                            }
                            expected[(row * numHeads + h) * headDim + e] = acc;
                            // Logit errors of ~|logit|·1e-6 move probabilities relatively by as much.
                            bound[(row * numHeads + h) * headDim + e] = mag * (1 + logits.Max(Math.Abs)) + 1e-6;
                        }
                    }
                }
            }
            TestData.AssertClose(output, expected, bound, 2e-5,
                $"attention H={numHeads} KV={numKvHeads} D={headDim} B={blockSize} W={window} seed={seed}");
        }
        finally
        {
            foreach (var h in handles)
                h.Free();
        }
    }

    [Fact]
    public void WriteKvSkipsNegativeSlots()
    {
        var k = new float[] { 1, 2, 3, 4 };
        var v = new float[] { 5, 6, 7, 8 };
        var kc = new float[6];
        var vc = new float[6];
        int[] slots = [2, -1];
        fixed (float* kp = k)
        fixed (float* vp = v)
        fixed (int* sp = slots)
        fixed (float* kcp = kc)
        fixed (float* vcp = vc)
            PagedAttention.WriteKv(kp, vp, 2, sp, 2, kcp, vcp);
        Assert.Equal([0, 0, 0, 0, 1, 2], kc);
        Assert.Equal([0, 0, 0, 0, 5, 6], vc);
    }
}
