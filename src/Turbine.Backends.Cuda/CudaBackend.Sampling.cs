using Turbine.Backends.Cuda.Native;
using Turbine.Engine.Backends;
using Turbine.Engine.Sampling;

namespace Turbine.Backends.Cuda;

// IComputeBackend.Sample on the GPU: the sample_rows kernel (Kernels/sampling.cu), one block per logit row.
public sealed unsafe partial class CudaBackend
{
    // Sample's rows (parameters, CSR lists) go up from pinned host memory in one transfer; ids and log probs come back
    // into it in one transfer.
    private byte* _sampleHost;
    private long _sampleHostBytes;
    private ulong _sampleDevice;
    private long _sampleDeviceBytes;

    /// <inheritdoc />
    public void Sample(DeviceBuffer logits, int width, SamplingBatch rows, Span<int> ids, Span<float> logProbs)
    {
        _device.MakeCurrent();
        EndStepBody();
        int count = rows.Count;
        if (count <= 0)
            return;
        if ((long)count * width > logits.Length)
            throw new ArgumentException($"{count} rows of {width} floats do not fit in the buffer", nameof(rows));
        int penalties = rows.PenaltyTokens.Length, bans = rows.BanTokens.Length;
        long off = 0;
        long paramsOff = Take(ref off, count * 32L);
        long penaltyOffsetsOff = Take(ref off, (count + 1) * 4L);
        long banOffsetsOff = Take(ref off, (count + 1) * 4L);
        long penaltyTokensOff = Take(ref off, penalties * 4L);
        long penaltyCountsOff = Take(ref off, penalties * 4L);
        long banTokensOff = Take(ref off, bans * 4L);
        long inputBytes = off;
        // Ids, then log probs: one download.
        long outputOff = Take(ref off, count * 8L);
        EnsureSampleBuffers(off);

        var parameters = new Span<float>(_sampleHost + paramsOff, 8 * count);
        for (int r = 0; r < count; r++)
        {
            var p = rows.Rows[r];
            var w = parameters.Slice(8 * r, 8);
            w[0] = p.Temperature;
            w[1] = BitConverter.Int32BitsToSingle(p.TopK);
            w[2] = p.TopP;
            w[3] = p.RepetitionPenalty;
            w[4] = p.PresencePenalty;
            w[5] = p.FrequencyPenalty;
            w[6] = p.Uniform;
            // Flags as sampling.cu defines them: 1 greedy, 2 log prob wanted.
            w[7] = BitConverter.Int32BitsToSingle((p.IsGreedy ? 1 : 0) | (p.WantLogProb ? 2 : 0));
        }
        rows.PenaltyOffsets.CopyTo(new Span<int>(_sampleHost + penaltyOffsetsOff, count + 1));
        rows.BanOffsets.CopyTo(new Span<int>(_sampleHost + banOffsetsOff, count + 1));
        rows.PenaltyTokens.CopyTo(new Span<int>(_sampleHost + penaltyTokensOff, penalties));
        rows.PenaltyCounts.CopyTo(new Span<int>(_sampleHost + penaltyCountsOff, penalties));
        rows.BanTokens.CopyTo(new Span<int>(_sampleHost + banTokensOff, bans));

        ulong d = _sampleDevice;
        _activeProfiler?.Begin("sample");
        Driver.Check(Driver.cuMemcpyHtoDAsync(d, _sampleHost, (nuint)inputBytes, _device.Stream), "uploading sampling rows");
        ulong x = Ptr(logits), pParams = d + (ulong)paramsOff, pPenaltyOffsets = d + (ulong)penaltyOffsetsOff,
            pPenaltyTokens = d + (ulong)penaltyTokensOff, pPenaltyCounts = d + (ulong)penaltyCountsOff,
            pBanOffsets = d + (ulong)banOffsetsOff, pBanTokens = d + (ulong)banTokensOff,
            pIds = d + (ulong)outputOff, pLogProbs = pIds + (ulong)count * 4;
        void** args = stackalloc void*[]
        {
            &x, &width, &pParams, &pPenaltyOffsets, &pPenaltyTokens, &pPenaltyCounts, &pBanOffsets, &pBanTokens, &pIds, &pLogProbs,
        };
        Run("sample_rows", (uint)count, 1, 1, 1024, 1, 0, args);
        Driver.Check(Driver.cuMemcpyDtoHAsync(_sampleHost + outputOff, pIds, (nuint)count * 8, _device.Stream), "downloading sampled ids");
        _activeProfiler?.End();
        _device.Synchronize();
        _profiler?.Harvest();
        new ReadOnlySpan<int>(_sampleHost + outputOff, count).CopyTo(ids);
        new ReadOnlySpan<float>(_sampleHost + outputOff + count * 4L, count).CopyTo(logProbs);
    }

    private void EnsureSampleBuffers(long bytes)
    {
        // The previous Sample waited for its transfers, so the pinned memory is free to replace.
        if (bytes > _sampleHostBytes)
        {
            long size = Math.Max(bytes, 2 * _sampleHostBytes);
            if (_sampleHost != null)
                Driver.cuMemFreeHost(_sampleHost);
            void* host;
            Driver.Check(Driver.cuMemHostAlloc(&host, (nuint)size, 0), $"cuMemHostAlloc({size} bytes of sampling staging)");
            _sampleHost = (byte*)host;
            _sampleHostBytes = size;
        }
        Grow(ref _sampleDevice, ref _sampleDeviceBytes, bytes, "sampling rows");
    }
}
