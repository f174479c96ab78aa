using System.Runtime.CompilerServices;
using Turbine.Backends.Cuda.Native;
using Turbine.Engine.Backends;

namespace Turbine.Backends.Cuda;

// Decode steps as CUDA graphs: one captured per step shape, replayed while the step's operations match it.
public sealed unsafe partial class CudaBackend
{
    // Decode-step graphs: keyed by (tokens, sequences, logit rows, tokens fed from the last argmax); valid while no buffer
    // they use was reallocated.
    private readonly Dictionary<(int, int, int, bool), StepGraph> _graphs = [];
    private readonly Dictionary<(int, int, int, bool), long> _eagerSteps = [];
    private StepMode _mode;
    private (int, int, int, bool) _stepKey;
    private ulong _fingerprint;
    private long _memoryEpoch;
    private StepOperation[] _operations = new StepOperation[512];
    private int _recorded;
    private int[] _gatherRows = new int[64];
    private readonly HashSet<nint> _sharedRaised = [];

    // A decode step replays its shape's graph when one was captured since the last reallocation, is captured when the
    // shape already ran once eagerly (so every buffer it needs has grown), and runs eagerly otherwise.
    private void BeginDecodeGraph((int, int, int, bool) key)
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
}
