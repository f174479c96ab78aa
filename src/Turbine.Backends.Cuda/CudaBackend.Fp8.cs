using Turbine.Backends.Cuda.Native;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cuda;

// CudaGemmPrecision.Fp8Lo: a GEMM of many rows as an f16 hi pass (cuBLAS) plus an e4m3 pass of the activations'
// remainder against the weights' e4m3 copies (cuBLASLt, about twice the 16-bit rate) that adds its result to the hi
// pass's (beta 1): the epilogues then read one float32 result instead of two halves (prompt step 64 × 128: 337 → 332 ms).
public sealed unsafe partial class CudaBackend
{
    private nint _lt, _ltDesc;

    /// <summary>GEMMs run as an f16 hi and an fp8 lo pass so far (<see cref="CudaGemmPrecision.Fp8Lo"/>).</summary>
    public long Fp8LoGemms { get; private set; }
    private readonly Dictionary<(int M, int Rows, int K, int Ld), Fp8Plan> _fp8Plans = [];

    // cuBLASLt's layouts for one fp8 GEMM shape (output width m, rows, k, output row stride) and the heuristic's
    // algorithm; Found false where it has none, and such GEMMs run split.
    private sealed class Fp8Plan
    {
        public nint A, B, D;
        public CublasLt.HeuristicResult Algo;
        public bool Found;
    }

    // The e4m3 copies and scales of the queued linears, in LinearParts' order; 0 where a linear has none.
    private struct Fp8Parts
    {
        public fixed ulong Data[3];
        public fixed ulong Scale[3];
    }

    // Whether GEMMs of `rows` rows of this weight dtype take the fp8 lo pass (then no kernel writes their 16-bit split).
    private bool Fp8Rows(DType type, int rows) => Fp8Lo && type == DType.F16 && rows >= _options.Fp8LoMinRows;

    // The GEMM of f16 `parts` over x into output (the hi pass's result, the lo pass's added to it), when
    // each part has an e4m3 copy and cuBLASLt an algorithm for each run of copies lying back to back; false, with
    // nothing launched, otherwise.
    private bool GemmFp8(int k, ulong x, int rows, LinearParts parts, Fp8Parts fp8, int count, ulong output)
    {
        // Runs of parts [first[r], first[r + 1]): one fp8 GEMM each, added to the run's columns.
        Span<int> first = stackalloc int[4];
        if (!Fp8Runs(k, rows, parts, fp8, count, first, out int runs))
            return false;
        int n = parts.End[2];
        long inCount = (long)rows * k;
        ulong hi = _gemmIn, lo = _gemmIn + (ulong)(inCount * 2), scales = lo + (ulong)inCount;
        // hi (f16, saturated at ±65504), lo = x - hi in e4m3 with a power-of-two scale per row, and 1/scale per row,
        // unless the kernel that wrote x wrote them too.
        if (!(_splitOf == x && _splitCount == inCount && _splitHalves == Fp8Split && _splitType == DType.F16))
        {
            int threads = Math.Clamp((k / 16 + 31) & ~31, 64, 1024);
            void** split = stackalloc void*[] { &x, &k, &hi, &lo, &scales };
            Run("split_fp8", (uint)rows, 1, 1, (uint)threads, 1, 0, split);
        }
        float one = 1f, zero = 0f;
        Cublas.Check(Cublas.cublasSetMathMode(_cublas, Cublas.DefaultMath), "cublasSetMathMode");
        Cublas.Check(Cublas.cublasGemmEx(_cublas, Cublas.OpT, Cublas.OpN, n, rows, k, &one, parts.Weight[0], Cublas.R16F, k, hi, Cublas.R16F, k,
            &zero, output, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault), "cublasGemmEx (f16 hi)");
        for (int r = 0; r < runs; r++)
        {
            int start = RunStart(parts, first[r]);
            var plan = PlanFp8(start, RunEnd(parts, first[r + 1]), rows, k, n, fp8.Scale[first[r]], scales);
            var algo = plan.Algo;
            ulong d = output + (ulong)(start * sizeof(float));
            Cublas.Check(CublasLt.cublasLtMatmul(_lt, _ltDesc, &one, fp8.Data[first[r]], plan.A, lo, plan.B, &one, d, plan.D, d, plan.D, &algo,
                _workspace, (nuint)CublasWorkspaceBytes, _device.Stream), "cublasLtMatmul (e4m3 lo)");
        }
        Fp8LoGemms++;
        return true;
    }

