using System.Runtime.CompilerServices;
using Turbine.Backends.Cuda.Native;
using Turbine.Core.Checkpoints;
using Turbine.Core.Models;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

/// <summary>
/// The decoder's operations on an NVIDIA GPU: weights uploaded once in their checkpoint dtype, float32 activations,
/// a paged KV cache in device memory, kernels compiled by NVRTC for the device, GEMV kernels for steps of few rows
/// and cuBLAS tensor-core GEMMs for many. Every call is queued on one stream; <see cref="Download"/> waits for it.
/// Decode steps are captured as CUDA graphs, one per batch size, and replayed: see <see cref="CudaBackendOptions.Graphs"/>.
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
    // attention_decode_*: warps a block, keys a warp takes per round, query heads a block at most.
    private const int DecodeWarps = 4;
    private const int DecodeKeys = 8;
    private const int DecodeMaxHeads = 8;
    // Shared memory for a decode block's K/V ring: float32 rows of 128 get 2 slots a warp (3 blocks an SM), 16-bit ones 3
    // (4 blocks an SM). 100 KB (one slot more, fewer blocks) measured 4-6% faster at batch 64 on float32 but 18% slower at
    // batch 256, and up to 37% slower on f16.
    private const long DecodeRingBytes = 64 << 10;
    private const long CublasWorkspaceBytes = 32L << 20;
    // Dynamic shared memory the prompt attention kernels opt into: the most any of them needs (8 heads of 256 dims for
    // 16 tokens, 193 KB), under sm_90's 227 KB a block.
    private const int PromptAttentionShared = 200 * 1024;

    private readonly CudaDevice _device;
    private readonly CudaBackendOptions _options;
    private readonly WeightArena _arena;
    private Profiler? _profiler;
    private Profiler? _activeProfiler;
    private ForwardBatch? _batch;

    // Step metadata: written to pinned host memory, copied in one transfer to _meta.
    private byte* _staging;
    private long _stagingBytes;
    private ulong _meta;
    private long _metaBytes;
    private long _tokensOff, _slotsOff, _tokSeqOff, _cosOff, _sinOff, _seqsOff, _tablesOff, _tilesOff, _rowsOff;
    private int _tileCount;
    private int _rowsCapacity;
    private int _maxContext;

    private ulong _gemmIn, _gemmOut, _partial, _ids, _counters, _flag, _workspace, _argPartial, _argCounters;
    private long _gemmInBytes, _gemmOutBytes, _partialBytes, _idsBytes, _countersBytes, _flagBytes, _argPartialBytes, _argCountersBytes;
    private nint _cublas;

    // RoPE queued for the next Attention, which applies it while writing k to the cache (one launch instead of two).
    private bool _rotaryPending;
    private ulong _rotaryQ, _rotaryK;
    private int _rotaryHeads, _rotaryKvHeads, _rotaryHeadDim;

    // Decode-step graphs: keyed by (tokens, sequences, logit rows); valid while no buffer they use was reallocated.
    private readonly Dictionary<(int, int, int), StepGraph> _graphs = [];
    private readonly Dictionary<(int, int, int), long> _eagerSteps = [];
    private StepMode _mode;
    private (int, int, int) _stepKey;
    private ulong _fingerprint;
    private long _memoryEpoch;
    private StepOperation[] _operations = new StepOperation[512];
    private int _recorded;
    private int[] _gatherRows = new int[64];
    private readonly HashSet<nint> _sharedRaised = [];

    // Linears queued but not launched yet: consecutive linears of the same input (q, k, v; gate, up) join one GEMV
    // launch or one GEMM, and every other operation launches the queue first.
    private LinearParts _pending;
    private int _pendingCount;
    private ulong _pendingX;
    private int _pendingRows, _pendingK;
    private DType _pendingType;

    // The kernels' LinearParts: weights, biases (0: none) and outputs of up to three linears, and where each one's
    // columns end in the stacked output.
    private struct LinearParts
    {
        public fixed ulong Weight[3];
        public fixed ulong Bias[3];
        public fixed ulong Output[3];
        public fixed int End[3];
    }

    /// <summary>A backend on the GPU <paramref name="options"/> names (default: device 0, settings from the environment).</summary>
    public CudaBackend(CudaBackendOptions? options = null)
    {
        _options = options ?? new CudaBackendOptions().FromEnvironment();
        _device = new CudaDevice(_options.Device, _options.ResolveCacheDirectory());
        _arena = new WeightArena(_device);
        // A buffer freed with work still queued would be written after it is gone, and a graph would keep its address.
        _device.BeforeFree = () =>
        {
            Flush();
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

    /// <summary>Bytes of weights uploaded.</summary>
    public long WeightBytes => _arena.Used;

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
        if (tensor.DType == DType.BF16 && _options.Gemm == CudaGemmPrecision.F16)
        {
            ToHalf(pointer, tensor.ByteLength / 2, tensor.Name);
            return new CudaWeight(DType.F16, tensor.Shape, pointer);
        }
        return new CudaWeight(tensor.DType, tensor.Shape, pointer);
    }

    // On the backend's stream, then waited for: a plain cuMemcpyHtoD from pageable memory may return before its DMA
    // lands, and the non-blocking stream would not wait for it, so the first step could read half-uploaded weights.
    private void Copy(ulong destination, void* source, long bytes, string name)
    {
        Driver.Check(Driver.cuMemcpyHtoDAsync(destination, source, (nuint)bytes, _device.Stream), $"uploading {name}");
        _device.Synchronize();
    }

    // Rewrites count bf16 values at pointer as f16 in place; refuses a tensor with a value beyond f16's range.
    private void ToHalf(ulong pointer, long count, string name)
    {
        Grow(ref _flag, ref _flagBytes, sizeof(int), "a flag", zero: true);
        ulong flag = _flag;
        void** args = stackalloc void*[] { &pointer, &count, &flag };
        Run("bf16_to_f16", Blocks(count), 1, 1, 256, 1, 0, args);
        int overflow;
        Driver.Check(Driver.cuMemcpyDtoHAsync(&overflow, _flag, sizeof(int), _device.Stream), "reading the f16 overflow flag");
        _device.Synchronize();
        if (overflow != 0)
            throw new CudaException($"{name} has values beyond float16's range (±65504): TURBINE_CUDA_GEMM=f16 cannot hold this checkpoint; use split or single");
    }

    /// <inheritdoc />
    public DeviceBuffer Allocate(long floats) => new CudaBuffer(_device, floats);

    /// <inheritdoc />
    public int KvElementBytes => _options.KvCache == CudaKvCacheType.F32 ? sizeof(float) : sizeof(ushort);

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
        // The staging memory is rewritten below: the previous step's copies out of it must be done.
        _device.Synchronize();
        _profiler?.Harvest();
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
        _slotsOff = Take(ref off, t * 4L);
        _tokSeqOff = Take(ref off, t * 4L);
        _cosOff = Take(ref off, (long)t * half * 4);
        _sinOff = Take(ref off, (long)t * half * 4);
        _seqsOff = Take(ref off, s * 16L);
        _rowsCapacity = Math.Max(batch.LogitRows.Length, 1);
        _rowsOff = Take(ref off, _rowsCapacity * 4L);
        _tablesOff = Take(ref off, tables * 4L);
        _tilesOff = Take(ref off, (t / QueryTile + s) * 8L);
        EnsureStaging(off);

        batch.Tokens.AsSpan(0, t).CopyTo(new Span<int>(_staging + _tokensOff, t));
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
        _tileCount = 0;
        if (longestQuery > 1)
        {
            var tiles = new Span<int>(_staging + _tilesOff, 2 * (t / QueryTile + s));
            for (int i = 0; i < s; i++)
            {
                var q = batch.Sequences[i];
                for (int at = 0; at < q.QueryLength; at += QueryTile)
                {
                    tiles[2 * _tileCount] = q.QueryStart + at;
                    tiles[2 * _tileCount + 1] = Math.Min(QueryTile, q.QueryLength - at);
                    _tileCount++;
                }
            }
        }
        Driver.Check(Driver.cuMemcpyHtoDAsync(_meta, _staging, (nuint)off, _device.Stream), "uploading the step's metadata");
        if (longestQuery == 1)
            BeginDecodeGraph((t, s, rows));
    }

    // A decode step replays its shape's graph when one was captured since the last reallocation, is captured when the
    // shape already ran once eagerly (so every buffer it needs has grown), and runs eagerly otherwise.
    private void BeginDecodeGraph((int, int, int) key)
    {
        if (!_options.Graphs || _activeProfiler is not null)
            return;
        _stepKey = key;
        _fingerprint = FingerprintSeed;
        if (_graphs.TryGetValue(key, out var graph) && graph.Epoch == _memoryEpoch)
        {
            _mode = StepMode.Replaying;
            return;
        }
        if (_eagerSteps.TryGetValue(key, out long epoch) && epoch == _memoryEpoch)
        {
            Driver.Check(Driver.cuStreamBeginCapture(_device.Stream, Driver.CaptureModeThreadLocal), "cuStreamBeginCapture");
            _mode = StepMode.Capturing;
            return;
        }
        _eagerSteps[key] = _memoryEpoch;
    }

    // Mixes an operation and its arguments into the step's fingerprint while a graph is captured or replayed, and says
    // whether the operation is deferred: while replaying it is only recorded, since the graph holds its launches; if the
    // step turns out to differ from the graph, EndStepBody runs the recorded operations instead.
    private bool Deferred(in StepOperation operation)
    {
        if (_mode == StepMode.Eager)
            return false;
        ulong h = Mix(_fingerprint, (ulong)operation.Kind);
        h = Mix(h, Identity(operation.A));
        h = Mix(h, Identity(operation.B));
        h = Mix(h, Identity(operation.C));
        h = Mix(h, Identity(operation.D));
        h = Mix(h, Identity(operation.E));
        h = Mix(h, (ulong)(uint)operation.I0 | (ulong)(uint)operation.I1 << 32);
        h = Mix(h, (ulong)(uint)operation.I2 | (ulong)(uint)operation.I3 << 32);
        h = Mix(h, (ulong)(uint)operation.I4 | (ulong)(uint)BitConverter.SingleToInt32Bits(operation.F0) << 32);
        _fingerprint = Mix(h, (ulong)operation.L0);
        if (_mode != StepMode.Replaying)
            return false;
        if (_recorded == _operations.Length)
            Array.Resize(ref _operations, 2 * _operations.Length);
        _operations[_recorded++] = operation;
        return true;
    }

    private static ulong Mix(ulong h, ulong value) => (h ^ value) * FingerprintPrime;

    private static ulong Identity(object? o) => o switch
    {
        null => 0,
        CudaBuffer b => b.Pointer,
        CudaWeight w => w.Pointer,
        CudaKvCache c => c.Keys(0),
        _ => (ulong)RuntimeHelpers.GetHashCode(o),
    };

    // Runs the operations recorded while replaying, eagerly, when they turned out not to match the graph.
    private void RunRecorded()
    {
        for (int i = 0; i < _recorded; i++)
        {
            var o = _operations[i];
            switch (o.Kind)
            {
                case OperationKind.Embed: Embed((DeviceWeight)o.A!, (DeviceBuffer)o.B!); break;
                case OperationKind.RmsNorm: RmsNorm((DeviceBuffer)o.A!, o.I0, (DeviceWeight)o.B!, o.F0, (DeviceBuffer)o.C!); break;
                case OperationKind.AddRmsNorm: AddRmsNorm((DeviceBuffer)o.A!, (DeviceBuffer)o.B!, o.I0, (DeviceWeight)o.C!, o.F0, (DeviceBuffer)o.D!); break;
                case OperationKind.Linear: Linear((DeviceBuffer)o.A!, o.I0, (DeviceWeight)o.B!, (DeviceWeight?)o.C, (DeviceBuffer)o.D!); break;
                case OperationKind.Rotary: Rotary((DeviceBuffer)o.A!, o.I0, (DeviceBuffer)o.B!, o.I1, o.I2); break;
                case OperationKind.Attention:
                    Attention((KvCacheStorage)o.A!, o.I0, (DeviceBuffer)o.B!, (DeviceBuffer)o.C!, (DeviceBuffer)o.D!, (DeviceBuffer)o.E!, o.I1, o.I2, o.I3,
                        o.F0, o.I4);
                    break;
                case OperationKind.SiluMul: SiluMul((DeviceBuffer)o.A!, (DeviceBuffer)o.B!, (DeviceBuffer)o.C!, o.L0); break;
                case OperationKind.GatherRows: GatherRows((DeviceBuffer)o.A!, _gatherRows.AsSpan(0, o.I0), o.I1, (DeviceBuffer)o.B!); break;
            }
        }
        ClearRecorded();
    }

    private void ClearRecorded()
    {
        Array.Clear(_operations, 0, _recorded);
        _recorded = 0;
    }

    private enum OperationKind { Embed = 1, RmsNorm, AddRmsNorm, Linear, Rotary, Attention, SiluMul, GatherRows }

    // One backend call of a step: its buffers and weights (A..E) and scalars, by the call's own parameter order.
    private record struct StepOperation(OperationKind Kind, object? A = null, object? B = null, object? C = null, object? D = null,
        object? E = null, int I0 = 0, int I1 = 0, int I2 = 0, int I3 = 0, int I4 = 0, float F0 = 0, long L0 = 0);

    private const ulong FingerprintSeed = 14695981039346656037UL;
    private const ulong FingerprintPrime = 1099511628211UL;

    /// <inheritdoc />
    public void Embed(DeviceWeight table, DeviceBuffer y)
    {
        if (Deferred(new StepOperation(OperationKind.Embed, table, y)))
            return;
        var w = (CudaWeight)table;
        Flush();
        var batch = Step;
        ulong tablePtr = w.Pointer, tokens = _meta + (ulong)_tokensOff, yp = Ptr(y);
        int width = (int)w.Shape[1];
        void** args = stackalloc void*[] { &tablePtr, &tokens, &yp, &width };
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
        ulong wp = w.Pointer, yp = Ptr(y);
        int width = (int)w.Shape[0];
        Flush();
        void** args = stackalloc void*[] { &x, &delta, &wp, &eps, &yp, &width };
        // 256 threads hold a 4096-wide row as four float4 each (the kernel keeps up to eight per thread in registers).
        uint threads = width > 8192 ? 1024u : width >= 1024 ? 256u : 128u;
        _activeProfiler?.Begin("rmsnorm");
        Run("rmsnorm", (uint)rows, 1, 1, threads, 1, 0, args);
        _activeProfiler?.End();
    }

    /// <inheritdoc />
    public void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y)
    {
        if (rows <= 0)
            return;
        var w = (CudaWeight)weight;
        int n = (int)w.Shape[0], k = (int)w.Shape[1];
        ulong xp = Ptr(x), yp = Ptr(y), bp = bias is null ? 0 : ((CudaWeight)bias).Pointer;
        if (Deferred(new StepOperation(OperationKind.Linear, x, weight, bias, y, I0: rows)))
            return;
        FlushRotary();
        if (_pendingCount > 0 && (_pendingX != xp || _pendingRows != rows || _pendingK != k || _pendingType != w.DType || _pendingCount == 3
            || Queued(yp)))
            FlushLinears();
        int at = _pendingCount++;
        _pendingX = xp;
        _pendingRows = rows;
        _pendingK = k;
        _pendingType = w.DType;
        _pending.Weight[at] = w.Pointer;
        _pending.Bias[at] = bp;
        _pending.Output[at] = yp;
        _pending.End[at] = (at == 0 ? 0 : _pending.End[at - 1]) + n;
        if (!_options.Fuse)
            FlushLinears();
    }

    private bool Queued(ulong output)
    {
        for (int i = 0; i < _pendingCount; i++)
            if (_pending.Output[i] == output)
                return true;
        return false;
    }

    // Launches the queued linears: GEMV kernels 8 rows of the input a launch; cuBLAS for more rows, as one GEMM when
    // the weights lie back to back in memory (the arena places q, k, v and gate, up so), else one GEMM each. With
    // swiglu set, the two queued linears are gate and up and silu(gate) * up goes to swiglu in the same pass.
    private void FlushLinears() => FlushLinears(0);

    private void FlushLinears(ulong swiglu)
    {
        int count = _pendingCount;
        if (count == 0)
            return;
        _pendingCount = 0;
        _device.MakeCurrent();
        var parts = _pending;
        // Parts not in use end where the last one does, so no column falls in them.
        for (int i = count; i < 3; i++)
        {
            parts.Weight[i] = parts.Bias[i] = parts.Output[i] = 0;
            parts.End[i] = parts.End[count - 1];
        }
        int n = parts.End[2], k = _pendingK, rows = _pendingRows;
        if (rows > _options.GemvMaxRows)
        {
            long size = _pendingType == DType.F32 ? 4 : 2;
            bool stacked = true;
            for (int i = 1; i < count; i++)
                stacked &= parts.Weight[i] == parts.Weight[i - 1] + (ulong)((parts.End[i - 1] - (i == 1 ? 0 : parts.End[i - 2])) * k * size);
            if (stacked)
            {
                _activeProfiler?.Begin(count == 1 ? $"linear {n}x{k} gemm" : $"linear {n}x{k} gemm ({count} stacked{(swiglu != 0 ? ", swiglu" : "")})");
                Gemm(_pendingType, k, _pendingX, rows, parts, count, swiglu);
                _activeProfiler?.End();
                return;
            }
            for (int i = 0; i < count; i++)
            {
                var one = default(LinearParts);
                one.Weight[0] = parts.Weight[i];
                one.Bias[0] = parts.Bias[i];
                one.Output[0] = parts.Output[i];
                one.End[0] = one.End[1] = one.End[2] = parts.End[i] - (i == 0 ? 0 : parts.End[i - 1]);
                _activeProfiler?.Begin($"linear {one.End[0]}x{k} gemm");
                Gemm(_pendingType, k, _pendingX, rows, one, 1, 0);
                _activeProfiler?.End();
            }
            if (swiglu != 0)
                LaunchSiluMul(parts.Output[0], parts.Output[1], swiglu, (long)rows * parts.End[0]);
            return;
        }
        if (swiglu != 0)
        {
            GemvSwiGlu(parts, k, rows, swiglu);
            return;
        }
        int chunk = 0;
        ulong xr = _pendingX;
        var fn = $"gemv_{Suffix(_pendingType)}_";
        void** args = stackalloc void*[] { &parts, &xr, &k, &chunk };
        _activeProfiler?.Begin(count == 1 ? $"linear {n}x{k} gemv" : $"linear {n}x{k} gemv ({count} fused)");
        for (int r = 0; r < rows; r += GemvRows)
        {
            chunk = Math.Min(GemvRows, rows - r);
            int m = chunk == 1 ? 1 : chunk == 2 ? 2 : chunk <= 4 ? 4 : 8;
            xr = _pendingX + (ulong)((long)r * k * 4);
            for (int i = 0; i < count; i++)
            {
                int width = _pending.End[i] - (i == 0 ? 0 : _pending.End[i - 1]);
                parts.Output[i] = _pending.Output[i] + (ulong)((long)r * width * 4);
            }
            Run(fn + m, (uint)((n + 7) / 8), 1, 1, 256, 1, 0, args, _options.DependentLaunch);
        }
        _activeProfiler?.End();
    }

    // Gate and up GEMVs with SwiGLU, 8 rows of the input a launch.
    private void GemvSwiGlu(LinearParts parts, int k, int rows, ulong swiglu)
    {
        int n = parts.End[0], chunk = 0;
        ulong gw = parts.Weight[0], uw = parts.Weight[1], xr = 0, gate = 0, up = 0, y = 0;
        var fn = $"gemv_swiglu_{Suffix(_pendingType)}_";
        void** args = stackalloc void*[] { &gw, &uw, &xr, &k, &chunk, &n, &gate, &up, &y };
        _activeProfiler?.Begin($"linear {2 * n}x{k} gemv (2 fused, swiglu)");
        for (int r = 0; r < rows; r += GemvRows)
        {
            chunk = Math.Min(GemvRows, rows - r);
            int m = chunk == 1 ? 1 : chunk == 2 ? 2 : chunk <= 4 ? 4 : 8;
            long at = (long)r * n * 4;
            xr = _pendingX + (ulong)((long)r * k * 4);
            (gate, up, y) = (parts.Output[0] + (ulong)at, parts.Output[1] + (ulong)at, swiglu + (ulong)at);
            Run(fn + m, (uint)((n + 7) / 8), 1, 1, 256, 1, 0, args, _options.DependentLaunch);
        }
        _activeProfiler?.End();
    }

    // One cuBLAS GEMM over the stacked weights of `parts` (starting at part 0's), then the epilogue that adds the lo
    // half, the biases and scatters the columns to each part's output (or, with swiglu, writes gate, up and SwiGLU); a
    // lone part without bias or lo half is written in place.
    private void Gemm(DType dtype, int k, ulong x, int rows, LinearParts parts, int count, ulong swiglu)
    {
        EnsureCublas();
        int n = parts.End[2];
        long outCount = (long)rows * n;
        float one = 1f, zero = 0f;
        int halves = dtype != DType.F32 && _options.Gemm == CudaGemmPrecision.Split ? 2 : 1;
        bool direct = count == 1 && halves == 1 && parts.Bias[0] == 0 && swiglu == 0;
        if (!direct)
            Grow(ref _gemmOut, ref _gemmOutBytes, halves * outCount * 4, "GEMM output");
        ulong output = direct ? parts.Output[0] : _gemmOut, weight = parts.Weight[0];
        if (dtype == DType.F32)
        {
            // Pedantic: no TF32 behind float32 weights, whose models expect float32 results.
            Cublas.Check(Cublas.cublasSetMathMode(_cublas, Cublas.PedanticMath), "cublasSetMathMode");
            Cublas.Check(Cublas.cublasGemmEx(_cublas, Cublas.OpT, Cublas.OpN, n, rows, k, &one, weight, Cublas.R32F, k, x, Cublas.R32F, k,
                &zero, output, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault), "cublasGemmEx (f32)");
        }
        else
        {
            long inCount = (long)rows * k;
            Grow(ref _gemmIn, ref _gemmInBytes, halves * inCount * 2, "GEMM activations");
            ulong input = _gemmIn;
            int remainder = halves - 1;
            void** split = stackalloc void*[] { &x, &input, &inCount, &remainder };
            Run("split_" + Suffix(dtype), Blocks(inCount), 1, 1, 256, 1, 0, split);
            int type = dtype == DType.BF16 ? Cublas.R16BF : Cublas.R16F;
            Cublas.Check(Cublas.cublasSetMathMode(_cublas, Cublas.DefaultMath), "cublasSetMathMode");
            Cublas.Check(Cublas.cublasGemmEx(_cublas, Cublas.OpT, Cublas.OpN, n, halves * rows, k, &one, weight, type, k, input, type, k,
                &zero, output, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault), "cublasGemmEx (16-bit)");
        }
        if (direct)
            return;
        int two = halves - 1;
        if (swiglu != 0)
        {
            ulong gate = parts.Output[0], up = parts.Output[1];
            int width = parts.End[0];
            void** glu = stackalloc void*[] { &output, &two, &gate, &up, &swiglu, &rows, &width };
            Run("swiglu_epilogue", Blocks((long)rows * width), 1, 1, 256, 1, 0, glu);
            return;
        }
        void** args = stackalloc void*[] { &output, &two, &parts, &rows };
        Run("linear_epilogue", Blocks(outCount), 1, 1, 256, 1, 0, args);
    }

    /// <inheritdoc />
    public void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim)
    {
        // The style is in the fingerprint: a graph bakes it into its launch.
        if (Deferred(new StepOperation(OperationKind.Rotary, q, k, I0: heads, I1: kvHeads, I2: headDim, I3: (int)Step.RotaryStyle)))
            return;
        ulong qp = Ptr(q), kp = Ptr(k);
        Flush();
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
        _rotaryPending = false;
        int half = Step.RotaryHalfDim, heads = _rotaryHeads, kvHeads = _rotaryKvHeads, headDim = _rotaryHeadDim;
        int interleaved = Step.RotaryStyle == RotaryStyle.Interleaved ? 1 : 0;
        ulong qp = _rotaryQ, kp = _rotaryK, cos = _meta + (ulong)_cosOff, sin = _meta + (ulong)_sinOff;
        void** args = stackalloc void*[] { &qp, &kp, &cos, &sin, &heads, &kvHeads, &headDim, &half, &interleaved };
        _activeProfiler?.Begin("rope");
        Run("rope", (uint)Step.TokenCount, 1, 1, 256, 1, 0, args);
        _activeProfiler?.End();
    }

    // Everything queued is launched before an operation that is not fused with it.
    private void Flush()
    {
        FlushLinears();
        FlushRotary();
    }

    /// <inheritdoc />
    public void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow)
    {
        if (Deferred(new StepOperation(OperationKind.Attention, cache, q, k, v, output, layer, heads, kvHeads, headDim, slidingWindow, scale)))
            return;
        var kv = (CudaKvCache)cache;
        ulong qp = Ptr(q), kp = Ptr(k), vp = Ptr(v), op = Ptr(output);
        FlushLinears();
        var batch = Step;
        if (heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads are not a multiple of {kvHeads} KV heads");
        int tokens = batch.TokenCount, kvDim = kvHeads * headDim, half = batch.RotaryHalfDim;
        string type = kv.Suffix;
        ulong slots = _meta + (ulong)_slotsOff, kc = kv.Keys(layer), vc = kv.Values(layer);
        if (_rotaryPending && _rotaryQ == qp && _rotaryK == kp && _rotaryHeads == heads && _rotaryKvHeads == kvHeads && _rotaryHeadDim == headDim)
        {
            _rotaryPending = false;
            ulong cos = _meta + (ulong)_cosOff, sin = _meta + (ulong)_sinOff;
            int interleaved = batch.RotaryStyle == RotaryStyle.Interleaved ? 1 : 0;
            void** fused = stackalloc void*[] { &qp, &kp, &vp, &cos, &sin, &slots, &kc, &vc, &heads, &kvHeads, &headDim, &half, &interleaved };
            _activeProfiler?.Begin("rope + kv_write");
            Run("rope_kv_write_" + type, (uint)tokens, (uint)(heads + kvHeads + 1), 1, 128, 1, 0, fused);
            _activeProfiler?.End();
        }
        else
        {
            FlushRotary();
            _activeProfiler?.Begin("kv_write");
            void** write = stackalloc void*[] { &kp, &vp, &slots, &kc, &vc, &kvDim };
            Run("kv_write_" + type, (uint)tokens, 1, 1, 256, 1, 0, write);
            _activeProfiler?.End();
        }

        if (_tileCount == 0 && headDim * kv.ElementBytes % 16 == 0)
        {
            DecodeAttention(kv, qp, op, kc, vc, tokens, heads, kvHeads, headDim, scale, slidingWindow);
            return;
        }
        // A block computes up to 8 query heads of one KV head (the group cut into chunks of a power of two: 7 runs as 8).
        int group = heads / kvHeads;
        int wpb = group == 1 ? 1 : group == 2 ? 2 : group <= 4 ? 4 : 8, chunks = (group + wpb - 1) / wpb;
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
        uint shared = (uint)((KeyTile * (headDim + 4) + KeyTile * headDim + warps * wpb * headDim) * 4);
        string kernel = $"attention_{type}_{wpb}_{(headDim <= 128 ? 4 : 8)}";
        var fn = _device.Function(kernel);
        if (shared > 48 * 1024 && _sharedRaised.Add(fn))
            Driver.Check(Driver.cuFuncSetAttribute(fn, Driver.FuncAttrMaxDynamicSharedSize, PromptAttentionShared), "cuFuncSetAttribute(attention)");
        void** args = stackalloc void*[]
        {
            &qp, &op, &kc, &vc, &tokSeq, &seqs, &tables, &tileList, &heads, &kvHeads, &headDim, &chunks, &scale, &blockSize, &slidingWindow,
            &partial, &counters,
        };
        _activeProfiler?.Begin("attention");
        _device.Launch(fn, kernel, (uint)gridX, (uint)gridY, (uint)splits, 32, (uint)warps, shared, args);
        _activeProfiler?.End();
    }

    // Decode steps whose K/V rows are whole 16-byte chunks: attention_decode_* (turbine.cu), a block of 4 warps per (token,
    // up to 8 query heads of one KV head, key split). Every launch argument depends on the step's shape alone, as graphs need.
    private void DecodeAttention(CudaKvCache kv, ulong qp, ulong op, ulong kc, ulong vc, int tokens, int heads, int kvHeads, int headDim,
        float scale, int slidingWindow)
    {
        int group = heads / kvHeads, chunks = (group + DecodeMaxHeads - 1) / DecodeMaxHeads, perBlock = (group + chunks - 1) / chunks;
        int log2Heads = perBlock == 1 ? 0 : perBlock == 2 ? 1 : perBlock <= 4 ? 2 : 3, blockHeads = 1 << log2Heads;
        int rowChunks = headDim * kv.ElementBytes / 16;
        long slotBytes = DecodeKeys * (((rowChunks + 1) | 1) + rowChunks) * 16L;
        // Ring slots per warp: the copies of all but one stay in flight while the warp computes that one.
        int stages = (int)Math.Clamp(DecodeRingBytes / (DecodeWarps * slotBytes), 2, 4);
        long ring = 4L * blockHeads * headDim + DecodeWarps * stages * slotBytes;
        long blocks = (long)tokens * kvHeads * chunks;
        // Blocks resident at once, as shared memory allows (228 KB an SM on sm_90, 1 KB of it reserved per block).
        long resident = Math.Max(1, 228L * 1024 / (ring + 1024)) * _device.Multiprocessors;
        int splits, minKeys;
        if (blocks < resident)
        {
            // Under one wave (small batches): contexts cut into as many splits as fill the GPU, of 64 keys at least.
            splits = (int)Math.Clamp(resident / blocks, 1, MaxSplits);
            minKeys = 64;
        }
        else
        {
            // Past one wave: contexts of more than 256 keys in two splits where that fills the last wave better
            // (batch 64 of 8 KV heads on float32: 2.6 waves instead of 1.3).
            double waves = (double)blocks / resident;
            splits = 2 * waves / Math.Ceiling(2 * waves) > waves / Math.Ceiling(waves) + 0.15 ? 2 : 1;
            minKeys = 256;
        }
        if (splits > 1)
        {
            Grow(ref _partial, ref _partialBytes, (long)tokens * heads * splits * (headDim + 4) * 4, "attention partials");
            Grow(ref _counters, ref _countersBytes, blocks * 4, "attention split counters", zero: true);
        }
        // Scaled queries, then the warps' rings, which the warps' states and the split weights reuse once they are done.
        long merge = 4L * Math.Max(DecodeWarps * blockHeads * (headDim + 2), blockHeads * splits);
        uint shared = (uint)(4L * blockHeads * headDim + Math.Max(DecodeWarps * stages * slotBytes, merge));
        string kernel = DecodeKernels[(int)kv.Type, log2Heads, headDim <= 128 ? 0 : 1];
        var fn = _device.Function(kernel);
        if (shared > 48 * 1024 && _sharedRaised.Add(fn))
            Driver.Check(Driver.cuFuncSetAttribute(fn, Driver.FuncAttrMaxDynamicSharedSize, 160 * 1024), "cuFuncSetAttribute(attention)");
        ulong tokSeq = _meta + (ulong)_tokSeqOff, seqs = _meta + (ulong)_seqsOff, tables = _meta + (ulong)_tablesOff, partial = _partial,
            counters = _counters;
        int blockSize = kv.Shape.BlockSize;
        void** args = stackalloc void*[]
        {
            &qp, &op, &kc, &vc, &tokSeq, &seqs, &tables, &heads, &kvHeads, &headDim, &chunks, &scale, &blockSize, &slidingWindow, &stages,
            &minKeys, &partial, &counters,
        };
        _activeProfiler?.Begin("attention");
        _device.Launch(fn, kernel, (uint)tokens, (uint)(kvHeads * chunks), (uint)splits, DecodeWarps * 32, 1, shared, args);
        _activeProfiler?.End();
    }

    // attention_decode_{f32|f16|bf16}_{1|2|4|8 heads a block}_{1|2: up to 128 or 256 dims}, by [cache type, log2 heads, dims > 128].
    private static readonly string[,,] DecodeKernels = DecodeKernelNames();

    private static string[,,] DecodeKernelNames()
    {
        var names = new string[3, 4, 2];
        foreach (var type in Enum.GetValues<CudaKvCacheType>())
            for (int h = 0; h < 4; h++)
                for (int c = 0; c < 2; c++)
                    names[(int)type, h, c] = $"attention_decode_{type.ToString().ToLowerInvariant()}_{1 << h}_{c + 1}";
        return names;
    }

    /// <inheritdoc />
    public void CopyKvBlock(KvCacheStorage cache, int source, int destination)
    {
        _device.MakeCurrent();
        EndStepBody();
        var kv = (CudaKvCache)cache;
        ulong block = (ulong)kv.Shape.BlockSize * (ulong)kv.Shape.SlotWidth * (ulong)kv.ElementBytes;
        for (int layer = 0; layer < kv.Shape.Layers; layer++)
        {
            Driver.Check(Driver.cuMemcpyDtoDAsync(kv.Keys(layer) + (ulong)destination * block, kv.Keys(layer) + (ulong)source * block, (nuint)block,
                _device.Stream), "copying a K block");
            Driver.Check(Driver.cuMemcpyDtoDAsync(kv.Values(layer) + (ulong)destination * block, kv.Values(layer) + (ulong)source * block, (nuint)block,
                _device.Stream), "copying a V block");
        }
    }

    /// <inheritdoc />
    public void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count)
    {
        if (Deferred(new StepOperation(OperationKind.SiluMul, gate, up, y, L0: count)))
            return;
        ulong g = Ptr(gate), u = Ptr(up), yp = Ptr(y);
        // Right after the gate and up linears of the same rows: SwiGLU runs in their GEMV or GEMM epilogue.
        if (_pendingCount == 2 && _pending.Output[0] == g && _pending.Output[1] == u && _pending.Bias[0] == 0 && _pending.Bias[1] == 0
            && _pending.End[1] == 2 * _pending.End[0] && (long)_pendingRows * _pending.End[0] == count)
        {
            FlushLinears(yp);
            return;
        }
        Flush();
        LaunchSiluMul(g, u, yp, count);
    }

    private void LaunchSiluMul(ulong g, ulong u, ulong yp, long count)
    {
        void** args = stackalloc void*[] { &g, &u, &yp, &count };
        _activeProfiler?.Begin("silu_mul");
        Run("silu_mul", Blocks(count), 1, 1, 256, 1, 0, args);
        _activeProfiler?.End();
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
    public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs)
    {
        // Consecutive linears of one input are already queued and launched together by Linear.
        for (int i = 0; i < weights.Length; i++)
            Linear(x, rows, weights[i], biases[i], outputs[i]);
    }

    /// <inheritdoc />
    public void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids)
    {
        _device.MakeCurrent();
        EndStepBody();
        if (rows <= 0)
            return;
        if ((long)rows * width > logits.Length)
            throw new ArgumentException($"{rows} rows of {width} floats do not fit in the buffer", nameof(rows));
        // Only the ids cross the bus: rows × 4 bytes instead of rows × width × 4 (33 MB at batch 64 of a 128k vocabulary).
        Grow(ref _ids, ref _idsBytes, rows * 4L, "argmax ids");
        // Few rows are cut into chunks of about 4096 so that more than a handful of SMs scan them.
        int chunks = rows >= 32 ? 1 : Math.Clamp(width / 4096, 1, 64);
        if (chunks > 1)
        {
            Grow(ref _argPartial, ref _argPartialBytes, rows * chunks * 8L, "argmax partials");
            Grow(ref _argCounters, ref _argCountersBytes, rows * 4L, "argmax counters", zero: true);
        }
        ulong x = Ptr(logits), idsPtr = _ids, best = _argPartial, index = _argPartial + (ulong)(rows * chunks * 4L), counters = _argCounters;
        void** args = stackalloc void*[] { &x, &idsPtr, &width, &best, &index, &counters };
        _activeProfiler?.Begin("argmax");
        Run("argmax_rows", (uint)rows, (uint)chunks, 1, chunks > 1 ? 256u : 1024u, 1, 0, args);
        fixed (int* d = ids)
        {
            Driver.Check(Driver.cuMemcpyDtoHAsync(d, _ids, (nuint)rows * sizeof(int), _device.Stream), "downloading argmax ids");
            _activeProfiler?.End();
            _device.Synchronize();
        }
        _profiler?.Harvest();
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

    // The step's forward pass ends where its logits are read: everything queued for it is launched, and a graph being
    // captured is finished and launched, or the replayed one launched.
    private void EndStepBody()
    {
        Flush();
        var mode = _mode;
        if (mode == StepMode.Eager)
            return;
        _mode = StepMode.Eager;
        if (mode == StepMode.Capturing)
        {
            nint graph, exec;
            Driver.Check(Driver.cuStreamEndCapture(_device.Stream, &graph), "cuStreamEndCapture (the decode step's graph)");
            int status = Driver.cuGraphInstantiateWithFlags(&exec, graph, 0);
            if (status != 0)
            {
                Driver.cuGraphDestroy(graph);
                Driver.Check(status, "cuGraphInstantiateWithFlags");
            }
            if (_graphs.Remove(_stepKey, out var stale))
                stale.Dispose();
            _graphs[_stepKey] = new StepGraph(graph, exec, _fingerprint, _memoryEpoch);
        }
        var step = _graphs[_stepKey];
        if (step.Fingerprint != _fingerprint)
        {
            // Another caller's operations in a step of the same shape (a second model, another cache, a test driving
            // the backend directly): run them as recorded and let the next such step capture its own graph.
            _graphs.Remove(_stepKey);
            step.Dispose();
            RunRecorded();
            Flush();
            return;
        }
        ClearRecorded();
        Driver.Check(Driver.cuGraphLaunch(step.Exec, _device.Stream), "cuGraphLaunch");
    }

    private void DropGraphs()
    {
        foreach (var graph in _graphs.Values)
            graph.Dispose();
        _graphs.Clear();
        _eagerSteps.Clear();
    }

    private enum StepMode { Eager, Capturing, Replaying }

    // A captured decode step: the graph, its executable instance, the fingerprint of the operations it holds and the
    // memory epoch whose buffer addresses it uses.
    private sealed class StepGraph(nint graph, nint exec, ulong fingerprint, long epoch) : IDisposable
    {
        public nint Exec => exec;
        public ulong Fingerprint => fingerprint;
        public long Epoch => epoch;

        public void Dispose()
        {
            Driver.cuGraphExecDestroy(exec);
            Driver.cuGraphDestroy(graph);
        }
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
        if (_staging != null)
            Driver.cuMemFreeHost(_staging);
        void* host;
        Driver.Check(Driver.cuMemHostAlloc(&host, (nuint)size, 0), $"cuMemHostAlloc({size} bytes of step staging)");
        _staging = (byte*)host;
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
        _profiler?.Dispose();
        foreach (var p in new[] { _meta, _gemmIn, _gemmOut, _partial, _ids, _counters, _flag, _workspace, _argPartial, _argCounters, _sampleDevice })
            _device.Free(p);
        _meta = _gemmIn = _gemmOut = _partial = _ids = _counters = _flag = _workspace = _argPartial = _argCounters = _sampleDevice = 0;
        if (_staging != null)
            Driver.cuMemFreeHost(_staging);
        if (_sampleHost != null)
            Driver.cuMemFreeHost(_sampleHost);
        _staging = null;
        _sampleHost = null;
        _arena.Dispose();
        _device.Dispose();
    }
}
