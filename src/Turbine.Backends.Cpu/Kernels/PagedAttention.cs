using System.Buffers;
using System.Numerics.Tensors;

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
            float* acc = stackalloc float[MaxHeadsPerItem * MaxHeadDim];
            float* scores = stackalloc float[MaxHeadsPerItem * KeyChunk];
            float* max = stackalloc float[MaxHeadsPerItem];
            float* sum = stackalloc float[MaxHeadsPerItem];
            new Span<float>(acc, nh * d).Clear();
            for (int h = 0; h < nh; h++)
            {
                max[h] = float.NegativeInfinity;
                sum[h] = 0;
            }

            for (int j0 = start; j0 <= pos; j0 += KeyChunk)
            {
                int jc = Math.Min(KeyChunk, pos + 1 - j0);
                for (int jj = 0; jj < jc; jj++)
                {
                    float* krow = KCache + SlotOf(seq.BlockTable, j0 + jj) * kvDim + (nint)kvHead * d;
                    for (int h = 0; h < nh; h++)
                        scores[h * KeyChunk + jj] = VectorOps.Dot(qh + h * d, krow, d) * Scale;
                }
                for (int h = 0; h < nh; h++)
                {
                    var sc = new Span<float>(scores + h * KeyChunk, jc);
                    float m = Math.Max(max[h], TensorPrimitives.Max(sc));
                    float correction = MathF.Exp(max[h] - m);
                    max[h] = m;
                    TensorPrimitives.Subtract(sc, m, sc);
                    TensorPrimitives.Exp(sc, sc);
                    sum[h] = sum[h] * correction + TensorPrimitives.Sum(sc);
                    if (correction != 1f)
                        VectorOps.Scale(correction, acc + h * d, d);
                }
                for (int jj = 0; jj < jc; jj++)
                {
                    float* vrow = VCache + SlotOf(seq.BlockTable, j0 + jj) * kvDim + (nint)kvHead * d;
                    for (int h = 0; h < nh; h++)
                        VectorOps.MultiplyAdd(scores[h * KeyChunk + jj], vrow, acc + h * d, d);
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

        private readonly nint SlotOf(int* blockTable, int position)
            => (nint)blockTable[position / BlockSize] * BlockSize + position % BlockSize;
    }
}
