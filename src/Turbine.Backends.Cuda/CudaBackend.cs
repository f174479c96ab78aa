using Turbine.Backends.Cuda.Native;
using Turbine.Core.Checkpoints;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

/// <summary>
/// The decoder's operations on an NVIDIA GPU: weights uploaded once in their checkpoint dtype, float32 activations,
/// a paged KV cache in device memory, kernels compiled by NVRTC for the device, GEMV kernels for steps of few rows
/// and cuBLAS tensor-core GEMMs for many. Every call is queued on one stream; <see cref="Download"/> waits for it.
/// Decode steps are captured as CUDA graphs, one per batch size, and replayed: see <see cref="CudaBackendOptions.Graphs"/>.
/// With <see cref="CudaBackendOptions.Fuse"/>, operations are launched late so that neighbours share a kernel: linears of
/// one input share a GEMM, a GEMM's epilogue runs in the operation that reads its result (RMSNorm, RoPE + KV write), and
/// the kernel before a GEMM writes that GEMM's 16-bit input split.
/// </summary>
public sealed unsafe partial class CudaBackend : IComputeBackend, IDeviceMemory
{
    // Rows one GEMV launch handles (the largest kernel instance).
    private const int GemvRows = 8;
    private const int KeyTile = 32;
    // Query tokens of one sequence that share each staged key tile in steps with prompt chunks (a warp each, every warp
    // computing all of the block's heads).
    private const int QueryTile = 16;
    private const int MaxHeadDim = 256;
    // Key splits of one attention launch at most (decode of small batches: batch 1 of 8 head groups wants 66).
    private const int MaxSplits = 64;
    // attention_decode_*: keys a warp takes per round, and the shared memory of a warp's K/V ring: rows of 128 dims get 2
    // slots on float32 (16 KB), 3 on 16-bit caches (16 KB there, 4 slots, measured up to 6% slower: batch 1 × 8192).
    private const int DecodeKeys = 8;
    private const long DecodeWarpRingBytes = 12 << 10;
    // Query heads of one KV head that an attention block (prompt or decode) computes at most.
    private const int MaxBlockHeads = 8;
    private const long CublasWorkspaceBytes = 32L << 20;
    // Dynamic shared memory the prompt attention kernels opt into: the most any of them needs (8 heads of 256 dims for
    // 16 tokens, 193 KB), under sm_90's 227 KB a block.
    private const int PromptAttentionShared = 200 * 1024;
    // Dynamic shared memory the decode attention kernels opt into: their rings, states and split weights stay under it.
    private const int DecodeAttentionShared = 160 * 1024;
    // attention_tc_*: the head width it takes, the query tokens of a block (2 row groups of 16), and the query heads of one
    // KV head a block computes at most (2 × 4 warps of up to 255 registers: one block a multiprocessor).
    private const int TensorCoreHeadDim = 128;
    private const int TensorCoreQueryTile = 32;
    private const int TensorCoreBlockHeads = 4;

    private readonly CudaDevice _device;
    private readonly CudaBackendOptions _options;
    private readonly WeightArena _arena;
    // Fp8Lo's e4m3 weight copies and their scales, each in upload order, so that the copies of linears stacked in _arena
    // (q, k, v; gate, up) mostly lie back to back too and share one fp8 GEMM.
    private readonly WeightArena _fp8Arena, _fp8Scales;
    private Profiler? _profiler;
    private Profiler? _activeProfiler;
    private ForwardBatch? _batch;

    // Step metadata: written to pinned host memory, copied in one transfer to _meta. Two staging areas take turns, so a
    // step is prepared while the copy out of the other one (the step before, still queued) waits for the GPU; each
    // copy records an event that the step after next waits for before rewriting its area.
    private byte* _staging;
    private readonly nint[] _stagingAreas = new nint[2];
    private readonly nint[] _stagingCopied = new nint[2];
    private int _stagingArea;
    private long _stagingBytes;
    // Queued argmax results (QueueArgMax): ids copied to pinned host slots, each with an event, oldest at _queuedHead.
    private readonly nint[] _queuedHost = new nint[2];
    private readonly int[] _queuedCapacity = new int[2];
    private readonly int[] _queuedRows = new int[2];
    private readonly nint[] _queuedDone = new nint[2];
    private int _queuedHead, _queuedCount;
    private ulong _meta;
    private long _metaBytes;
    private long _tokensOff, _feedOff, _slotsOff, _tokSeqOff, _cosOff, _sinOff, _seqsOff, _tablesOff, _tilesOff, _tcTilesOff, _rowsOff;
    // Query tiles of steps with prompt chunks: of QueryTile tokens (attention_*) and of TensorCoreQueryTile (attention_tc_*).
    private int _tileCount, _tcTileCount;
    private int _rowsCapacity;
    private int _maxContext;

