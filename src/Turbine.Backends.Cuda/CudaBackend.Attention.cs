using System.Numerics;
using Turbine.Backends.Cuda.Native;
using Turbine.Core.Models;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

// RoPE, the KV-cache write and paged attention: prompt steps and decode steps have kernels of their own.
public sealed unsafe partial class CudaBackend
{
    // RoPE queued for the next Attention, which applies it while writing k to the cache (one launch instead of two).
    private bool _rotaryPending;
    private ulong _rotaryQ, _rotaryK;
    private int _rotaryHeads, _rotaryKvHeads, _rotaryHeadDim;

    /// <inheritdoc />
    public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim)
    {
        // The style is in the fingerprint: a graph bakes it into its launch.
        if (Deferred(new StepOperation(OperationKind.Rotary, q, k, I0: heads, I1: kvHeads, I2: headDim, I3: (int)Step.RotaryStyle)))
            return;
        ulong qp = Ptr(q), kp = Ptr(k);
        // Queued linears launch, but a GEMM result they leave stays pending: the attention's RoPE + KV write sums it.
        FlushLinears();
        FlushRotary();
        (_rotaryQ, _rotaryK, _rotaryHeads, _rotaryKvHeads, _rotaryHeadDim) = (qp, kp, heads, kvHeads, headDim);
        _rotaryPending = true;
        if (!_options.Fuse)
            FlushRotary();
    }

    // Launches a queued RoPE on its own (the next operation is not the attention that would have applied it).
    private void FlushRotary()
    {
        if (!_rotaryPending)
            return;
        Materialize();
        _rotaryPending = false;
        int half = Step.RotaryHalfDim, heads = _rotaryHeads, kvHeads = _rotaryKvHeads, headDim = _rotaryHeadDim;
        int interleaved = Step.RotaryStyle == RotaryStyle.Interleaved ? 1 : 0;
        ulong qp = _rotaryQ, kp = _rotaryK, cos = _meta + (ulong)_cosOff, sin = _meta + (ulong)_sinOff;
        void** args = stackalloc void*[] { &qp, &kp, &cos, &sin, &heads, &kvHeads, &headDim, &half, &interleaved };
        _activeProfiler?.Begin("rope");
        Run("rope", (uint)Step.TokenCount, 1, 1, 256, 1, 0, args);
        _activeProfiler?.End();
    }

    /// <inheritdoc />
    public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow)
    {
        if (Deferred(new StepOperation(OperationKind.Attention, cache, q, k, v, output, layer, heads, kvHeads, headDim, slidingWindow, scale)))
            return;
        var kv = (CudaKvCache)cache;
        ulong qp = Ptr(q), kp = Ptr(k), vp = Ptr(v), op = Ptr(output);
        var batch = Step;
        if (heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads are not a multiple of {kvHeads} KV heads");
        int tokens = batch.TokenCount, kvDim = kvHeads * headDim, half = batch.RotaryHalfDim;
        bool rotary = _rotaryPending && _rotaryQ == qp && _rotaryK == kp && _rotaryHeads == heads && _rotaryKvHeads == kvHeads
            && _rotaryHeadDim == headDim;
        // Straight after the q/k/v GEMM: its epilogue (halves, biases) runs in the RoPE + KV write.
        QkvSource source = default;
        if (_pendingCount > 0)
            FlushLinears();
        bool fresh = rotary && TakeLazyQkv(qp, kp, vp, heads * headDim, kvDim, tokens, out source);
        Materialize();
        string type = kv.Suffix;
        ulong slots = _meta + (ulong)_slotsOff, kc = kv.Keys(layer), vc = kv.Values(layer);
        long lo = kv.LowOffset;
        // F24: 3 headDim % 16 == 0 exactly when its rows of hi halves and of low bytes are both whole 16-byte chunks.
        bool decode = _tileCount == 0 && headDim * kv.ElementBytes % 16 == 0;
        var rope = default(DecodeRope);
        if (rotary && fresh && decode && _options.Fuse)
        {
            // The decode attention rotates q and k and writes the new K/V rows itself: one launch less a layer.
            _rotaryPending = false;
            rope = new DecodeRope
            {
                Source = source, Cos = _meta + (ulong)_cosOff, Sin = _meta + (ulong)_sinOff, Slots = slots, Q = qp, K = kp, V = vp, Half = half,
                Interleaved = batch.RotaryStyle == RotaryStyle.Interleaved ? 1 : 0,
            };
        }
        else if (rotary)
        {
            _rotaryPending = false;
            ulong cos = _meta + (ulong)_cosOff, sin = _meta + (ulong)_sinOff;
            int interleaved = batch.RotaryStyle == RotaryStyle.Interleaved ? 1 : 0;
            void** fused = stackalloc void*[] { &qp, &kp, &vp, &cos, &sin, &slots, &kc, &vc, &lo, &heads, &kvHeads, &headDim, &half, &interleaved, &source };
            // A thread per 4 floats of a token's row where rotary and head widths are multiples of 4 (16-byte accesses).
            int width = half % 4 == 0 && headDim % 4 == 0 ? 4 : 1;
            int pieces = (heads + kvHeads) * (headDim - half) / width + kvDim / width;
            _activeProfiler?.Begin(fresh ? "rope + kv_write (with the q/k/v epilogue)" : "rope + kv_write");
            Run($"rope_kv_write_{type}_{width}", (uint)tokens, (uint)((pieces + 127) / 128), 1, 128, 1, 0, fused);
            _activeProfiler?.End();
        }
        else
        {
            FlushRotary();
            _activeProfiler?.Begin("kv_write");
            void** write = stackalloc void*[] { &kp, &vp, &slots, &kc, &vc, &lo, &kvDim };
            Run("kv_write_" + type, (uint)tokens, 1, 1, 256, 1, 0, write);
            _activeProfiler?.End();
        }

        if (decode)
        {
            DecodeAttention(kv, qp, op, kc, vc, tokens, heads, kvHeads, headDim, scale, slidingWindow, rope);
            return;
        }
        if (_tileCount > 0 && headDim == TensorCoreHeadDim && _options.TensorCoreAttention)
        {
            PromptAttentionTensorCores(kv, qp, op, kc, vc, heads, kvHeads, scale, slidingWindow);
            return;
        }
        var (headsPerBlock, chunks) = GroupBlocks(heads / kvHeads);
        int tokensPerBlock = _tileCount > 0 ? QueryTile : 1;
        int gridX = _tileCount > 0 ? _tileCount : tokens, gridY = kvHeads * chunks;
        long blocks = (long)gridX * gridY;
        // Few blocks (decode of small batches) leave SMs idle: each context is cut into key splits that the last one
        // to finish merges. Decode steps take a split count that depends only on their shape (graphs replay it as
        // contexts grow); prompt steps take no more splits than they have key tiles.
        long target = 4L * _device.Multiprocessors;
        int splits = blocks >= target ? 1 : (int)Math.Min(MaxSplits, (target + blocks - 1) / blocks);
        if (_tileCount > 0)
            splits = Math.Min(splits, Math.Max(1, (_maxContext + KeyTile - 1) / KeyTile));
        if (splits > 1)
        {
            Grow(ref _partial, ref _partialBytes, (long)tokens * heads * splits * (headDim + 2) * 4, "attention partials");
            Grow(ref _counters, ref _countersBytes, blocks * 4, "attention split counters", zero: true);
        }
        ulong tokSeq = _meta + (ulong)_tokSeqOff, seqs = _meta + (ulong)_seqsOff, tables = _meta + (ulong)_tablesOff,
            tileList = _tileCount > 0 ? _meta + (ulong)_tilesOff : 0, partial = _partial, counters = _counters;
        int blockSize = kv.Shape.BlockSize;
        int warps = tokensPerBlock;
        uint shared = (uint)((KeyTile * (headDim + 4) + KeyTile * headDim + warps * headsPerBlock * headDim) * 4);
        string kernel = $"attention_{type}_{headsPerBlock}_{(headDim <= 128 ? 4 : 8)}";
        var fn = _device.Function(kernel);
        RaiseShared(fn, shared, PromptAttentionShared);
        void** args = stackalloc void*[]
        {
            &qp, &op, &kc, &vc, &lo, &tokSeq, &seqs, &tables, &tileList, &heads, &kvHeads, &headDim, &chunks, &scale, &blockSize,
            &slidingWindow, &partial, &counters,
        };
        _activeProfiler?.Begin("attention");
        _device.Launch(fn, kernel, (uint)gridX, (uint)gridY, (uint)splits, 32, (uint)warps, shared, args);
        _activeProfiler?.End();
    }

    // Prompt attention on tensor cores (attention_tc_*): a block per (query tile of 32 tokens, up to 4 heads of one KV head),
    // a warp per (16 of the tile's tokens, head); each key tile is copied to shared memory while the block computes on the one
    // before.
    private void PromptAttentionTensorCores(CudaKvCache kv, ulong qp, ulong op, ulong kc, ulong vc, int heads, int kvHeads, float scale,
        int slidingWindow)
    {
        var (headsPerBlock, chunks) = GroupBlocks(heads / kvHeads, TensorCoreBlockHeads);
        ulong tables = _meta + (ulong)_tablesOff, tileList = _meta + (ulong)_tcTilesOff;
        int blockSize = kv.Shape.BlockSize;
        long lo = kv.LowOffset;
        // Key tiles of 64 keys for 4 heads, 32 for fewer: two buffers of their f16 hi and lo of K and V (rows of 136), and the
        // raw slots they are copied to, an odd number of 16-byte units per 16 elements.
        int keys = headsPerBlock == 4 ? 64 : 32;
        uint shared = (uint)(keys * (2 * 4 * (TensorCoreHeadDim + 8) * 2 + 16 * 16 * (kv.ElementBytes | 1)));
        string kernel = $"attention_tc_{kv.Suffix}_{headsPerBlock}";
        var fn = _device.Function(kernel);
        RaiseShared(fn, shared, (int)shared);
        var split = OutputSplit(Step.TokenCount, (long)Step.TokenCount * heads * TensorCoreHeadDim);
        void** args = stackalloc void*[]
        {
            &qp, &op, &kc, &vc, &lo, &tables, &tileList, &heads, &kvHeads, &chunks, &scale, &blockSize, &slidingWindow, &split,
        };
        _activeProfiler?.Begin("attention (tensor cores)");
        _device.Launch(fn, kernel, (uint)_tcTileCount, (uint)(kvHeads * chunks), 1, 32, (uint)(2 * headsPerBlock), shared, args);
        _activeProfiler?.End();
        if (split.Data != 0)
            SplitWritten(op, split.Count, _gemmType);
    }

    // In GEMM steps the attention's output is the o GEMM's input: the attention kernel writes its 16-bit split too.
    private AttentionSplit OutputSplit(int tokens, long count) => new()
    {
        Data = SplitTarget(_gemmType, tokens, count), Count = count, Two = Halves(_gemmType) - 1, F16 = _gemmType == DType.F16 ? 1 : 0,
    };

    // The attention kernels give a block the query heads of one KV head, at most `most` of them (a power of two), and come
    // in blocks of 1, 2, 4 or 8 heads: a group is cut into `chunks` equal blocks, each rounded up to a power of two (a group
    // of 7 runs as 8 with one idle).
    private static (int HeadsPerBlock, int Chunks) GroupBlocks(int group, int most = MaxBlockHeads)
    {
        int chunks = (group + most - 1) / most, perBlock = (group + chunks - 1) / chunks;
        return ((int)BitOperations.RoundUpToPowerOf2((uint)perBlock), chunks);
    }

    // Decode steps whose K/V rows are whole 16-byte chunks: attention_decode_* (turbine.cu), a block of 2 to 4 warps per
    // (token, up to 8 query heads of one KV head, key split). Every launch argument depends on the step's shape alone, as
    // graphs need.
    private void DecodeAttention(CudaKvCache kv, ulong qp, ulong op, ulong kc, ulong vc, int tokens, int heads, int kvHeads, int headDim,
        float scale, int slidingWindow, DecodeRope rope)
    {
        var (blockHeads, chunks) = GroupBlocks(heads / kvHeads);
        int log2Heads = BitOperations.Log2((uint)blockHeads), wide = headDim <= 128 ? 0 : 1;
        long slotBytes = 2L * DecodeKeys * headDim * kv.ElementBytes;
        // Ring slots per warp: the copies of every slot are in flight while the warp waits for the oldest. F24 rows of 128 dims
        // get 2 (12 KB); 3 and 4 measured no faster (batch 64: 39.2 and 39.1 µs against 38.7 at context 192, 162.0 and 173.4
        // against 158.7 at 1024).
        int stages = (int)Math.Clamp(DecodeWarpRingBytes / slotBytes, 2, 4);
        // A warp's ring, then its round's probabilities and corrections (8 keys × heads + heads floats, in whole float4s).
        long warpBytes = stages * slotBytes + 4L * ((DecodeKeys * blockHeads + blockHeads + 3) & ~3);
        long blocks = (long)tokens * kvHeads * chunks;
        // Blocks of w warps resident at once, as registers and shared memory allow.
        long Resident(int w) =>
            (long)BlocksPerMultiprocessor(DecodeKernels[(int)kv.Type, log2Heads, wide, w - 2]!, w * 32, w * warpBytes) * _device.Multiprocessors;
        int warps = 4, splits = 1, minKeys = 64;
        long resident = Resident(4);
        if (blocks < resident)
        {
            // Under one wave (small batches): contexts cut into as many splits as fill the GPU, of 64 keys at least.
            splits = (int)Math.Clamp(resident / blocks, 1, MaxSplits);
        }
        else if (wide == 0 && blocks <= Resident(3))
        {
            // One wave of smaller blocks rather than a second, mostly idle one (batch 64 of 8 KV heads on float32: 512 blocks,
            // 396 of 4 warps resident, 528 of 3; context 192 measured 45.2 µs with 3 warps, 45.5 with 2, 48.3 with 4).
            warps = 3;
        }
        else if (wide == 0 && blocks <= Resident(2))
            warps = 2;
        else
        {
            // Past one wave: contexts of more than 256 keys in two splits where that fills the last wave better.
            double waves = (double)blocks / resident;
            splits = 2 * waves / Math.Ceiling(2 * waves) > waves / Math.Ceiling(waves) + 0.15 ? 2 : 1;
            minKeys = 256;
        }
        if (splits > 1)
        {
            Grow(ref _partial, ref _partialBytes, (long)tokens * heads * splits * (headDim + 4) * 4, "attention partials");
            Grow(ref _counters, ref _countersBytes, blocks * 4, "attention split counters", zero: true);
        }
        // The rings, which the warps' states and the split weights reuse once they are done.
        long merge = 4L * Math.Max(warps * blockHeads * (headDim + 2), blockHeads * splits);
        uint shared = (uint)Math.Max(warps * warpBytes, merge);
        string kernel = DecodeKernels[(int)kv.Type, log2Heads, wide, warps - 2]!;
        var fn = _device.Function(kernel);
        RaiseShared(fn, shared, DecodeAttentionShared);
        ulong tokSeq = _meta + (ulong)_tokSeqOff, seqs = _meta + (ulong)_seqsOff, tables = _meta + (ulong)_tablesOff, partial = _partial,
            counters = _counters;
        int blockSize = kv.Shape.BlockSize;
        long lo = kv.LowOffset;
        var split = OutputSplit(tokens, (long)tokens * heads * headDim);
        void** args = stackalloc void*[]
        {
            &qp, &op, &kc, &vc, &lo, &tokSeq, &seqs, &tables, &heads, &kvHeads, &headDim, &chunks, &scale, &blockSize, &slidingWindow,
            &stages, &minKeys, &partial, &counters, &split, &rope,
        };
        _activeProfiler?.Begin(rope.Source.Acc != 0 ? "attention (with rope + kv_write and the q/k/v epilogue)" : "attention");
        _device.Launch(fn, kernel, (uint)tokens, (uint)(kvHeads * chunks), (uint)splits, (uint)(warps * 32), 1, shared, args);
        _activeProfiler?.End();
        if (split.Data != 0)
            SplitWritten(op, split.Count, _gemmType);
    }

    // The kernels' DecodeRope: the q/k/v GEMM result that attention_decode_* rotates and writes to q, k, v and the cache
    // itself (Source.Acc 0: already done by rope_kv_write).
    private struct DecodeRope
    {
        public QkvSource Source;
        public ulong Cos, Sin, Slots, Q, K, V;
        public int Half, Interleaved;
    }

    // The kernels' AttentionSplit: where attention_decode_* and attention_tc_* also write its output as the next GEMM's 16-bit input.
    private struct AttentionSplit
    {
        public ulong Data;
        public long Count;
        public int Two;
        public int F16;
    }

    // Decode blocks of a kernel one multiprocessor runs at once with `shared` bytes of dynamic shared memory, by kernel and
    // bytes (asked of the driver once: decode steps replay the same few shapes).
    private readonly Dictionary<(string Kernel, long Shared), int> _decodeOccupancy = [];

    private int BlocksPerMultiprocessor(string kernel, int threads, long shared)
    {
        if (_decodeOccupancy.TryGetValue((kernel, shared), out int count))
            return count;
        var fn = _device.Function(kernel);
        RaiseShared(fn, (uint)shared, DecodeAttentionShared);
        Driver.Check(Driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&count, fn, threads, (nuint)shared), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        count = Math.Max(1, count);
        _decodeOccupancy[(kernel, shared)] = count;
        return count;
    }

    // Lets `fn` take up to `limit` bytes of dynamic shared memory (once per kernel) where it asks for more than the default 48 KB.
    private void RaiseShared(nint fn, uint shared, int limit)
    {
        if (shared > 48 * 1024 && _sharedRaised.Add(fn))
            Driver.Check(Driver.cuFuncSetAttribute(fn, Driver.FuncAttrMaxDynamicSharedSize, limit), "cuFuncSetAttribute(attention)");
    }

    // attention_decode_{f32|f16|bf16|f24}_{1|2|4|8 heads a block}_{1|2: up to 128 or 256 dims}_{2|3|4 warps}, by [cache type, log2
    // heads, dims > 128, warps - 2]; blocks of 2 and 3 warps only for up to 128 dims (null otherwise).
    private static readonly string?[,,,] DecodeKernels = DecodeKernelNames();

    private static string?[,,,] DecodeKernelNames()
    {
        var names = new string?[Enum.GetValues<CudaKvCacheType>().Length, 4, 2, 3];
        foreach (var type in Enum.GetValues<CudaKvCacheType>())
            for (int h = 0; h < 4; h++)
                for (int c = 0; c < 2; c++)
                    for (int w = 2; w <= 4; w++)
                        names[(int)type, h, c, w - 2] = c == 0 || w == 4 ? $"attention_decode_{type.ToString().ToLowerInvariant()}_{1 << h}_{c + 1}_{w}" : null;
        return names;
    }

    /// <inheritdoc />
    public void CopyKvBlock(KvCacheStorage cache, int source, int destination)
    {
        _device.MakeCurrent();
        EndStepBody();
        var kv = (CudaKvCache)cache;
        foreach (var (offset, bytes) in kv.Planes)
        {
            ulong block = (ulong)kv.Shape.BlockSize * (ulong)kv.Shape.SlotWidth * (ulong)bytes;
            for (int layer = 0; layer < kv.Shape.Layers; layer++)
            {
                ulong keys = kv.Keys(layer) + (ulong)offset, values = kv.Values(layer) + (ulong)offset;
                Driver.Check(Driver.cuMemcpyDtoDAsync(keys + (ulong)destination * block, keys + (ulong)source * block, (nuint)block, _device.Stream),
                    "copying a K block");
                Driver.Check(Driver.cuMemcpyDtoDAsync(values + (ulong)destination * block, values + (ulong)source * block, (nuint)block, _device.Stream),
                    "copying a V block");
            }
        }
    }
}
