using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Turbine.Backends.Cuda.Native;

namespace Turbine.Backends.Cuda;

/// <summary>
/// Compiles the embedded .cu sources with NVRTC for one compute capability, caching the CUBIN on disk keyed by the
/// source's hash, the options, the architecture and the NVRTC version, so only the first run on a machine compiles.
/// </summary>
internal static unsafe class KernelCompiler
{
    private const string Prefix = "Turbine.Backends.Cuda.Kernels.";

    /// <summary>The embedded source <paramref name="file"/> (e.g. "turbine.cu").</summary>
    public static string Source(string file)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(Prefix + file)
            ?? throw new CudaException($"kernel source {file} is not embedded in {Assembly.GetExecutingAssembly().GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// The module's whole source: turbine.cu (types and helpers every kernel uses) followed by the other embedded .cu
    /// files in name order, compiled as one module.
    /// </summary>
    public static string ModuleSource()
    {
        var sources = new StringBuilder(Source("turbine.cu"));
        var others = Assembly.GetExecutingAssembly().GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal) && n != Prefix + "turbine.cu")
            .Order(StringComparer.Ordinal);
        foreach (var name in others)
            sources.Append('\n').Append(Source(name[Prefix.Length..]));
        return sources.ToString();
    }

    /// <summary>CUBIN of <paramref name="source"/> for sm_<paramref name="major"/><paramref name="minor"/>, from the cache when present.</summary>
    public static byte[] Compile(string source, string name, int major, int minor, string cacheDirectory)
    {
        string[] options = [$"--gpu-architecture=sm_{major}{minor}", "-std=c++17", "--extra-device-vectorization"];
        // The module's few hundred kernels take NVRTC 30-60 s on one thread; from 12.1 on it can optimise them on all of
        // the machine's threads (a first start, before the cache holds the CUBIN, waits for this).
        string[] parallel = [.. options, "--split-compile=0"];
        int nvMajor = 0, nvMinor = 0;
        try
        {
            Nvrtc.Check(Nvrtc.nvrtcVersion(&nvMajor, &nvMinor), "nvrtcVersion");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new CudaException("NVRTC (libnvrtc.so.13) could not be loaded: put the CUDA 13 libraries on the library path (LD_LIBRARY_PATH)", e);
        }
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{source}\n{string.Join(' ', options)}\nnvrtc {nvMajor}.{nvMinor}")))[..24];
        var path = Path.Combine(cacheDirectory, $"{Path.GetFileNameWithoutExtension(name)}-{key}-sm{major}{minor}.cubin");
        if (File.Exists(path))
            return File.ReadAllBytes(path);
        byte[] cubin;
        try
        {
            cubin = nvMajor > 12 || (nvMajor == 12 && nvMinor >= 1) ? Build(source, name, parallel) : Build(source, name, options);
        }
        catch (CudaException e) when (e.Status == InvalidOption)
        {
            cubin = Build(source, name, options);
        }
        try
        {
            Directory.CreateDirectory(cacheDirectory);
            // Written aside and moved in, so a concurrent process never loads half a file.
            var temp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllBytes(temp, cubin);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only cache only costs a recompile next time.
        }
        return cubin;
    }

    // NVRTC_ERROR_INVALID_OPTION: an NVRTC that does not know --split-compile.
    private const int InvalidOption = 5;

    private static byte[] Build(string source, string name, string[] options)
    {
        nint program = 0;
        var src = Utf8(source);
        var nm = Utf8(name);
        fixed (byte* s = src, n = nm)
            Nvrtc.Check(Nvrtc.nvrtcCreateProgram(&program, s, n, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var handles = options.Select(o => GCHandle.Alloc(Utf8(o), GCHandleType.Pinned)).ToArray();
            int status;
            try
            {
                var pointers = stackalloc byte*[options.Length];
                for (int i = 0; i < options.Length; i++)
                    pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                status = Nvrtc.nvrtcCompileProgram(program, options.Length, pointers);
            }
            finally
            {
                foreach (var h in handles)
                    h.Free();
            }
            if (status != 0)
                throw new CudaException($"NVRTC could not compile {name} ({string.Join(' ', options)}):\n{Log(program)}") { Status = status };
            nuint size;
            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
            var cubin = new byte[size];
            fixed (byte* c = cubin)
                Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, c), "nvrtcGetCUBIN");
            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(&program);
        }
    }

    private static string Log(nint program)
    {
        nuint size;
        if (Nvrtc.nvrtcGetProgramLogSize(program, &size) != 0 || size <= 1)
            return "(no log)";
        var log = new byte[size];
        fixed (byte* l = log)
            Nvrtc.nvrtcGetProgramLog(program, l);
        return Encoding.UTF8.GetString(log, 0, (int)size - 1);
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s + "\0");
}