    private ulong _gemmIn, _gemmOut, _partial, _ids, _counters, _flag, _workspace, _argPartial, _argCounters;
    private long _gemmInBytes, _gemmOutBytes, _partialBytes, _idsBytes, _countersBytes, _flagBytes, _argPartialBytes, _argCountersBytes;
    private nint _cublas;

    /// <summary>A backend on the GPU <paramref name="options"/> names (default: device 0, settings from the environment).</summary>
    public CudaBackend(CudaBackendOptions? options = null)
    {
        _options = options ?? new CudaBackendOptions().FromEnvironment();
        _device = new CudaDevice(_options.Device, _options.ResolveCacheDirectory());
        _arena = new WeightArena(_device);
        _fp8Arena = new WeightArena(_device);
        _fp8Scales = new WeightArena(_device);
        // A buffer freed with work still queued would be written after it is gone, and a graph would keep its address.
        _device.BeforeFree = () =>
        {
            Flush();
            // A buffer allocated at the freed address later is not the one _gemmIn holds the split of.
            _splitOf = 0;
            _memoryEpoch++;
        };
        Profiling = _options.Profile;
    }

    /// <summary>
    /// Whether a CUDA device can be used here: the driver loads and reports at least one GPU. Otherwise
    /// <paramref name="reason"/> says why not.
    /// </summary>
    public static bool IsAvailable(out string reason)
    {
        try
        {
            int status = Driver.cuInit(0);
            if (status != 0)
            {
                reason = $"cuInit failed: {Driver.Describe(status)}";
                return false;
            }
            int count;
            Driver.Check(Driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
            reason = count > 0 ? "" : "the NVIDIA driver reports no GPU";
            return count > 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException)
        {
            reason = e is CudaException ? e.Message : "the CUDA driver (libcuda.so.1) could not be loaded";
            return false;
        }
    }

    /// <inheritdoc />
    public string Name => $"cuda:{_device.Ordinal}";

    /// <summary>The GPU, its compute capability and multiprocessor count, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)".</summary>
    public string DeviceDescription => $"{_device.DeviceName} (sm_{_device.Major}{_device.Minor}, {_device.Multiprocessors} SMs, driver {_device.DriverVersion})";

    /// <summary>Bytes of weights uploaded, with the e4m3 copies of <see cref="CudaGemmPrecision.Fp8Lo"/>.</summary>
    public long WeightBytes => _arena.Used + _fp8Arena.Used + _fp8Scales.Used;

    /// <inheritdoc />
    public long FreeBytes => _device.MemoryInfo().Free;

    /// <inheritdoc />
    public long TotalBytes => _device.MemoryInfo().Total;

    /// <summary>The options in force.</summary>
    public CudaBackendOptions Options => _options;

    /// <summary>Time per operation since the last <see cref="ResetProfile"/>, when <see cref="CudaBackendOptions.Profile"/> is on.</summary>
    public IReadOnlyDictionary<string, (double Milliseconds, int Calls)> Profile =>
        _profiler?.Totals ?? new Dictionary<string, (double, int)>();

    /// <summary>Whether operations are being timed with CUDA events (which slows steps down).</summary>
    public bool Profiling
    {
        get => _activeProfiler is not null;
        set
        {
            if (value)
                _profiler ??= new Profiler(_device);
            _activeProfiler = value ? _profiler : null;
        }
    }

    /// <summary>Clears the per-operation times.</summary>
    public void ResetProfile() => _profiler?.Totals.Clear();

    /// <summary>Waits until all queued work has finished.</summary>
    public void Synchronize()
    {
        _device.MakeCurrent();
        EndStepBody();
        _device.Synchronize();
        _profiler?.Harvest();
    }

    /// <inheritdoc />
    public DeviceWeight Upload(in TensorSlice tensor)
    {
        _device.MakeCurrent();
        if (tensor.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new NotSupportedException($"{tensor.Name}: {tensor.DType} weights are not supported by the CUDA backend (F32, BF16, F16 are)");
        if (tensor.Shape.Length == 1)
        {
            // Vectors become float32 on the device: the norm and bias kernels read them at that width.
            var f = new float[tensor.Shape[0]];
            for (int i = 0; i < f.Length; i++)
                f[i] = tensor.DType switch
                {
                    DType.F32 => ((float*)tensor.Data)[i],
                    DType.BF16 => BitConverter.Int32BitsToSingle(((ushort*)tensor.Data)[i] << 16),
                    _ => (float)((Half*)tensor.Data)[i],
                };
            var p = _arena.Allocate(f.Length * sizeof(float), tensor.Name);
            fixed (float* src = f)
                Copy(p, src, f.Length * sizeof(float), tensor.Name);
            return new CudaWeight(tensor.DType, tensor.Shape, p);
        }
        var pointer = _arena.Allocate(tensor.ByteLength, $"{tensor.Name} {tensor.ShapeText}");
        Copy(pointer, tensor.Data, tensor.ByteLength, tensor.Name);
        if (tensor.DType == DType.BF16 && (_options.Gemm == CudaGemmPrecision.F16 || Fp8Lo))
        {
            if (ToHalf(pointer, tensor.ByteLength / 2))
                return new CudaWeight(DType.F16, tensor.Shape, pointer);
            if (!Fp8Lo)
                throw new CudaException($"{tensor.Name} has values beyond float16's range (±65504): TURBINE_CUDA_GEMM=f16 cannot hold this checkpoint; use split or single");
            // Fp8Lo: this tensor stays bf16 and its linears split as in Split mode (the rewrite was in place).
            Copy(pointer, tensor.Data, tensor.ByteLength, tensor.Name);
        }
        return new CudaWeight(tensor.DType, tensor.Shape, pointer);
    }

    /// <inheritdoc />
    public DeviceWeight UploadLinear(in TensorSlice tensor)
    {
        var w = (CudaWeight)Upload(tensor);
        if (!Fp8Lo || w.DType != DType.F16 || w.Shape.Length != 2)
            return w;
        // cuBLASLt's fp8 GEMMs want both dimensions in multiples of 16; the copy is made only while a quarter of the
        // GPU's memory stays free, so that it never crowds out the KV cache of a model that fills the GPU.
        long n = w.Shape[0], k = w.Shape[1], bytes = n * k + n * sizeof(float);
        var (free, total) = _device.MemoryInfo();
        if (n % 16 != 0 || k % 16 != 0 || free - bytes < total / 4)
            return w;
        ulong data = _fp8Arena.Allocate(n * k, $"{tensor.Name} e4m3"), scale = _fp8Scales.Allocate(n * sizeof(float), $"{tensor.Name} e4m3 scales"),
            weight = w.Pointer;
        int width = (int)k;
        void** args = stackalloc void*[] { &weight, &width, &data, &scale };
        Run("weights_e4m3", (uint)n, 1, 1, 256, 1, 0, args);
        _device.Synchronize();
        return new CudaWeight(w.DType, w.Shape, w.Pointer) { Fp8 = data, Fp8Scale = scale };
    }

    // Whether GEMMs of many rows run their lo half in fp8 (CudaGemmPrecision.Fp8Lo on sm_89 or later, whose tensor cores
    // and cuBLASLt have e4m3).
    private bool Fp8Lo => _options.Gemm == CudaGemmPrecision.Fp8Lo && _device.Major * 10 + _device.Minor >= 89;

    // On the backend's stream, then waited for: a plain cuMemcpyHtoD from pageable memory may return before its DMA
    // lands, and the non-blocking stream would not wait for it, so the first step could read half-uploaded weights.
    private void Copy(ulong destination, void* source, long bytes, string name)
    {
        Driver.Check(Driver.cuMemcpyHtoDAsync(destination, source, (nuint)bytes, _device.Stream), $"uploading {name}");
        _device.Synchronize();
    }

    // Rewrites count bf16 values at pointer as f16 in place; false when a value is beyond f16's range (and became inf).
    private bool ToHalf(ulong pointer, long count)
    {
        Grow(ref _flag, ref _flagBytes, sizeof(int), "a flag");
        ulong flag = _flag;
        Driver.Check(Driver.cuMemsetD32Async(flag, 0, 1, _device.Stream), "clearing the f16 overflow flag");
        void** args = stackalloc void*[] { &pointer, &count, &flag };
        Run("bf16_to_f16", Blocks(count), 1, 1, 256, 1, 0, args);
        int overflow;
        Driver.Check(Driver.cuMemcpyDtoHAsync(&overflow, _flag, sizeof(int), _device.Stream), "reading the f16 overflow flag");
        _device.Synchronize();
        return overflow == 0;
    }

    /// <inheritdoc />
    public DeviceBuffer Allocate(long floats) => new CudaBuffer(_device, floats);

    /// <inheritdoc />
    public int KvElementBytes => _options.KvCache.ElementBytes();

    /// <inheritdoc />
    public KvCacheStorage AllocateKvCache(KvCacheShape shape)
    {
        if (shape.HeadDim % 4 != 0 || shape.HeadDim > MaxHeadDim)
            throw new NotSupportedException($"the CUDA attention kernel needs a head width divisible by 4 and at most {MaxHeadDim}, not {shape.HeadDim}");
        return new CudaKvCache(_device, shape, _options.KvCache);
    }

    /// <inheritdoc />
    public void BeginStep(ForwardBatch batch)
    {
        _device.MakeCurrent();
        EndStepBody();
        if (_profiler is not null)
        {
            _device.Synchronize();
            _profiler.Harvest();
        }
        _batch = batch;
        int t = batch.TokenCount, s = batch.SequenceCount, half = batch.RotaryHalfDim, rows = batch.LogitRowCount;
        int tables = 0, longestQuery = 0;
        _maxContext = 0;
        for (int i = 0; i < s; i++)
        {
            tables += batch.Sequences[i].BlockCount;
            _maxContext = Math.Max(_maxContext, batch.Sequences[i].ContextLength);
            longestQuery = Math.Max(longestQuery, batch.Sequences[i].QueryLength);
        }
        // Fixed-size parts first: in steps of the same shape every kernel argument then stays the same, as graphs need.
        long off = 0;
        _tokensOff = Take(ref off, t * 4L);
        _feedOff = Take(ref off, t * 4L);
        _slotsOff = Take(ref off, t * 4L);
        _tokSeqOff = Take(ref off, t * 4L);
        _cosOff = Take(ref off, (long)t * half * 4);
        _sinOff = Take(ref off, (long)t * half * 4);
        _seqsOff = Take(ref off, s * 16L);
        _rowsCapacity = Math.Max(batch.LogitRows.Length, 1);
        _rowsOff = Take(ref off, _rowsCapacity * 4L);
        _tablesOff = Take(ref off, tables * 4L);
        _tilesOff = Take(ref off, (t / QueryTile + s) * 8L);
        _tcTilesOff = Take(ref off, (t / TensorCoreQueryTile + s) * 16L);
        EnsureStaging(off);
        _stagingArea ^= 1;
        _staging = (byte*)_stagingAreas[_stagingArea];
        if (_stagingCopied[_stagingArea] != 0)
            Driver.Check(Driver.cuEventSynchronize(_stagingCopied[_stagingArea]), "waiting for a step's metadata copy");

        batch.Tokens.AsSpan(0, t).CopyTo(new Span<int>(_staging + _tokensOff, t));
        if (batch.FeedsTokens)
            batch.FeedRows.AsSpan(0, t).CopyTo(new Span<int>(_staging + _feedOff, t));
        batch.Slots.AsSpan(0, t).CopyTo(new Span<int>(_staging + _slotsOff, t));
        batch.Cos.AsSpan(0, t * half).CopyTo(new Span<float>(_staging + _cosOff, t * half));
        batch.Sin.AsSpan(0, t * half).CopyTo(new Span<float>(_staging + _sinOff, t * half));
        batch.LogitRows.AsSpan(0, rows).CopyTo(new Span<int>(_staging + _rowsOff, rows));
        var tokSeq = new Span<int>(_staging + _tokSeqOff, t);
        var seqs = new Span<int>(_staging + _seqsOff, 4 * s);
        var table = new Span<int>(_staging + _tablesOff, tables);
        int tableAt = 0;
        for (int i = 0; i < s; i++)
        {
            var q = batch.Sequences[i];
            tokSeq.Slice(q.QueryStart, q.QueryLength).Fill(i);
            seqs[4 * i] = q.QueryStart;
            seqs[4 * i + 1] = q.QueryLength;
            seqs[4 * i + 2] = q.ContextLength;
            seqs[4 * i + 3] = tableAt;
            q.BlockTable.AsSpan(0, q.BlockCount).CopyTo(table.Slice(tableAt));
            tableAt += q.BlockCount;
        }
        // Steps with prompt chunks attend per tile of consecutive query tokens; pure decode steps per token.
        (_tileCount, _tcTileCount) = longestQuery > 1
            ? (QueryTiles(batch, _tilesOff, QueryTile, wide: false), QueryTiles(batch, _tcTilesOff, TensorCoreQueryTile, wide: true))
            : (0, 0);
        Driver.Check(Driver.cuMemcpyHtoDAsync(_meta, _staging, (nuint)off, _device.Stream), "uploading the step's metadata");
        if (_stagingCopied[_stagingArea] == 0)
        {
            nint e;
            Driver.Check(Driver.cuEventCreate(&e, Driver.EventDisableTiming), "cuEventCreate");
            _stagingCopied[_stagingArea] = e;
        }
        Driver.Check(Driver.cuEventRecord(_stagingCopied[_stagingArea], _device.Stream), "cuEventRecord");
        if (longestQuery == 1)
            BeginDecodeGraph((t, s, rows, batch.FeedsTokens));
    }

    // Writes the step's query tiles of up to `size` consecutive tokens of one sequence to the staging area at `offset`, as
    // (first token, count) or, `wide`, (first token, count, its position, the sequence's block-table offset); returns how many.
    private int QueryTiles(ForwardBatch batch, long offset, int size, bool wide)
    {
        int fields = wide ? 4 : 2;
        var tiles = new Span<int>(_staging + offset, fields * (batch.TokenCount / size + batch.SequenceCount));
        int count = 0, tableAt = 0;
        for (int i = 0; i < batch.SequenceCount; i++)
        {
            var q = batch.Sequences[i];
            for (int at = 0; at < q.QueryLength; at += size, count++)
            {
                var tile = tiles.Slice(fields * count, fields);
                tile[0] = q.QueryStart + at;
                tile[1] = Math.Min(size, q.QueryLength - at);
                if (wide)
                    (tile[2], tile[3]) = (q.ContextLength - q.QueryLength + at, tableAt);
            }
            tableAt += q.BlockCount;
        }
        return count;
    }

    /// <inheritdoc />
    public void Embed(DeviceWeight table, DeviceBuffer y)
    {
        var batch = Step;
        if (Deferred(new StepOperation(OperationKind.Embed, table, y, I0: batch.FeedsTokens ? 1 : 0)))
            return;
        var w = (CudaWeight)table;
        Flush();
        if (batch.FeedsTokens && _ids == 0)
            throw new InvalidOperationException("the step feeds tokens from a queued argmax, but none was queued");
        ulong tablePtr = w.Pointer, tokens = _meta + (ulong)_tokensOff, yp = Ptr(y);
        ulong feed = batch.FeedsTokens ? _meta + (ulong)_feedOff : 0, ids = _ids;
        int width = (int)w.Shape[1];
        void** args = stackalloc void*[] { &tablePtr, &tokens, &feed, &ids, &yp, &width };
        _activeProfiler?.Begin("embed");
        Run("embed_" + Suffix(w.DType), (uint)batch.TokenCount, 1, 1, 256, 1, 0, args);
        _activeProfiler?.End();
    }

    /// <inheritdoc />
    public void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        if (!Deferred(new StepOperation(OperationKind.RmsNorm, x, weight, y, I0: rows, F0: eps)))
            Norm(Ptr(x), 0, rows, weight, eps, y);
    }

    /// <inheritdoc />
    public void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        if (!Deferred(new StepOperation(OperationKind.AddRmsNorm, residual, delta, weight, y, I0: rows, F0: eps)))
            Norm(Ptr(residual), Ptr(delta), rows, weight, eps, y);
    }

