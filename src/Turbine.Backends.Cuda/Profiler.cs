using Turbine.Backends.Cuda.Native;

namespace Turbine.Backends.Cuda;

/// <summary>Times operations on the stream with pairs of CUDA events, summed per name once the stream has caught up.</summary>
internal sealed unsafe class Profiler(CudaDevice device) : IDisposable
{
    private readonly Stack<nint> _free = new();
    private readonly List<(string Name, nint Start, nint End)> _pending = [];
    private string? _name;
    private nint _start;

    public Dictionary<string, (double Milliseconds, int Calls)> Totals { get; } = [];

    public void Begin(string name)
    {
        _name = name;
        _start = Take();
        Driver.Check(Driver.cuEventRecord(_start, device.Stream), "cuEventRecord");
    }

    public void End()
    {
        var end = Take();
        Driver.Check(Driver.cuEventRecord(end, device.Stream), "cuEventRecord");
        _pending.Add((_name!, _start, end));
    }

    /// <summary>Adds up the finished pairs; call after the stream was synchronised.</summary>
    public void Harvest()
    {
        foreach (var (name, start, end) in _pending)
        {
            float ms;
            Driver.Check(Driver.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
            var (total, calls) = Totals.GetValueOrDefault(name);
            Totals[name] = (total + ms, calls + 1);
            _free.Push(start);
            _free.Push(end);
        }
        _pending.Clear();
    }

    private nint Take()
    {
        if (_free.TryPop(out var e))
            return e;
        Driver.Check(Driver.cuEventCreate(&e, Driver.EventDefault), "cuEventCreate");
        return e;
    }

    public void Dispose()
    {
        foreach (var (_, s, e) in _pending)
        {
            Driver.cuEventDestroy(s);
            Driver.cuEventDestroy(e);
        }
        while (_free.TryPop(out var e))
            Driver.cuEventDestroy(e);
    }
}
