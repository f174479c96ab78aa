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
    private const int KeyChunk = 32;
    // Bounds the stack an item uses for its accumulators (numHeads × headDim floats).
    private const int MaxHeadsTimesDim = 32 * 1024;
    // A split of one query's keys is not made smaller than this: merging partials has a cost too.
    private const int MinKeysPerSplit = 128;

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
    /// <param name="pool">Threads to spread the (query token, key range) items over.</param>
    public static void Forward(float* q, float* output, int numHeads, int numKvHeads, int headDim, float scale,
        float* kCache, float* vCache, int blockSize, ReadOnlySpan<AttentionSequence> seqs, int slidingWindow, WorkerPool pool)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numKvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        ArgumentNullException.ThrowIfNull(pool);
        if (numHeads % numKvHeads != 0)
            throw new ArgumentException("numHeads must be a multiple of numKvHeads.", nameof(numKvHeads));
        if (headDim <= 0 || (long)numHeads * headDim > MaxHeadsTimesDim)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"numHeads × headDim must be in 1..{MaxHeadsTimesDim}");
        if (seqs.IsEmpty)
            return;

        int tokens = 0, maxKeys = 0;
        foreach (ref readonly var s in seqs)
        {
            if (s.QueryLength < 0 || s.QueryLength > s.ContextLength)
                throw new ArgumentException("Each sequence needs 0 <= QueryLength <= ContextLength.", nameof(seqs));
            tokens += s.QueryLength;
            if (s.QueryLength > 0)
                maxKeys = Math.Max(maxKeys, slidingWindow > 0 ? Math.Min(slidingWindow, s.ContextLength) : s.ContextLength);
        }
        if (tokens == 0)
            return;
        // An item is one query token with all its heads, so each key and value row is read whole and
        // in order. Few tokens (decode) cannot keep the threads busy that way: their keys are then
        // split into ranges whose partial softmax results are merged afterwards (flash-decoding).
        int splits = 1;
        if (tokens < 4 * pool.ThreadCount)
            splits = Math.Clamp(Math.Min((4 * pool.ThreadCount + tokens - 1) / tokens, maxKeys / MinKeysPerSplit), 1, 64);

        // Prefix sums of query lengths map a flat token ordinal back to its sequence.
        int[]? rented = null;
        Span<int> ends = seqs.Length <= 256 ? stackalloc int[seqs.Length] : (rented = ArrayPool<int>.Shared.Rent(seqs.Length));
        int acc = 0;
        for (int i = 0; i < seqs.Length; i++)
            ends[i] = acc += seqs[i].QueryLength;
        try
        {
            int partialStride = numHeads * (headDim + 2);
            fixed (AttentionSequence* sp = seqs)
            fixed (int* ep = ends)
            {
                var job = new AttentionJob
                {
                    Q = q, Output = output, NumHeads = numHeads, HeadDim = headDim, Scale = scale,
                    KCache = kCache, VCache = vCache, BlockSize = blockSize, Seqs = sp, Ends = ep, SeqCount = seqs.Length,
                    Window = slidingWindow, Group = numHeads / numKvHeads, KvDim = numKvHeads * headDim, Splits = splits,
                    Partials = splits > 1 ? pool.Scratch(tokens * splits * partialStride) : null,
                };
                pool.For(tokens * splits, job);
                if (splits > 1)
                    MergeSplits(job.Partials, tokens, splits, numHeads, headDim, ends, sp, output);
            }
        }
        finally
        {
            if (rented != null)
                ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Combines the per-range (max, sum, unnormalised output) partials of each query token and head:
    /// every range is rescaled to the common maximum before sums and outputs are added.
    /// </summary>
    private static void MergeSplits(float* partials, int tokens, int splits, int numHeads, int d, Span<int> ends, AttentionSequence* seqs, float* output)
    {
        int stride = numHeads * (d + 2);
        int s = 0;
        for (int t = 0; t < tokens; t++)
        {
            while (ends[s] <= t)
                s++;
            int row = seqs[s].QueryStart + t - (ends[s] - seqs[s].QueryLength);
            for (int h = 0; h < numHeads; h++)
            {
                float* o = output + ((nint)row * numHeads + h) * d;
                float max = float.NegativeInfinity;
                for (int p = 0; p < splits; p++)
                    max = Math.Max(max, partials[((nint)t * splits + p) * stride + h * (d + 2)]);
                new Span<float>(o, d).Clear();
                float sum = 0;
                for (int p = 0; p < splits; p++)
                {
                    float* part = partials + ((nint)t * splits + p) * stride + h * (d + 2);
                    if (part[1] == 0)
                        continue; // an empty range
                    float w = MathF.Exp(part[0] - max);
                    sum += part[1] * w;
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(part + 2, d), w, new ReadOnlySpan<float>(o, d), new Span<float>(o, d));
                }
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(o, d), 1f / sum, new Span<float>(o, d));
            }
        }
    }

    private struct AttentionJob : IParallelJob
    {
        public float* Q;
        public float* Output;
        public int NumHeads;
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
        public int KvDim;
        public int Splits;
        public float* Partials;

        // Scratch is fully written before it is read; zeroing it would cost more than small items do.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index)
        {
            int ordinal = index / Splits;
            int part = index % Splits;

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
            int keys = pos + 1 - start;
            int first = start + (int)((long)keys * part / Splits);
            int last = start + (int)((long)keys * (part + 1) / Splits) - 1;

            int d = HeadDim;
            int nh = NumHeads;
            float* qh = Q + (nint)row * nh * d;
            float* acc = stackalloc float[nh * d];
            float* scores = stackalloc float[nh * KeyChunk];
            float* max = stackalloc float[nh];
            float* sum = stackalloc float[nh];
            int* kvOffset = stackalloc int[nh];
            float** kRows = stackalloc float*[KeyChunk];
            float** vRows = stackalloc float*[KeyChunk];
            new Span<float>(acc, nh * d).Clear();
            for (int h = 0; h < nh; h++)
            {
                max[h] = float.NegativeInfinity;
                sum[h] = 0;
                kvOffset[h] = h / Group * d;
            }

            // Walk the block table incrementally: one division per item, not two per key.
            int block = first / BlockSize;
            int offset = first - block * BlockSize;
            for (int j0 = first; j0 <= last; j0 += KeyChunk)
            {
                int jc = Math.Min(KeyChunk, last + 1 - j0);
                for (int j = 0; j < jc; j++)
                {
                    nint rowOffset = ((nint)seq.BlockTable[block] * BlockSize + offset) * KvDim;
                    kRows[j] = KCache + rowOffset;
                    vRows[j] = VCache + rowOffset;
                    if (++offset == BlockSize)
                    {
                        offset = 0;
                        block++;
                    }
                }

                ScoreChunk(qh, nh, d, kvOffset, kRows, vRows, jc, Scale, scores);
                for (int h = 0; h < nh; h++)
                {
                    float* sc = scores + h * KeyChunk;
                    float m = max[h];
                    for (int j = 0; j < jc; j++)
                        m = Math.Max(m, sc[j]);
                    float correction = MathF.Exp(max[h] - m);
                    max[h] = m;
                    var span = new Span<float>(sc, jc);
                    TensorPrimitives.Subtract(span, m, span);
                    TensorPrimitives.Exp(span, span);
                    sum[h] = sum[h] * correction + TensorPrimitives.Sum(span);
                    AccumulateValues(acc + h * d, correction, sc, vRows, kvOffset[h], jc, d);
                }
            }

            if (Partials == null)
            {
                float* oh = Output + (nint)row * nh * d;
                for (int h = 0; h < nh; h++)
                    TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc + h * d, d), 1f / sum[h], new Span<float>(oh + h * d, d));
            }
            else
            {
                float* dst = Partials + (nint)index * nh * (d + 2);
                for (int h = 0; h < nh; h++)
                {
                    dst[h * (d + 2)] = max[h];
                    dst[h * (d + 2) + 1] = sum[h];
                    Buffer.MemoryCopy(acc + h * d, dst + h * (d + 2) + 2, d * sizeof(float), d * sizeof(float));
                }
            }
        }
    }

    /// <summary>
    /// scores[h·KeyChunk + j] = scale · q_h · k_j[kvOffset[h]..] for every head and key of the chunk,
    /// key by key so that each key row is read whole and in order. (key, head) pairs are reduced four
    /// at a time with horizontal adds: a lone horizontal sum per dot product costs more instructions
    /// than the product itself at typical head sizes. The value rows of the chunk are prefetched
    /// meanwhile, as their heads are read later one slice of all rows at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoreChunk(float* q, int nh, int d, int* kvOffset, float** kRows, float** vRows, int count, float scale, float* scores)
    {
        if (Sse.IsSupported)
        {
            int rowFloats = (kvOffset[nh - 1] + d) & ~15;
            for (int j = 0; j < count; j++)
            {
                for (int e = 0; e < rowFloats; e += 16)
                    Sse.Prefetch0(vRows[j] + e);
            }
        }
        int pairs = count * nh;
        int t = 0, key = 0, head = 0;
        if (Vector512.IsHardwareAccelerated && Avx.IsSupported && d % 16 == 0)
        {
            for (; t <= pairs - 4; t += 4)
            {
                int h0 = head, j0 = key;
                var p0 = PartialDot512(q + h0 * d, kRows[j0] + kvOffset[h0], d);
                Advance(ref key, ref head, nh);
                int h1 = head, j1 = key;
                var p1 = PartialDot512(q + h1 * d, kRows[j1] + kvOffset[h1], d);
                Advance(ref key, ref head, nh);
                int h2 = head, j2 = key;
                var p2 = PartialDot512(q + h2 * d, kRows[j2] + kvOffset[h2], d);
                Advance(ref key, ref head, nh);
                int h3 = head, j3 = key;
                var p3 = PartialDot512(q + h3 * d, kRows[j3] + kvOffset[h3], d);
                Advance(ref key, ref head, nh);
                var s = Reduce4(p0, p1, p2, p3) * scale;
                scores[h0 * KeyChunk + j0] = s.GetElement(0);
                scores[h1 * KeyChunk + j1] = s.GetElement(1);
                scores[h2 * KeyChunk + j2] = s.GetElement(2);
                scores[h3 * KeyChunk + j3] = s.GetElement(3);
            }
        }
        else if (Vector256.IsHardwareAccelerated && Avx.IsSupported && d % 8 == 0)
        {
            for (; t <= pairs - 4; t += 4)
            {
                int h0 = head, j0 = key;
                var p0 = PartialDot256(q + h0 * d, kRows[j0] + kvOffset[h0], d);
                Advance(ref key, ref head, nh);
                int h1 = head, j1 = key;
                var p1 = PartialDot256(q + h1 * d, kRows[j1] + kvOffset[h1], d);
                Advance(ref key, ref head, nh);
                int h2 = head, j2 = key;
                var p2 = PartialDot256(q + h2 * d, kRows[j2] + kvOffset[h2], d);
                Advance(ref key, ref head, nh);
                int h3 = head, j3 = key;
                var p3 = PartialDot256(q + h3 * d, kRows[j3] + kvOffset[h3], d);
                Advance(ref key, ref head, nh);
                var s = Reduce4(p0, p1, p2, p3) * scale;
                scores[h0 * KeyChunk + j0] = s.GetElement(0);
                scores[h1 * KeyChunk + j1] = s.GetElement(1);
                scores[h2 * KeyChunk + j2] = s.GetElement(2);
                scores[h3 * KeyChunk + j3] = s.GetElement(3);
            }
        }
        for (; t < pairs; t++)
        {
            scores[head * KeyChunk + key] = VectorOps.Dot(q + head * d, kRows[key] + kvOffset[head], d) * scale;
            Advance(ref key, ref head, nh);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Advance(ref int key, ref int head, int nh)
    {
        if (++head == nh)
        {
            head = 0;
            key++;
        }
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

    /// <summary>
    /// acc = acc·correction + Σ p[j]·v[j][vOffset..vOffset+d]: the accumulator slice stays in registers across all keys
    /// of the chunk instead of being loaded and stored once per key.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateValues(float* acc, float correction, float* p, float** v, int vOffset, int count, int d)
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
                    float* vr = v[j] + vOffset + e;
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
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(v[j] + vOffset + e), a0);
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
                    float* vr = v[j] + vOffset + e;
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
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), Vector256.Load(v[j] + vOffset + e), a0);
                a0.Store(acc + e);
            }
        }
        for (; e < d; e++)
        {
            float a = acc[e] * correction;
            for (int j = 0; j < count; j++)
                a += p[j] * v[j][vOffset + e];
            acc[e] = a;
        }
    }
}