    // Whether the GEMM of `parts` over rows × k inputs takes the fp8 lo pass, and its runs of e4m3 copies lying back to
    // back (first[0..runs], first[runs] = count); grows _gemmIn to the fp8 split's size.
    private bool Fp8Runs(int k, int rows, LinearParts parts, Fp8Parts fp8, int count, Span<int> first, out int runs)
    {
        runs = 0;
        if (!Fp8Rows(DType.F16, rows) || k % 16 != 0)
            return false;
        for (int i = 0; i < count; i++)
        {
            if (fp8.Data[i] == 0)
                return false;
            long width = i == 0 ? 0 : parts.End[i - 1] - (i == 1 ? 0 : parts.End[i - 2]);
            if (i == 0 || fp8.Data[i] != fp8.Data[i - 1] + (ulong)(width * k) || fp8.Scale[i] != fp8.Scale[i - 1] + (ulong)(width * sizeof(float)))
                first[runs++] = i;
        }
        first[runs] = count;
        long inCount = (long)rows * k;
        Grow(ref _gemmIn, ref _gemmInBytes, Fp8SplitBytes(rows, inCount), "GEMM activations");
        ulong scales = _gemmIn + (ulong)(inCount * 3);
        for (int r = 0; r < runs; r++)
            if (!PlanFp8(RunStart(parts, first[r]), RunEnd(parts, first[r + 1]), rows, k, parts.End[2], fp8.Scale[first[r]], scales).Found)
                return false;
        return true;
    }

    private static int RunStart(LinearParts parts, int part) => part == 0 ? 0 : parts.End[part - 1];

    private static int RunEnd(LinearParts parts, int next) => parts.End[next - 1];

    // The plan for output columns [start, end) of a row stride ld, with the descriptor's scale pointers set to these
    // (per output channel of the weights, per row of the activations) for the launch that follows.
    private Fp8Plan PlanFp8(int start, int end, int rows, int k, int ld, ulong weightScale, ulong rowScale)
    {
        EnsureLt();
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(_ltDesc, CublasLt.DescAScalePointer, &weightScale, sizeof(ulong)), "A scale pointer");
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(_ltDesc, CublasLt.DescBScalePointer, &rowScale, sizeof(ulong)), "B scale pointer");
        int m = end - start;
        if (_fp8Plans.TryGetValue((m, rows, k, ld), out var plan))
            return plan;
        plan = new Fp8Plan();
        nint a, b, d, preference;
        Cublas.Check(CublasLt.cublasLtMatrixLayoutCreate(&a, CublasLt.R8FE4M3, (ulong)k, (ulong)m, k), "cublasLtMatrixLayoutCreate");
        Cublas.Check(CublasLt.cublasLtMatrixLayoutCreate(&b, CublasLt.R8FE4M3, (ulong)k, (ulong)rows, k), "cublasLtMatrixLayoutCreate");
        Cublas.Check(CublasLt.cublasLtMatrixLayoutCreate(&d, Cublas.R32F, (ulong)m, (ulong)rows, ld), "cublasLtMatrixLayoutCreate");
        (plan.A, plan.B, plan.D) = (a, b, d);
        Cublas.Check(CublasLt.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
        ulong workspace = CublasWorkspaceBytes;
        Cublas.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, CublasLt.PrefMaxWorkspaceBytes, &workspace, sizeof(ulong)),
            "cublasLtMatmulPreferenceSetAttribute");
        CublasLt.HeuristicResult result;
        int found = 0;
        int status = CublasLt.cublasLtMatmulAlgoGetHeuristic(_lt, _ltDesc, a, b, d, d, preference, 1, &result, &found);
        CublasLt.cublasLtMatmulPreferenceDestroy(preference);
        (plan.Algo, plan.Found) = (result, status == 0 && found > 0);
        _fp8Plans[(m, rows, k, ld)] = plan;
        return plan;
    }

    // cuBLASLt and the one matmul descriptor of the fp8 passes: weights op T (cuBLASLt's fp8 GEMMs want the TN layout),
    // activations op N, float32 scales per row of each operand, fast accumulation (the lo term is 2^-11 of the result).
    private void EnsureLt()
    {
        if (_lt != 0)
            return;
        nint handle = 0, desc = 0;
        try
        {
            Cublas.Check(CublasLt.cublasLtCreate(&handle), "cublasLtCreate");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new CudaException("cuBLASLt (libcublasLt.so.13) could not be loaded: put the CUDA 13 libraries on the library path (LD_LIBRARY_PATH)", e);
        }
        Cublas.Check(CublasLt.cublasLtMatmulDescCreate(&desc, Cublas.Compute32F, Cublas.R32F), "cublasLtMatmulDescCreate");
        int opT = Cublas.OpT, opN = Cublas.OpN, mode = CublasLt.ScaleOuterVector;
        sbyte fast = 1;
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescTransA, &opT, sizeof(int)), "TRANSA");
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescTransB, &opN, sizeof(int)), "TRANSB");
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescAScaleMode, &mode, sizeof(int)), "A scale mode");
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescBScaleMode, &mode, sizeof(int)), "B scale mode");
        Cublas.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescFastAccum, &fast, sizeof(sbyte)), "FAST_ACCUM");
        (_lt, _ltDesc) = (handle, desc);
    }

    private void DisposeFp8()
    {
        foreach (var plan in _fp8Plans.Values)
        {
            CublasLt.cublasLtMatrixLayoutDestroy(plan.A);
            CublasLt.cublasLtMatrixLayoutDestroy(plan.B);
            CublasLt.cublasLtMatrixLayoutDestroy(plan.D);
        }
        _fp8Plans.Clear();
        if (_ltDesc != 0)
            CublasLt.cublasLtMatmulDescDestroy(_ltDesc);
        if (_lt != 0)
            CublasLt.cublasLtDestroy(_lt);
        (_lt, _ltDesc) = (0, 0);
    }
}
