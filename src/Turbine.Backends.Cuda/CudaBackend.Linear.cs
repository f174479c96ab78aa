using Turbine.Backends.Cuda.Native;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

// Linears: GEMV kernels for few rows, cuBLAS GEMMs for many; consecutive linears of one input launched together.
public sealed unsafe partial class CudaBackend
{
    // Linears queued but not launched yet: consecutive linears of the same input (q, k, v; gate, up) join one GEMV
    // launch or one GEMM, and every other operation launches the queue first.
    private LinearParts _pending;
    private Fp8Parts _pendingFp8;
    private int _pendingCount;
    private ulong _pendingX;
    private int _pendingRows, _pendingK;
    private DType _pendingType;

    // The last GEMM's result, not yet scattered to its outputs (with Fuse): the next operation sums its halves and biases
    // itself when it reads those outputs (add + RMSNorm after the o and down linears, RoPE + KV write after q/k/v), and
    // anything else launches linear_epilogue first (Materialize).
    private bool _lazyPending;
    private LinearParts _lazy;
    private int _lazyCount, _lazyRows, _lazyTwo;
    private ulong _lazyAcc;

    // _gemmIn holds the 16-bit split of the first _splitCount floats of _splitOf (in _splitHalves halves, or FP8Split),
    // written by the kernel launched last (Run clears it): the GEMM that reads that buffer next skips its own split.
    private ulong _splitOf;
    private long _splitCount;
    private int _splitHalves;
    // _splitHalves of an fp8 split (f16 hi, e4m3 lo, a scale a row: GemmFp8's input).
    private const int Fp8Split = 3;
    private DType _splitType;
    // The dtype of the last GEMM's 16-bit weights (F32: none yet): what an RMSNorm in front of the next one splits into.
    private DType _gemmType = DType.F32;

