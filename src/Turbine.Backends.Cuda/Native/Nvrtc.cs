using System.Runtime.InteropServices;

namespace Turbine.Backends.Cuda.Native;

/// <summary>NVRTC (libnvrtc.so.13): run-time compilation of the embedded kernel sources.</summary>
internal static unsafe partial class Nvrtc
{
    private const string Lib = "libnvrtc.so.13";

    [LibraryImport(Lib)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(Lib)]
    public static partial int nvrtcCreateProgram(nint* program, byte* source, byte* name, int headers, byte** headerSources, byte** includeNames);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(nint program, int options, byte** optionValues);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(nint program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBINSize(nint program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(nint* program);
    [LibraryImport(Lib)] public static partial byte* nvrtcGetErrorString(int result);

    /// <summary>Throws unless <paramref name="status"/> is NVRTC_SUCCESS.</summary>
    public static void Check(int status, string call)
    {
        if (status != 0)
            throw new CudaException($"{call} failed: {Marshal.PtrToStringUTF8((nint)nvrtcGetErrorString(status))} [{status}]") { Status = status };
    }
}
