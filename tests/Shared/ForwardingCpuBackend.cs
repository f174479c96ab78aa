using Turbine.Backends.Cpu;
using Turbine.Core.Checkpoints;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Tests;

/// <summary>
/// A backend that hands every operation to a CPU backend: tests derive from it to count calls or to report what a GPU
/// backend would (free device memory, 16-bit KV entries) while the real CPU kernels compute.
/// </summary>
public class ForwardingCpuBackend(CpuBackend cpu) : IComputeBackend
{
    public virtual string Name => cpu.Name;
    public virtual int KvElementBytes => ((IComputeBackend)cpu).KvElementBytes;
    public virtual DeviceWeight Upload(in TensorSlice tensor) => cpu.Upload(tensor);
    public virtual DeviceBuffer Allocate(long floats) => cpu.Allocate(floats);
    public virtual KvCacheStorage AllocateKvCache(KvCacheShape shape) => cpu.AllocateKvCache(shape);
    public virtual void BeginStep(ForwardBatch batch) => cpu.BeginStep(batch);
    public virtual void Embed(DeviceWeight table, DeviceBuffer y) => cpu.Embed(table, y);
    public virtual void RmsNorm(DeviceBuffer x, int rows, DeviceWeight weight, float eps, DeviceBuffer y) => cpu.RmsNorm(x, rows, weight, eps, y);
    public virtual void AddRmsNorm(DeviceBuffer residual, DeviceBuffer delta, int rows, DeviceWeight weight, float eps, DeviceBuffer y) =>
        cpu.AddRmsNorm(residual, delta, rows, weight, eps, y);
    public virtual void Linear(DeviceBuffer x, int rows, DeviceWeight weight, DeviceWeight? bias, DeviceBuffer y) => cpu.Linear(x, rows, weight, bias, y);
    public virtual void LinearGroup(DeviceBuffer x, int rows, ReadOnlySpan<DeviceWeight> weights, ReadOnlySpan<DeviceWeight?> biases,
        ReadOnlySpan<DeviceBuffer> outputs) => cpu.LinearGroup(x, rows, weights, biases, outputs);
    public virtual void Rotary(DeviceBuffer q, int heads, DeviceBuffer k, int kvHeads, int headDim) => cpu.Rotary(q, heads, k, kvHeads, headDim);
    public virtual void Attention(KvCacheStorage cache, int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        int heads, int kvHeads, int headDim, float scale, int slidingWindow) =>
        cpu.Attention(cache, layer, q, k, v, output, heads, kvHeads, headDim, scale, slidingWindow);
    public virtual void CopyKvBlock(KvCacheStorage cache, int source, int destination) => cpu.CopyKvBlock(cache, source, destination);
    public virtual void SiluMul(DeviceBuffer gate, DeviceBuffer up, DeviceBuffer y, long count) => cpu.SiluMul(gate, up, y, count);
    public virtual void GatherRows(DeviceBuffer x, ReadOnlySpan<int> rows, int width, DeviceBuffer y) => cpu.GatherRows(x, rows, width, y);
    public virtual void ArgMax(DeviceBuffer logits, int rows, int width, Span<int> ids) => cpu.ArgMax(logits, rows, width, ids);
    public virtual bool FeedsTokens => cpu.FeedsTokens;
    public virtual void QueueArgMax(DeviceBuffer logits, int rows, int width) => cpu.QueueArgMax(logits, rows, width);
    public virtual void ReadQueuedArgMax(Span<int> ids) => cpu.ReadQueuedArgMax(ids);
    public virtual void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs) =>
        cpu.Sample(logits, width, rows, ids, logProbs);
    public virtual void Download(DeviceBuffer source, Span<float> destination) => cpu.Download(source, destination);
    public void Dispose() => cpu.Dispose();
}