    // The kernels' LinearParts: weights, biases (0: none) and outputs of up to three linears, and where each one's
    // columns end in the stacked output.
    private struct LinearParts
    {
        public fixed ulong Weight[3];
        public fixed ulong Bias[3];
        public fixed ulong Output[3];
        public fixed int End[3];
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
        _pendingFp8.Data[at] = w.Fp8;
        _pendingFp8.Scale[at] = w.Fp8Scale;
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
        {
            Materialize();
            return;
        }
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
        long size = _pendingType == DType.F32 ? 4 : 2;
        bool stacked = rows > _options.GemvMaxRows;
        for (int i = 1; i < count; i++)
            stacked &= parts.Weight[i] == parts.Weight[i - 1] + (ulong)((parts.End[i - 1] - (i == 1 ? 0 : parts.End[i - 2])) * k * size);
        // A kernel held back with the fp8 split of these linears' input: the one GEMM over them, if it takes the fp8 lo
        // pass, reads only the split, and the input (which it consumes) need not be written.
        if (_holding)
        {
            Span<int> first = stackalloc int[4];
            var h = _held;
            bool splitOnly = stacked && h.Y == _pendingX && h.Rows == rows && h.Width == k && _pendingType == h.Type
                && (h.Fp8 ? Fp8Runs(k, rows, parts, _pendingFp8, count, first, out _) : !Fp8Rows(_pendingType, rows));
            // The GEMM's result buffer grown now, not after: freeing the old one launches anything held, whole, and
            // forgets which split _gemmIn holds.
            if (splitOnly)
                Grow(ref _gemmOut, ref _gemmOutBytes, (h.Fp8 ? 1 : Halves(h.Type)) * (long)rows * n * 4, "GEMM output");
            Release(writeRows: !splitOnly);
        }
        Materialize();
        if (rows > _options.GemvMaxRows)
        {
            if (stacked)
            {
                _activeProfiler?.Begin(count == 1 ? $"linear {n}x{k} gemm" : $"linear {n}x{k} gemm ({count} stacked{(swiglu != 0 ? ", swiglu" : "")})");
                Gemm(_pendingType, k, _pendingX, rows, parts, _pendingFp8, count, swiglu);
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
                var oneFp8 = default(Fp8Parts);
                oneFp8.Data[0] = _pendingFp8.Data[i];
                oneFp8.Scale[0] = _pendingFp8.Scale[i];
                _activeProfiler?.Begin($"linear {one.End[0]}x{k} gemm");
                Gemm(_pendingType, k, _pendingX, rows, one, oneFp8, 1, 0);
                // The next part's GEMM reuses the result buffer.
                Materialize();
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

    // One cuBLAS GEMM over the stacked weights of `parts` (starting at part 0's), or with Fp8Lo in steps of many rows
    // an f16 hi and an fp8 lo GEMM (GemmFp8), then the epilogue that adds the lo half (the split's), the biases and scatters the
    // columns to each part's output (or, with swiglu, writes only silu(gate) * up: SiluMul consumes gate and up); a lone
    // part without bias or lo half is written in place. With Fuse the epilogue is left to the next operation (see
    // _lazyPending), and the SwiGLU epilogue also writes the down GEMM's 16-bit input.
    private void Gemm(DType dtype, int k, ulong x, int rows, LinearParts parts, Fp8Parts fp8, int count, ulong swiglu)
    {
        EnsureCublas();
        int n = parts.End[2];
        long outCount = (long)rows * n;
        float one = 1f, zero = 0f;
        int halves = Halves(dtype);
        bool direct = count == 1 && halves == 1 && parts.Bias[0] == 0 && swiglu == 0;
        // An fp8 lo pass adds to the hi pass's result: no lo half to hold.
        if (!direct)
            Grow(ref _gemmOut, ref _gemmOutBytes, (Fp8Rows(dtype, rows) ? 1 : halves) * outCount * 4, "GEMM output");
        ulong output = direct ? parts.Output[0] : _gemmOut, weight = parts.Weight[0];
        if (dtype == DType.F32)
        {
            // Pedantic: no TF32 behind float32 weights, whose models expect float32 results.
            Cublas.Check(Cublas.cublasSetMathMode(_cublas, Cublas.PedanticMath), "cublasSetMathMode");
            Cublas.Check(Cublas.cublasGemmEx(_cublas, Cublas.OpT, Cublas.OpN, n, rows, k, &one, weight, Cublas.R32F, k, x, Cublas.R32F, k,
                &zero, output, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault), "cublasGemmEx (f32)");
        }
        else if (GemmFp8(k, x, rows, parts, fp8, count, output))
            halves = 1;
        else
        {
            if (!direct)
            {
                Grow(ref _gemmOut, ref _gemmOutBytes, halves * outCount * 4, "GEMM output");
                output = _gemmOut;
            }
            long inCount = (long)rows * k;
            Grow(ref _gemmIn, ref _gemmInBytes, halves * inCount * 2, "GEMM activations");
            ulong input = _gemmIn;
            if (!(_splitOf == x && _splitCount == inCount && _splitHalves == halves && _splitType == dtype))
            {
                int remainder = halves - 1;
                void** split = stackalloc void*[] { &x, &input, &inCount, &remainder };
                Run("split_" + Suffix(dtype), Blocks(inCount), 1, 1, 256, 1, 0, split);
            }
            int type = dtype == DType.BF16 ? Cublas.R16BF : Cublas.R16F;
            Cublas.Check(Cublas.cublasSetMathMode(_cublas, Cublas.DefaultMath), "cublasSetMathMode");
            Cublas.Check(Cublas.cublasGemmEx(_cublas, Cublas.OpT, Cublas.OpN, n, halves * rows, k, &one, weight, type, k, input, type, k,
                &zero, output, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault), "cublasGemmEx (16-bit)");
        }
        if (dtype != DType.F32)
            _gemmType = dtype;
        if (direct)
            return;
        int two = halves - 1;
        if (swiglu != 0)
        {
            int width = parts.End[0];
            long yCount = (long)rows * width;
            // The down GEMM that follows reads y as its input: split it here, while y is in registers; for an fp8 lo
            // pass a block a row, which holds the row for its scale.
            uint rowThreads = (uint)Math.Clamp(((width / 4 + 7) / 8 + 31) & ~31, 128, 1024);
            ulong fp8Split = Fp8SplitTarget(dtype, rows, width, rowThreads);
            bool rowSplit = fp8Split != 0;
            Hold(new HeldRows
            {
                Fp8 = rowSplit, Type = dtype, Acc = output, AccTwo = two, Y = swiglu, Split = rowSplit ? fp8Split : SplitTarget(dtype, rows, yCount), SplitTwo = two,
                Rows = rows, Width = width, Threads = rowThreads,
            });
            return;
        }
        if (_options.Fuse)
        {
            (_lazyPending, _lazy, _lazyCount, _lazyRows, _lazyTwo, _lazyAcc) = (true, parts, count, rows, two, output);
            return;
        }
        LinearEpilogue(output, two, parts, rows);
    }

    private int Halves(DType dtype) => dtype != DType.F32 && _options.Gemm is CudaGemmPrecision.Split or CudaGemmPrecision.Fp8Lo ? 2 : 1;

    // Where a kernel about to write `count` floats of a GEMM step's activations also writes their 16-bit split as the next
    // GEMM's input (split into `type`, the GEMM weights' dtype): _gemmIn, or 0 where no split is wanted (not fusing, few
    // rows for the GEMV kernels, no 16-bit GEMM seen yet, or rows whose GEMMs split into hi and fp8 lo themselves).
    private ulong SplitTarget(DType type, int rows, long count)
    {
        if (!_options.Fuse || type == DType.F32 || rows <= _options.GemvMaxRows || Fp8Rows(type, rows))
            return 0;
        Grow(ref _gemmIn, ref _gemmInBytes, Halves(type) * count * 2, "GEMM activations");
        return _gemmIn;
    }

    // Where a kernel holding each row of `width` floats in registers (at most eight float4 a thread of `threads`) writes
    // the fp8 split of the rows for the next GEMM, when that GEMM takes the fp8 lo pass: _gemmIn as GemmFp8 lays it out
    // (saving split_fp8's pass over the rows); 0 otherwise.
    private ulong Fp8SplitTarget(DType type, int rows, int width, uint threads)
    {
        if (!_options.Fuse || !Fp8Rows(type, rows) || width % 16 != 0 || width > 32 * threads)
            return 0;
        long count = (long)rows * width;
        Grow(ref _gemmIn, ref _gemmInBytes, Fp8SplitBytes(rows, count), "GEMM activations");
        return _gemmIn;
    }

    private static long Fp8SplitBytes(int rows, long count) => count * 3 + rows * sizeof(float);

    // After the kernel launched last wrote the split of `buffer` to a SplitTarget (an Fp8SplitTarget with fp8): the GEMM
    // that reads it next skips its own.
    private void SplitWritten(ulong buffer, long count, DType type, bool fp8 = false) =>
        (_splitOf, _splitCount, _splitHalves, _splitType) = (buffer, count, fp8 ? Fp8Split : Halves(type), type);

    private void LinearEpilogue(ulong output, int two, LinearParts parts, int rows)
    {
        long outCount = (long)rows * parts.End[2];
        void** args = stackalloc void*[] { &output, &two, &parts, &rows };
        Run("linear_epilogue", Blocks(outCount), 1, 1, 256, 1, 0, args);
    }

    // A kernel that writes its rows' split for the next GEMM (an RMSNorm with Norm set, else the SwiGLU epilogue; the
    // fp8 split with Fp8), held back until the next operation: when that is the GEMM over those rows reading just the
    // split, the kernel skips writing the float32 rows themselves (a linear consumes its input, so nothing reads them
    // later; prompt step 64 × 128: 537 MB less written a layer, decode step at batch 64: 8 MB); anything else launches
    // it whole first (Release).
    private struct HeldRows
    {
        public bool Norm, Fp8;
        public DType Type;
        public ulong X, Delta, Weight, Y, Acc, Bias, Split;
        public float Eps;
        public int Rows, Width, AccTwo, SplitTwo;
        public uint Threads;
    }

    private HeldRows _held;
    private bool _holding;

    // A kernel with no split to write has nothing to wait for: it launches at once.
    private void Hold(in HeldRows rows)
    {
        Release(writeRows: true);
        (_held, _holding) = (rows, true);
        if (rows.Split == 0)
            Release(writeRows: true);
    }

    private void Release(bool writeRows)
    {
        if (!_holding)
            return;
        _holding = false;
        var h = _held;
        ulong y = writeRows ? h.Y : 0;
        long count = (long)h.Rows * h.Width;
        bool f16 = h.Type == DType.F16;
        if (h.Norm)
        {
            void** args = stackalloc void*[] { &h.X, &h.Delta, &h.Weight, &h.Eps, &y, &h.Width, &h.Acc, &h.AccTwo, &h.Bias, &h.Split, &h.SplitTwo };
            _activeProfiler?.Begin(h.Acc != 0 ? "rmsnorm (with the linear's epilogue)" : "rmsnorm");
            Run(h.Fp8 ? "rmsnorm_fp8" : f16 ? "rmsnorm_f16" : "rmsnorm_bf16", (uint)h.Rows, 1, 1, h.Threads, 1, 0, args);
        }
        else if (h.Fp8)
        {
            void** args = stackalloc void*[] { &h.Acc, &h.AccTwo, &y, &h.Width, &h.Split };
            _activeProfiler?.Begin("swiglu epilogue");
            Run("swiglu_epilogue_fp8", (uint)h.Rows, 1, 1, h.Threads, 1, 0, args);
        }
        else
        {
            void** args = stackalloc void*[] { &h.Acc, &h.AccTwo, &y, &h.Rows, &h.Width, &h.Split, &h.SplitTwo };
            _activeProfiler?.Begin("swiglu epilogue");
            Run(f16 ? "swiglu_epilogue_f16" : "swiglu_epilogue_bf16", Blocks(count), 1, 1, 256, 1, 0, args);
        }
        _activeProfiler?.End();
        if (h.Split != 0)
            SplitWritten(h.Y, count, h.Type, h.Fp8);
    }

    // Scatters a GEMM result left for the next operation, which turned out not to read it itself.
    private void Materialize()
    {
        Release(writeRows: true);
        if (!_lazyPending)
            return;
        _lazyPending = false;
        _activeProfiler?.Begin("linear epilogue");
        LinearEpilogue(_lazyAcc, _lazyTwo, _lazy, _lazyRows);
        _activeProfiler?.End();
    }

    // Takes the pending GEMM result when it is exactly the single linear output `output` of rows × width (and nothing
    // else is queued that could overwrite the GEMM buffers first): its float32 result, lo half flag and bias.
    private bool TakeLazy(ulong output, int rows, int width, out ulong acc, out int two, out ulong bias)
    {
        (acc, two, bias) = (0, 0, 0);
        if (!_lazyPending || _pendingCount != 0 || _lazyCount != 1 || _lazy.Output[0] != output || _lazyRows != rows || _lazy.End[0] != width)
            return false;
        _lazyPending = false;
        (acc, two, bias) = (_lazyAcc, _lazyTwo, _lazy.Bias[0]);
        return true;
    }

    // Takes the pending GEMM result when it is the stacked q | k | v linears of these outputs and widths.
    private bool TakeLazyQkv(ulong q, ulong k, ulong v, int qDim, int kvDim, int rows, out QkvSource source)
    {
        source = default;
        var l = _lazy;
        if (!_lazyPending || _pendingCount != 0 || _lazyCount != 3 || _lazyRows != rows || l.Output[0] != q || l.Output[1] != k || l.Output[2] != v
            || l.End[0] != qDim || l.End[1] != qDim + kvDim || l.End[2] != qDim + 2 * kvDim)
            return false;
        _lazyPending = false;
        source.Acc = _lazyAcc;
        source.Lo = _lazyTwo != 0 ? (long)rows * l.End[2] : 0;
        source.N = l.End[2];
        for (int i = 0; i < 3; i++)
            source.Bias[i] = l.Bias[i];
        return true;
    }

    // The kernels' QkvSource: a stacked q/k/v GEMM result that rope_kv_write sums itself.
    private struct QkvSource
    {
        public ulong Acc;
        public long Lo;
        public int N;
        public fixed ulong Bias[3];
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
    public void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases, ReadOnlySpan<DeviceBuffer> outputs)
    {
        // Consecutive linears of one input are already queued and launched together by Linear.
        for (int i = 0; i < weights.Length; i++)
            Linear(x, rows, weights[i], biases[i], outputs[i]);
    }
}
