using System.Runtime.InteropServices;
using Turbine.Backends.Cuda.Native;

namespace Turbine.Backends.Cuda;

/// <summary>
/// One GPU through the driver API: its primary context, a stream, device memory and the compiled kernel module.
/// The context is made current on whichever thread calls in (the executor runs steps on its own thread).
/// </summary>
internal sealed unsafe class CudaDevice : IDisposable
{
    [ThreadStatic] private static nint t_current;
    private readonly Dictionary<string, nint> _functions = [];
    private nint _context;
    private nint _module;
    private int _device;

    public CudaDevice(int ordinal, string cacheDirectory)
    {
        Ordinal = ordinal;
        try
        {
            int status = Driver.cuInit(0);
            if (status == 100)
                throw new CudaException("no CUDA device: the NVIDIA driver loaded but reports no GPU (CUDA_ERROR_NO_DEVICE)") { Status = status };
            Driver.Check(status, "cuInit");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new CudaException("the CUDA driver (libcuda.so.1) could not be loaded: no NVIDIA driver is on this machine's library path (--device cpu runs without one)", e);
        }
        int count, device, version;
        Driver.Check(Driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count)
            throw new CudaException($"CUDA device {ordinal} does not exist ({count} device(s) present)");
        Driver.Check(Driver.cuDeviceGet(&device, ordinal), "cuDeviceGet");
        _device = device;
        Driver.Check(Driver.cuDriverGetVersion(&version), "cuDriverGetVersion");
        DriverVersion = version;
        var name = stackalloc byte[256];
        Driver.Check(Driver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        DeviceName = Marshal.PtrToStringUTF8((nint)name) ?? "CUDA device";
        int major, minor, sms;
        Driver.Check(Driver.cuDeviceGetAttribute(&major, Driver.AttrComputeCapabilityMajor, device), "cuDeviceGetAttribute");
        Driver.Check(Driver.cuDeviceGetAttribute(&minor, Driver.AttrComputeCapabilityMinor, device), "cuDeviceGetAttribute");
        Driver.Check(Driver.cuDeviceGetAttribute(&sms, Driver.AttrMultiprocessorCount, device), "cuDeviceGetAttribute");
        (Major, Minor, Multiprocessors) = (major, minor, sms);
        nint context, stream;
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        _context = context;
        MakeCurrent();
        Driver.Check(Driver.cuStreamCreate(&stream, Driver.StreamNonBlocking), "cuStreamCreate");
        Stream = stream;
        var cubin = KernelCompiler.Compile(KernelCompiler.ModuleSource(), "turbine.cu", major, minor, cacheDirectory);
        nint module;
        fixed (byte* image = cubin)
            Driver.Check(Driver.cuModuleLoadData(&module, image), "cuModuleLoadData (turbine.cu)");
        _module = module;
    }

    public int Ordinal { get; }
    public string DeviceName { get; }
    public int Major { get; }
    public int Minor { get; }
    public int Multiprocessors { get; }
    public int DriverVersion { get; }
    public nint Stream { get; }

    /// <summary>Makes this device's context current on the calling thread (once per thread).</summary>
    public void MakeCurrent()
    {
        if (t_current == _context)
            return;
        Driver.Check(Driver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        t_current = _context;
    }

    /// <summary>The kernel <paramref name="name"/> of the module.</summary>
    public nint Function(string name)
    {
        if (_functions.TryGetValue(name, out var f))
            return f;
        var bytes = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* n = bytes)
            Driver.Check(Driver.cuModuleGetFunction(&f, _module, n), $"cuModuleGetFunction({name})");
        _functions[name] = f;
        return f;
    }

    /// <summary>
    /// Launches <paramref name="function"/> on the stream; <paramref name="args"/> point at each argument. A
    /// <paramref name="dependent"/> launch may start while the kernel before it finishes (programmatic dependent launch,
    /// sm_90+): the kernel itself waits for its predecessor before reading what that wrote.
    /// </summary>
    public void Launch(nint function, string name, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint sharedBytes, void** args,
        bool dependent = false)
    {
        if (gridX == 0 || gridY == 0 || gridZ == 0)
            return;
        if (!dependent || Major < 9)
        {
            Driver.Check(Driver.cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, 1, sharedBytes, Stream, args, null), $"launching {name}");
            return;
        }
        var attribute = new Driver.LaunchAttribute { Id = Driver.LaunchAttributeProgrammaticStreamSerialization, Value = 1 };
        var config = new Driver.LaunchConfig
        {
            GridX = gridX, GridY = gridY, GridZ = gridZ, BlockX = blockX, BlockY = blockY, BlockZ = 1, SharedBytes = sharedBytes,
            Stream = Stream, Attributes = &attribute, AttributeCount = 1,
        };
        Driver.Check(Driver.cuLaunchKernelEx(&config, function, args, null), $"launching {name}");
    }

    /// <summary>Device memory of <paramref name="bytes"/>; out of memory says how much was asked for and how much is free.</summary>
    public ulong Allocate(long bytes, string what)
    {
        MakeCurrent();
        ulong pointer;
        int status = Driver.cuMemAlloc(&pointer, (nuint)Math.Max(1, bytes));
        if (status == Driver.ErrorOutOfMemory)
        {
            nuint free = 0, total = 0;
            Driver.cuMemGetInfo(&free, &total);
            throw new CudaException($"out of GPU memory on {DeviceName}: {what} needs {Mib(bytes)} but only {Mib((long)free)} of {Mib((long)total)} is free")
            { Status = status };
        }
        Driver.Check(status, $"cuMemAlloc({Mib(bytes)} for {what})");
        return pointer;
    }

    /// <summary>Called before any memory is freed: the backend launches work it holds back that may still use it.</summary>
    public Action? BeforeFree { get; set; }

    public void Free(ulong pointer)
    {
        if (pointer == 0)
            return;
        BeforeFree?.Invoke();
        MakeCurrent();
        Driver.Check(Driver.cuMemFree(pointer), "cuMemFree");
    }

    /// <summary>Waits for the stream; an error from an earlier kernel surfaces here.</summary>
    public void Synchronize()
    {
        int status = Driver.cuStreamSynchronize(Stream);
        if (status != 0)
            throw new CudaException($"the GPU step failed: {Driver.Describe(status)} (an earlier kernel or copy on the stream faulted)") { Status = status };
    }

    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Driver.Check(Driver.cuMemGetInfo(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    private static string Mib(long bytes) => $"{bytes / 1048576.0:F0} MiB";

    public void Dispose()
    {
        if (_context == 0)
            return;
        MakeCurrent();
        Driver.cuStreamSynchronize(Stream);
        if (_module != 0)
            Driver.cuModuleUnload(_module);
        if (Stream != 0)
            Driver.cuStreamDestroy(Stream);
        _module = 0;
        // Leave the context current-less: the primary context is shared with anything else in the process.
        Driver.cuDevicePrimaryCtxRelease(_device);
        t_current = 0;
        _context = 0;
    }
}
