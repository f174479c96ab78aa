using System.Runtime.CompilerServices;
using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>One sequence of a packed attention batch.</summary>
public readonly unsafe struct AttentionSequence
{
    /// <summary>Creates a sequence description.</summary>
    public AttentionSequence(int queryStart, int queryLength, int contextLength, int* blockTable)
    {
        QueryStart = queryStart;
        QueryLength = queryLength;
        ContextLength = contextLength;
        BlockTable = blockTable;
    }

    /// <summary>Row of this sequence's first query token in the packed q / output.</summary>
    public int QueryStart { get; init; }

    /// <summary>Query tokens of this step.</summary>
    public int QueryLength { get; init; }

    /// <summary>Tokens in the cache for this sequence, this step's included.</summary>
    public int ContextLength { get; init; }

    /// <summary>Cache block of each run of blockSize positions: position p lives in slot BlockTable[p / blockSize] * blockSize + p % blockSize.</summary>
    public int* BlockTable { get; init; }
}

/// <summary>Causal attention over a paged KV cache for a packed batch of sequences (prefill, chunked prefill and decode alike).</summary>
public static unsafe class PagedAttention
{
    // Keys scored per online-softmax step: one rescale of the accumulators per chunk, not per key.
    private const int KeyChunk = 64;
    // Query heads sharing a KV head that one work item handles; bounds the stack used for accumulators.
    private const int MaxHeadsPerItem = 16;
    private const int MaxHeadDim = 512;

    /// <summary>Copies this step's keys and values into their cache slots.</summary>
    /// <param name="k">Keys, [tokens × kvDim].</param>
    /// <param name="v">Values, [tokens × kvDim].</param>
    /// <param name="tokens">Tokens.</param>
    /// <param name="slots">Slot of each token (block * blockSize + offset); negative slots are skipped (padding).</param>
    /// <param name="kvDim">numKvHeads * headDim.</param>
    /// <param name="kCache">Key cache, [numBlocks × blockSize × kvDim].</param>
    /// <param name="vCache">Value cache, same shape.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteKv(float* k, float* v, int tokens, int* slots, int kvDim, float* kCache, float* vCache)
    {
        long bytes = (long)kvDim * sizeof(float);
        for (int t = 0; t < tokens; t++)
        {
            int slot = slots[t];
            if (slot < 0)
                continue;
            Buffer.MemoryCopy(k + (nint)t * kvDim, kCache + (nint)slot * kvDim, bytes, bytes);
            Buffer.MemoryCopy(v + (nint)t * kvDim, vCache + (nint)slot * kvDim, bytes, bytes);
        }
    }

    /// <summary>
    /// output = softmax(q·Kᵀ·scale) · V per query token and head, query i of a sequence sitting at
    /// position ContextLength − QueryLength + i and attending to positions max(0, p − slidingWindow + 1) .. p
    /// (0 .. p without a window). Head h reads KV head h / (numHeads / numKvHeads).
    /// </summary>
    /// <param name="q">Queries, [tokens × numHeads × headDim].</param>
    /// <param name="output">Output, same shape as q; must not overlap it.</param>
    /// <param name="numHeads">Query heads.</param>
    /// <param name="numKvHeads">Key/value heads; divides numHeads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="scale">Score scale, usually 1/sqrt(headDim).</param>
    /// <param name="kCache">Key cache of this layer, [numBlocks × blockSize × numKvHeads × headDim].</param>
    /// <param name="vCache">Value cache of this layer, same shape.</param>
    /// <param name="blockSize">Token slots per cache block.</param>
    /// <param name="seqs">The sequences of the batch.</param>
    /// <param name="slidingWindow">Keys visible to a query, itself included; 0 for no window.</param>
    /// <param name="pool">Threads to spread the (token, head group) items over.</param>
    public static void Forward(float* q, float* output, int numHeads, int numKvHeads, int headDim, float scale,
        float* kCache, float* vCache, int blockSize, ReadOnlySpan<AttentionSequence> seqs, int slidingWindow, WorkerPool pool)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numKvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        ArgumentNullException.ThrowIfNull(pool);
        if (numHeads % numKvHeads != 0)
            throw new ArgumentException("numHeads must be a multiple of numKvHeads.", nameof(numKvHeads));
        if (headDim <= 0 || headDim > MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"must be in 1..{MaxHeadDim}");
        if (seqs.IsEmpty)
            return;

