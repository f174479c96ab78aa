using System.Runtime.InteropServices;

namespace Turbine.Backends.Cuda.Native;

/// <summary>cuBLAS (libcublas.so.13): the GEMMs of steps with many rows.</summary>
internal static unsafe partial class Cublas
{
    private const string Lib = "libcublas.so.13";

    public const int OpN = 0;
    public const int OpT = 1;
    public const int R32F = 0;
    public const int R16F = 2;
    public const int R16BF = 14;
    public const int Compute32F = 68;
    public const int GemmDefault = -1;
    public const int DefaultMath = 0;
    public const int PedanticMath = 2;

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")] public static partial int cublasCreate(nint* handle);
    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")] public static partial int cublasDestroy(nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")] public static partial int cublasSetStream(nint handle, nint stream);
    [LibraryImport(Lib, EntryPoint = "cublasSetWorkspace_v2")] public static partial int cublasSetWorkspace(nint handle, ulong workspace, nuint bytes);
    [LibraryImport(Lib)] public static partial int cublasSetMathMode(nint handle, int mode);
    [LibraryImport(Lib)]
    public static partial int cublasGemmEx(nint handle, int transA, int transB, int m, int n, int k, void* alpha, ulong a, int aType, int lda,
        ulong b, int bType, int ldb, void* beta, ulong c, int cType, int ldc, int computeType, int algo);

    /// <summary>Throws unless <paramref name="status"/> is CUBLAS_STATUS_SUCCESS.</summary>
    public static void Check(int status, string call)
    {
        if (status != 0)
            throw new CudaException($"{call} failed: {Name(status)} [{status}]") { Status = status };
    }

    private static string Name(int status) => status switch
    {
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        _ => "cuBLAS error",
    };
}
