using System.Runtime.InteropServices;

namespace Turbine.Backends.Cuda.Native;

/// <summary>cuBLASLt (libcublasLt.so.13): the fp8 lo pass of prompt-step GEMMs (<see cref="CudaGemmPrecision.Fp8Lo"/>).</summary>
internal static unsafe partial class CublasLt
{
    private const string Lib = "libcublasLt.so.13";

    public const int R8FE4M3 = 28;
    public const int DescTransA = 3;
    public const int DescTransB = 4;
    public const int DescAScalePointer = 17;
    public const int DescBScalePointer = 18;
    public const int DescFastAccum = 25;
    public const int DescAScaleMode = 31;
    public const int DescBScaleMode = 32;
    // CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F: a float32 scale per row of op(A) and per column of op(B).
    public const int ScaleOuterVector = 3;
    public const int PrefMaxWorkspaceBytes = 1;

    /// <summary>cublasLtMatmulHeuristicResult_t (96 bytes): the algorithm is passed back to cublasLtMatmul as is.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public fixed ulong Algo[8];
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    [LibraryImport(Lib)] public static partial int cublasLtCreate(nint* handle);
    [LibraryImport(Lib)] public static partial int cublasLtDestroy(nint handle);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescCreate(nint* desc, int computeType, int scaleType);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint size);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutCreate(nint* layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutDestroy(nint layout);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceCreate(nint* preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceDestroy(nint preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint size);
    [LibraryImport(Lib)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(nint handle, nint desc, nint a, nint b, nint c, nint d, nint preference, int requested,
        HeuristicResult* results, int* returned);
    [LibraryImport(Lib)]
    public static partial int cublasLtMatmul(nint handle, nint desc, void* alpha, ulong a, nint aLayout, ulong b, nint bLayout, void* beta, ulong c,
        nint cLayout, ulong d, nint dLayout, void* algo, ulong workspace, nuint workspaceBytes, nint stream);
}