        int group = numHeads / numKvHeads;
        int headsPerItem = Math.Min(group, MaxHeadsPerItem);
        while (group % headsPerItem != 0)
            headsPerItem--;
        int tokens = 0;
        foreach (ref readonly var s in seqs)
        {
            if (s.QueryLength < 0 || s.QueryLength > s.ContextLength)
                throw new ArgumentException("Each sequence needs 0 <= QueryLength <= ContextLength.", nameof(seqs));
            tokens += s.QueryLength;
        }
        // Split head groups further while there are too few items to keep every thread busy (decode, MQA).
        while (headsPerItem > 1 && (long)tokens * numHeads / headsPerItem < 4L * pool.ThreadCount && headsPerItem % 2 == 0)
            headsPerItem /= 2;

        // Prefix sums of query lengths map a flat token ordinal back to its sequence.
        int[]? rented = null;
        Span<int> ends = seqs.Length <= 256 ? stackalloc int[seqs.Length] : (rented = ArrayPool<int>.Shared.Rent(seqs.Length));
        int acc = 0;
        for (int i = 0; i < seqs.Length; i++)
            ends[i] = acc += seqs[i].QueryLength;
        try
        {
            fixed (AttentionSequence* sp = seqs)
            fixed (int* ep = ends)
            {
                var job = new AttentionJob
                {
                    Q = q, Output = output, NumHeads = numHeads, NumKvHeads = numKvHeads, HeadDim = headDim, Scale = scale,
                    KCache = kCache, VCache = vCache, BlockSize = blockSize, Seqs = sp, Ends = ep, SeqCount = seqs.Length,
                    Window = slidingWindow, Group = group, HeadsPerItem = headsPerItem, ItemsPerToken = numHeads / headsPerItem,
                };
                pool.For(tokens * job.ItemsPerToken, job);
            }
        }
        finally
        {
            if (rented != null)
                ArrayPool<int>.Shared.Return(rented);
        }
    }

    private struct AttentionJob : IParallelJob
    {
        public float* Q;
        public float* Output;
        public int NumHeads;
        public int NumKvHeads;
        public int HeadDim;
        public float Scale;
        public float* KCache;
        public float* VCache;
        public int BlockSize;
        public AttentionSequence* Seqs;
        public int* Ends;
        public int SeqCount;
        public int Window;
        public int Group;
        public int HeadsPerItem;
        public int ItemsPerToken;

        // Scratch is fully written before it is read; zeroing it would cost more than small items do.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index)
        {
            int ordinal = index / ItemsPerToken;
            int h0 = index % ItemsPerToken * HeadsPerItem;
            int kvHead = h0 / Group;

            int lo = 0, hi = SeqCount - 1;
            while (lo < hi)
            {
                int mid = (lo + hi) >> 1;
                if (Ends[mid] <= ordinal)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            ref readonly var seq = ref Seqs[lo];
            int i = ordinal - (Ends[lo] - seq.QueryLength);
            int row = seq.QueryStart + i;
            int pos = seq.ContextLength - seq.QueryLength + i;
            int start = Window > 0 ? Math.Max(0, pos - Window + 1) : 0;

            int d = HeadDim;
            int nh = HeadsPerItem;
            int kvDim = NumKvHeads * d;
            float* qh = Q + ((nint)row * NumHeads + h0) * d;
            float* acc = stackalloc float[nh * d];
            float* scores = stackalloc float[nh * KeyChunk];
            float* max = stackalloc float[nh];
            float* sum = stackalloc float[nh];
            // Row pointers of the chunk being processed and of the next one, which is prefetched
            // meanwhile: consecutive keys sit a whole token row (often a page) apart, beyond what
            // the hardware prefetcher follows, so without this every key pays a DRAM round trip.
            float** kRows = stackalloc float*[KeyChunk];
            float** vRows = stackalloc float*[KeyChunk];
            float** kNext = stackalloc float*[KeyChunk];
            float** vNext = stackalloc float*[KeyChunk];
            new Span<float>(acc, nh * d).Clear();
            for (int h = 0; h < nh; h++)
            {
                max[h] = float.NegativeInfinity;
                sum[h] = 0;
            }

            // Walk the block table incrementally: one division per item, not two per key.
            int block = start / BlockSize;
            int offset = start - block * BlockSize;
            nint headOffset = (nint)kvHead * d;
            int jcNext = Math.Min(KeyChunk, pos + 1 - start);
            NextRows(this, seq.BlockTable, ref block, ref offset, jcNext, kvDim, headOffset, kNext, vNext);
            for (int j0 = start; j0 <= pos; j0 += KeyChunk)
            {
                int jc = jcNext;
                float** swap = kRows;
                kRows = kNext;
                kNext = swap;
                swap = vRows;
                vRows = vNext;
                vNext = swap;
                jcNext = Math.Max(0, Math.Min(KeyChunk, pos + 1 - (j0 + KeyChunk)));
                NextRows(this, seq.BlockTable, ref block, ref offset, jcNext, kvDim, headOffset, kNext, vNext);

                ScoreChunk(qh, nh, d, kRows, jc, Scale, scores);
                for (int h = 0; h < nh; h++)
                {
                    float* sc = scores + h * KeyChunk;
                    float m = max[h];
                    for (int jj = 0; jj < jc; jj++)
                        m = Math.Max(m, sc[jj]);
                    float correction = MathF.Exp(max[h] - m);
                    max[h] = m;
                    var span = new Span<float>(sc, jc);
                    TensorPrimitives.Subtract(span, m, span);
                    TensorPrimitives.Exp(span, span);
                    sum[h] = sum[h] * correction + TensorPrimitives.Sum(span);
                    AccumulateValues(acc + h * d, correction, sc, vRows, jc, d);
                }
            }

            float* oh = Output + ((nint)row * NumHeads + h0) * d;
            for (int h = 0; h < nh; h++)
            {
                float inv = 1f / sum[h];
                for (int e = 0; e < d; e++)
                    oh[h * d + e] = acc[h * d + e] * inv;
            }
        }
    }

    /// <summary>
    /// scores[h·KeyChunk + j] = scale · q_h · k_j for every head of the group and key of the chunk.
    /// (head, key) pairs are reduced four at a time with horizontal adds: a lone horizontal sum per
    /// dot product costs more instructions than the product itself at typical head sizes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoreChunk(float* q, int nh, int d, float** kRows, int count, float scale, float* scores)
    {
        int pairs = count * nh;
        int t = 0;
        if (Vector512.IsHardwareAccelerated && Avx.IsSupported && d % 16 == 0)
        {
            for (; t <= pairs - 4; t += 4)
            {
                var s = Reduce4(
                    PartialDot512(q + t % nh * d, kRows[t / nh], d),
                    PartialDot512(q + (t + 1) % nh * d, kRows[(t + 1) / nh], d),
                    PartialDot512(q + (t + 2) % nh * d, kRows[(t + 2) / nh], d),
                    PartialDot512(q + (t + 3) % nh * d, kRows[(t + 3) / nh], d)) * scale;
                for (int u = 0; u < 4; u++)
                    scores[(t + u) % nh * KeyChunk + (t + u) / nh] = s.GetElement(u);
            }
        }
        else if (Vector256.IsHardwareAccelerated && Avx.IsSupported && d % 8 == 0)
        {
            for (; t <= pairs - 4; t += 4)
            {
                var s = Reduce4(
                    PartialDot256(q + t % nh * d, kRows[t / nh], d),
                    PartialDot256(q + (t + 1) % nh * d, kRows[(t + 1) / nh], d),
                    PartialDot256(q + (t + 2) % nh * d, kRows[(t + 2) / nh], d),
                    PartialDot256(q + (t + 3) % nh * d, kRows[(t + 3) / nh], d)) * scale;
                for (int u = 0; u < 4; u++)
                    scores[(t + u) % nh * KeyChunk + (t + u) / nh] = s.GetElement(u);
            }
        }
        for (; t < pairs; t++)
            scores[t % nh * KeyChunk + t / nh] = VectorOps.Dot(q + t % nh * d, kRows[t / nh], d) * scale;
    }

    /// <summary>Lane-wise partial sums of a·b over d (a multiple of 16) elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PartialDot512(float* a, float* b, int d)
    {
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        int i = 0;
        for (; i <= d - 32; i += 32)
        {
            acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
            acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
        }
        if (i < d)
            acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
        return acc0 + acc1;
    }

    /// <summary>Lane-wise partial sums of a·b over d (a multiple of 8) elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PartialDot256(float* a, float* b, int d)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= d - 16; i += 16)
        {
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
        }
        if (i < d)
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
        return acc0 + acc1;
    }

    /// <summary>The four horizontal sums of a, b, c, d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
        => Reduce4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());

    /// <summary>The four horizontal sums of a, b, c, d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        // Per 128-bit lane: [a0+a1, a2+a3, b0+b1, b2+b3], then [Σa, Σb, Σc, Σd] of that lane.
        var abcd = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return abcd.GetLower() + abcd.GetUpper();
    }

    /// <summary>Fills the row pointers of the next <paramref name="count"/> keys and prefetches their rows into L2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NextRows(in AttentionJob job, int* blockTable, ref int block, ref int offset, int count, int kvDim, nint headOffset, float** kRows, float** vRows)
    {
        int lineFloats = 64 / sizeof(float);
        for (int j = 0; j < count; j++)
        {
            nint rowOffset = ((nint)blockTable[block] * job.BlockSize + offset) * kvDim + headOffset;
            kRows[j] = job.KCache + rowOffset;
            vRows[j] = job.VCache + rowOffset;
            if (Sse.IsSupported)
            {
                for (int e = 0; e < job.HeadDim; e += lineFloats)
                {
                    Sse.Prefetch1(kRows[j] + e);
                    Sse.Prefetch1(vRows[j] + e);
                }
            }
            if (++offset == job.BlockSize)
            {
                offset = 0;
                block++;
            }
        }
    }

    /// <summary>
    /// acc = acc·correction + Σ p[j]·v[j]: the accumulator slice stays in registers across all keys
    /// of the chunk instead of being loaded and stored once per key.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateValues(float* acc, float correction, float* p, float** v, int count, int d)
    {
        int e = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var c = Vector512.Create(correction);
            for (; e <= d - 64; e += 64)
            {
                var a0 = Vector512.Load(acc + e) * c;
                var a1 = Vector512.Load(acc + e + 16) * c;
                var a2 = Vector512.Load(acc + e + 32) * c;
                var a3 = Vector512.Load(acc + e + 48) * c;
                for (int j = 0; j < count; j++)
                {
                    var pj = Vector512.Create(p[j]);
                    float* vr = v[j] + e;
                    a0 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vr), a0);
                    a1 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vr + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vr + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(vr + 48), a3);
                }
                a0.Store(acc + e);
                a1.Store(acc + e + 16);
                a2.Store(acc + e + 32);
                a3.Store(acc + e + 48);
            }
            for (; e <= d - 16; e += 16)
            {
                var a0 = Vector512.Load(acc + e) * c;
                for (int j = 0; j < count; j++)
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(v[j] + e), a0);
                a0.Store(acc + e);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var c = Vector256.Create(correction);
            for (; e <= d - 32; e += 32)
            {
                var a0 = Vector256.Load(acc + e) * c;
                var a1 = Vector256.Load(acc + e + 8) * c;
                var a2 = Vector256.Load(acc + e + 16) * c;
                var a3 = Vector256.Load(acc + e + 24) * c;
                for (int j = 0; j < count; j++)
                {
                    var pj = Vector256.Create(p[j]);
                    float* vr = v[j] + e;
                    a0 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vr), a0);
                    a1 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vr + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vr + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vr + 24), a3);
                }
                a0.Store(acc + e);
                a1.Store(acc + e + 8);
                a2.Store(acc + e + 16);
                a3.Store(acc + e + 24);
            }
            for (; e <= d - 8; e += 8)
            {
                var a0 = Vector256.Load(acc + e) * c;
                for (int j = 0; j < count; j++)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), Vector256.Load(v[j] + e), a0);
                a0.Store(acc + e);
            }
        }
        for (; e < d; e++)
        {
            float a = acc[e] * correction;
            for (int j = 0; j < count; j++)
                a += p[j] * v[j][e];
            acc[e] = a;
        }
    }
}