    private void Norm(ulong x, ulong delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y)
    {
        var w = (CudaWeight)weight;
        ulong wp = w.Pointer, yp = Ptr(y), acc = 0, bias = 0;
        int width = (int)w.Shape[0], accTwo = 0;
        // Straight after the linear that wrote delta: its epilogue (halves, bias) runs here.
        if (_pendingCount > 0)
            FlushLinears();
        bool fused = delta != 0 && TakeLazy(delta, rows, width, out acc, out accTwo, out bias);
        Flush();
        // In GEMM steps y is the next GEMM's input: its 16-bit split is written here too.
        // 256 threads hold a 4096-wide row as four float4 each (the kernel keeps up to eight per thread in registers).
        // Fewer rows than SMs leave SMs idle: there a thread takes one float4, shortening each row's latency chain
        // (decode step at batch 1 6.35 → 6.23 ms, at batch 64 8.90–8.95 → 8.83 ms).
        uint threads = width > 8192 ? 1024u : width >= 1024 ? 256u : 128u;
        if (rows < _device.Multiprocessors && width % 4 == 0)
            threads = (uint)Math.Clamp((width / 4 + 31) / 32 * 32, (int)threads, 1024);
        DType splitType = _gemmType;
        long count = (long)rows * width;
        ulong split = Fp8SplitTarget(splitType, rows, width, threads);
        bool fp8 = split != 0;
        if (!fp8)
            split = SplitTarget(splitType, rows, count);
        var norm = new HeldRows
        {
            Norm = true, Fp8 = fp8, Type = splitType, X = x, Delta = delta, Weight = wp, Eps = eps, Y = yp, Width = width, Acc = acc, AccTwo = accTwo,
            Bias = bias, Split = split, SplitTwo = Halves(splitType) - 1, Rows = rows, Threads = threads,
        };
        // Writing the next GEMM's split, it waits to see whether that GEMM is all that reads y.
        Hold(norm);
    }

    // Everything queued is launched before an operation that is not fused with it.
    private void Flush()
    {
        FlushLinears();
        Materialize();
        FlushRotary();
    }

    /// <inheritdoc />
    public void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y)
    {
        if (_mode == StepMode.Replaying)
        {
            if (rows.Length > _gatherRows.Length)
                Array.Resize(ref _gatherRows, rows.Length);
            rows.CopyTo(_gatherRows);
        }
        // The rows enter the fingerprint by count and by whether they are the step's own logit rows, which BeginStep
        // uploads and a graph gathers; any other rows are uploaded here.
        bool stepRows = rows.SequenceEqual(Step.LogitRows.AsSpan(0, Step.LogitRowCount));
        if (Deferred(new StepOperation(OperationKind.GatherRows, x, y, I0: rows.Length, I1: width, I2: stepRows ? 1 : 0)))
            return;
        ulong xp = Ptr(x), yp = Ptr(y);
        Flush();
        if (rows.Length == 0)
            return;
        if (rows.Length > _rowsCapacity)
            throw new ArgumentException($"{rows.Length} rows to gather, more than the step's {_rowsCapacity} logit rows", nameof(rows));
        if (!stepRows)
        {
            // Never in a graph: the upload below would not be replayed with the rows of later steps.
            if (_mode != StepMode.Eager)
                throw new InvalidOperationException("GatherRows of rows other than the step's logit rows cannot be part of a CUDA graph");
            rows.CopyTo(new Span<int>(_staging + _rowsOff, rows.Length));
            Driver.Check(Driver.cuMemcpyHtoDAsync(_meta + (ulong)_rowsOff, _staging + _rowsOff, (nuint)(rows.Length * 4), _device.Stream), "uploading gather rows");
        }
        ulong dRows = _meta + (ulong)_rowsOff;
        void** args = stackalloc void*[] { &xp, &dRows, &yp, &width };
        _activeProfiler?.Begin("gather_rows");
        Run("gather_rows", (uint)rows.Length, 1, 1, 256, 1, 0, args);
        _activeProfiler?.End();
    }

    /// <inheritdoc />
    public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids)
    {
        _device.MakeCurrent();
        EndStepBody();
        if (rows <= 0)
            return;
        LaunchArgMax(logits, rows, width);
        fixed (int* d = ids)
        {
            Driver.Check(Driver.cuMemcpyDtoHAsync(d, _ids, (nuint)rows * sizeof(int), _device.Stream), "downloading argmax ids");
            _activeProfiler?.End();
            _device.Synchronize();
        }
        _profiler?.Harvest();
    }

    /// <inheritdoc />
    public bool FeedsTokens => true;

    /// <inheritdoc />
    public void QueueArgMax(DeviceBuffer logits, int rows, int width)
    {
        _device.MakeCurrent();
        EndStepBody();
        if (_queuedCount == _queuedHost.Length)
            throw new InvalidOperationException("two argmax results are already queued; read one first");
        int slot = (_queuedHead + _queuedCount) % _queuedHost.Length;
        if (_queuedCapacity[slot] < rows)
        {
            // This slot is not in flight (at most the other one is): its memory can be replaced without waiting.
            if (_queuedHost[slot] != 0)
                Driver.cuMemFreeHost((void*)_queuedHost[slot]);
            void* host;
            int capacity = Math.Max(rows, 64);
            Driver.Check(Driver.cuMemHostAlloc(&host, (nuint)capacity * sizeof(int), 0), "cuMemHostAlloc(queued argmax ids)");
            (_queuedHost[slot], _queuedCapacity[slot]) = ((nint)host, capacity);
        }
        if (_queuedDone[slot] == 0)
        {
            nint e;
            Driver.Check(Driver.cuEventCreate(&e, Driver.EventDisableTiming), "cuEventCreate");
            _queuedDone[slot] = e;
        }
        if (rows > 0)
        {
            LaunchArgMax(logits, rows, width);
            Driver.Check(Driver.cuMemcpyDtoHAsync((void*)_queuedHost[slot], _ids, (nuint)rows * sizeof(int), _device.Stream), "downloading argmax ids");
            _activeProfiler?.End();
        }
        Driver.Check(Driver.cuEventRecord(_queuedDone[slot], _device.Stream), "cuEventRecord");
        _queuedRows[slot] = rows;
        _queuedCount++;
    }

    /// <inheritdoc />
    public void ReadQueuedArgMax(Span<int> ids)
    {
        if (_queuedCount == 0)
            throw new InvalidOperationException("no argmax is queued");
        int slot = _queuedHead;
        _queuedHead = (_queuedHead + 1) % _queuedHost.Length;
        _queuedCount--;
        _device.MakeCurrent();
        int status = Driver.cuEventSynchronize(_queuedDone[slot]);
        if (status != 0)
            throw new CudaException($"the GPU step failed: {Driver.Describe(status)} (an earlier kernel or copy on the stream faulted)") { Status = status };
        new ReadOnlySpan<int>((void*)_queuedHost[slot], _queuedRows[slot]).CopyTo(ids);
    }

    // The argmax kernel over rows × width logits, ids to _ids; leaves the profiler's "argmax" region open.
    private void LaunchArgMax(DeviceBuffer logits, int rows, int width)
    {
        if ((long)rows * width > logits.Length)
            throw new ArgumentException($"{rows} rows of {width} floats do not fit in the buffer", nameof(rows));
        // Only the ids cross the bus: rows × 4 bytes instead of rows × width × 4 (33 MB at batch 64 of a 128k vocabulary).
        Grow(ref _ids, ref _idsBytes, rows * 4L, "argmax ids");
        // Rows are cut into chunks (of 4096 at least) until about two blocks an SM scan them: one block a row would leave
        // most SMs idle, and one SM alone streams a 128k-wide row at a fraction of the memory bandwidth.
        int chunks = Math.Clamp((2 * _device.Multiprocessors + rows - 1) / rows, 1, Math.Clamp(width / 4096, 1, 64));
        if (chunks > 1)
        {
            Grow(ref _argPartial, ref _argPartialBytes, rows * chunks * 8L, "argmax partials");
            Grow(ref _argCounters, ref _argCountersBytes, rows * 4L, "argmax counters", zero: true);
        }
        ulong x = Ptr(logits), idsPtr = _ids, best = _argPartial, index = _argPartial + (ulong)(rows * chunks * 4L), counters = _argCounters;
        void** args = stackalloc void*[] { &x, &idsPtr, &width, &best, &index, &counters };
        _activeProfiler?.Begin("argmax");
        Run("argmax_rows", (uint)rows, (uint)chunks, 1, chunks > 1 ? 256u : 1024u, 1, 0, args);
    }

    /// <inheritdoc />
    public void Download(DeviceBuffer source, Span<float> destination)
    {
        _device.MakeCurrent();
        EndStepBody();
        if (destination.Length > source.Length)
            throw new ArgumentException("destination is longer than the buffer", nameof(destination));
        _activeProfiler?.Begin("download");
        fixed (float* d = destination)
            Driver.Check(Driver.cuMemcpyDtoHAsync(d, Ptr(source), (nuint)destination.Length * sizeof(float), _device.Stream), "downloading");
        _activeProfiler?.End();
        _device.Synchronize();
        _profiler?.Harvest();
    }

    /// <inheritdoc />
    public void LaunchStep()
    {
        _device.MakeCurrent();
        EndStepBody();
    }

    private ForwardBatch Step => _batch ?? throw new InvalidOperationException("BeginStep must be called before the step's operations");

    private static ulong Ptr(DeviceBuffer b) => ((CudaBuffer)b).Pointer;

    private static string Suffix(DType t) => t switch
    {
        DType.F32 => "f32",
        DType.BF16 => "bf16",
        DType.F16 => "f16",
        _ => throw new NotSupportedException($"{t} is not supported by the CUDA kernels"),
    };

    private uint Blocks(long count) => (uint)Math.Clamp((count + 255) / 256, 1, 16L * _device.Multiprocessors);

    private void Run(string kernel, uint gx, uint gy, uint gz, uint bx, uint by, uint shared, void** args, bool dependent = false)
    {
        // A held kernel goes first, whole: this one may read its rows.
        Release(writeRows: true);
        // Any kernel may write the buffer whose split _gemmIn holds.
        _splitOf = 0;
        _device.MakeCurrent();
        _device.Launch(_device.Function(kernel), kernel, gx, gy, gz, bx, by, shared, args, dependent && _activeProfiler is null);
    }

    private static long Take(ref long offset, long bytes)
    {
        long at = offset;
        offset = (offset + bytes + 15) & ~15L;
        return at;
    }

    private void EnsureStaging(long bytes)
    {
        if (bytes <= _stagingBytes)
            return;
        long size = Math.Max(bytes, 2 * _stagingBytes);
        // Queued copies may still read the old areas.
        _device.Synchronize();
        for (int i = 0; i < _stagingAreas.Length; i++)
        {
            if (_stagingAreas[i] != 0)
                Driver.cuMemFreeHost((void*)_stagingAreas[i]);
            void* host;
            Driver.Check(Driver.cuMemHostAlloc(&host, (nuint)size, 0), $"cuMemHostAlloc({size} bytes of step staging)");
            _stagingAreas[i] = (nint)host;
        }
        _staging = (byte*)_stagingAreas[_stagingArea];
        _stagingBytes = size;
        Grow(ref _meta, ref _metaBytes, size, "step metadata");
        _memoryEpoch++;
    }

    private void Grow(ref ulong pointer, ref long capacity, long bytes, string what, bool zero = false)
    {
        if (bytes <= capacity)
            return;
        // A graph being captured would keep the freed address; shapes are captured only after running once eagerly,
        // when every buffer they use has its size.
        if (_mode == StepMode.Capturing)
            throw new InvalidOperationException($"{what} would grow while a CUDA graph is captured");
        // Freed memory may still be read by queued kernels: wait for them first.
        _device.Synchronize();
        _device.Free(pointer);
        long size = Math.Max(bytes, capacity + capacity / 2);
        pointer = _device.Allocate(size, what);
        capacity = size;
        if (zero)
            Driver.Check(Driver.cuMemsetD32Async(pointer, 0, (nuint)(size / 4), _device.Stream), $"clearing {what}");
    }

    private void EnsureCublas()
    {
        if (_cublas != 0)
            return;
        nint handle = 0;
        try
        {
            Cublas.Check(Cublas.cublasCreate(&handle), "cublasCreate");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new CudaException("cuBLAS (libcublas.so.13) could not be loaded: put the CUDA 13 libraries on the library path (LD_LIBRARY_PATH)", e);
        }
        Cublas.Check(Cublas.cublasSetStream(handle, _device.Stream), "cublasSetStream");
        // Our own workspace: split-K algorithms need one, and a graph capture must not allocate.
        _workspace = _device.Allocate(CublasWorkspaceBytes, "the cuBLAS workspace");
        Cublas.Check(Cublas.cublasSetWorkspace(handle, _workspace, (nuint)CublasWorkspaceBytes), "cublasSetWorkspace");
        _cublas = handle;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _device.MakeCurrent();
        EndStepBody();
        _device.Synchronize();
        DropGraphs();
        if (_cublas != 0)
            Cublas.cublasDestroy(_cublas);
        _cublas = 0;
        DisposeFp8();
        _profiler?.Dispose();
        foreach (var p in new[] { _meta, _gemmIn, _gemmOut, _partial, _ids, _counters, _flag, _workspace, _argPartial, _argCounters, _sampleDevice })
            _device.Free(p);
        _meta = _gemmIn = _gemmOut = _partial = _ids = _counters = _flag = _workspace = _argPartial = _argCounters = _sampleDevice = 0;
        foreach (var area in _stagingAreas)
            if (area != 0)
                Driver.cuMemFreeHost((void*)area);
        foreach (var slot in _queuedHost)
            if (slot != 0)
                Driver.cuMemFreeHost((void*)slot);
        foreach (var e in _stagingCopied.Concat(_queuedDone))
            if (e != 0)
                Driver.cuEventDestroy(e);
        if (_sampleHost != null)
            Driver.cuMemFreeHost(_sampleHost);
        _staging = null;
        _sampleHost = null;
        _arena.Dispose();
        _fp8Arena.Dispose();
        _fp8Scales.Dispose();
        _device.Dispose();
    }
}
