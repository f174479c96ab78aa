using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Turbine.Core.Tensors;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>Fully connected layer y = x · Wᵀ (+ bias) with weights in their checkpoint dtype.</summary>
public static unsafe class Linear
{
    // Prefill blocking: a block of x rows times a block of W rows per work item. Tiles reduce along
    // k, so each ends in 16 horizontal sums; k slices are long so that those stay a small share of
    // the work (measured: 256-wide slices ran at a quarter of the speed of 4096-wide ones).
    private const int PrefillRowsM = 32;
    private const int PrefillRowsN = 64;
    private const int PrefillSliceK = 4096;

    // Below this many weight bytes a GEMV runs on the calling thread: waking workers costs more.
    private const long MinParallelBytes = 64 * 1024;

    /// <summary>
    /// y[m×n] = x[m×k] · Wᵀ (+ bias), W row-major [n×k] as HF stores nn.Linear weights.
    /// m = 1 streams W once, split over threads by rows; m &gt; 1 reuses each loaded W tile across
    /// several x rows.
    /// </summary>
    /// <param name="x">Activations, [m×k] float32.</param>
    /// <param name="m">Rows of x (tokens).</param>
    /// <param name="k">Input features.</param>
    /// <param name="wType">Weight dtype: F32, BF16 or F16.</param>
    /// <param name="w">Weights, [n×k] in <paramref name="wType"/>.</param>
    /// <param name="n">Output features.</param>
    /// <param name="bias">Optional [n] float32 bias, or null.</param>
    /// <param name="y">Output, [m×n] float32; must not overlap x.</param>
    /// <param name="pool">Threads to spread the work over.</param>
    public static void Forward(float* x, int m, int k, DType wType, byte* w, int n, float* bias, float* y, WorkerPool pool)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentNullException.ThrowIfNull(pool);
        if (m == 0 || n == 0)
            return;
        switch (wType)
        {
            case DType.F32: Run<F32Weights>(x, m, k, w, n, bias, y, pool); break;
            case DType.BF16: Run<Bf16Weights>(x, m, k, w, n, bias, y, pool); break;
            case DType.F16: Run<F16Weights>(x, m, k, w, n, bias, y, pool); break;
            default: throw new NotSupportedException($"Linear weights of dtype {wType} are not supported.");
        }
    }

    /// <summary>
    /// Several m = 1 products of the same input in one dispatch: <c>y_i = x · W_iᵀ (+ bias_i)</c> for up to three weights of
    /// one dtype (a layer's q/k/v, or gate/up). Small decode matrices pay a fixed cost per dispatch; sharing it matters.
    /// </summary>
    public static void ForwardGroup(float* x, int k, DType wType, ReadOnlySpan<GemvTarget> targets, WorkerPool pool)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (targets.Length is 0 or > GemvGroupJob<F32Weights>.MaxTargets)
            throw new ArgumentOutOfRangeException(nameof(targets), $"1 to {GemvGroupJob<F32Weights>.MaxTargets} weights per group");
        switch (wType)
        {
            case DType.F32: RunGroup<F32Weights>(x, k, targets, pool); break;
            case DType.BF16: RunGroup<Bf16Weights>(x, k, targets, pool); break;
            case DType.F16: RunGroup<F16Weights>(x, k, targets, pool); break;
            default: throw new NotSupportedException($"Linear weights of dtype {wType} are not supported.");
        }
    }

    private static void RunGroup<TW>(float* x, int k, ReadOnlySpan<GemvTarget> targets, WorkerPool pool) where TW : unmanaged, IWeightType
    {
        var job = new GemvGroupJob<TW> { X = x, XS = TW.Paired ? PermutePairs(x, k, pool.Scratch(k)) : x, K = k, Count = targets.Length };
        int items = 0;
        for (int i = 0; i < targets.Length; i++)
        {
            var t = targets[i];
            int perTarget = Math.Max(1, Math.Min(pool.ThreadCount * 4, (t.N + 3) / 4));
            int rowsPerItem = ((t.N + perTarget - 1) / perTarget + 3) & ~3;
            job.Set(i, t, items, rowsPerItem);
            items += (t.N + rowsPerItem - 1) / rowsPerItem;
        }
        pool.For(items, job);
    }

    private static void Run<TW>(float* x, int m, int k, byte* w, int n, float* bias, float* y, WorkerPool pool)
        where TW : unmanaged, IWeightType
    {
        int threads = pool.ThreadCount;
        if (m == 1)
        {
            // Several items per thread balance uneven progress; rows stay contiguous for the prefetcher.
            int items = (long)n * k * TW.Size < MinParallelBytes ? 1 : Math.Min(threads * 4, (n + 3) / 4);
            int rowsPerItem = ((n + items - 1) / items + 3) & ~3;
            items = (n + rowsPerItem - 1) / rowsPerItem;
            float* xs = TW.Paired ? PermutePairs(x, k, pool.Scratch(k)) : x;
            var job = new GemvJob<TW> { X = x, XS = xs, K = k, W = w, N = n, Bias = bias, Y = y, RowsPerItem = rowsPerItem };
            pool.For(items, job);
        }
        else
        {
            int mBlocks = (m + PrefillRowsM - 1) / PrefillRowsM;
            int nBlocks = (n + PrefillRowsN - 1) / PrefillRowsN;
            var job = new GemmJob<TW> { X = x, M = m, K = k, W = w, N = n, Bias = bias, Y = y, NBlocks = nBlocks };
            pool.For(mBlocks * nBlocks, job);
        }
    }

    private struct GemvJob<TW> : IParallelJob where TW : unmanaged, IWeightType
    {
        public float* X;
        public float* XS;
        public int K;
        public byte* W;
        public int N;
        public float* Bias;
        public float* Y;
        public int RowsPerItem;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index)
        {
            int r0 = index * RowsPerItem;
            int r1 = Math.Min(N, r0 + RowsPerItem);
            nint stride = (nint)K * TW.Size;
            // One row at a time: the item's weights are then one sequential stream, which the
            // hardware prefetcher follows far better than several short interleaved row streams.
            for (int r = r0; r < r1; r++)
            {
                float s = Dot1x1<TW>(X, XS, W + r * stride, K);
                Y[r] = Bias == null ? s : s + Bias[r];
            }
        }
    }

    private struct GemvGroupJob<TW> : IParallelJob where TW : unmanaged, IWeightType
    {
        public const int MaxTargets = 3;
        public float* X;
        public float* XS;
        public int K;
        public int Count;
        private GemvTarget _t0, _t1, _t2;
        private int _first1, _first2;
        private int _rows0, _rows1, _rows2;

        public void Set(int i, GemvTarget target, int firstItem, int rowsPerItem)
        {
            switch (i)
            {
                case 0: _t0 = target; _rows0 = rowsPerItem; break;
                case 1: _t1 = target; _first1 = firstItem; _rows1 = rowsPerItem; break;
                default: _t2 = target; _first2 = firstItem; _rows2 = rowsPerItem; break;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index)
        {
            // Items are numbered target after target; find this one's target and its rows within it.
            GemvTarget t;
            int rowsPerItem, local;
            if (Count > 2 && index >= _first2) { t = _t2; rowsPerItem = _rows2; local = index - _first2; }
            else if (Count > 1 && index >= _first1) { t = _t1; rowsPerItem = _rows1; local = index - _first1; }
            else { t = _t0; rowsPerItem = _rows0; local = index; }
            int r0 = local * rowsPerItem;
            int r1 = Math.Min(t.N, r0 + rowsPerItem);
            nint stride = (nint)K * TW.Size;
            for (int r = r0; r < r1; r++)
            {
                float s = Dot1x1<TW>(X, XS, t.W + r * stride, K);
                t.Y[r] = t.Bias == null ? s : s + t.Bias[r];
            }
        }
    }

    private struct GemmJob<TW> : IParallelJob where TW : unmanaged, IWeightType
    {
        public float* X;
        public int M;
        public int K;
        public byte* W;
        public int N;
        public float* Bias;
        public float* Y;
        public int NBlocks;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int index)
        {
            int m0 = index / NBlocks * PrefillRowsM;
            int n0 = index % NBlocks * PrefillRowsN;
            int m1 = Math.Min(M, m0 + PrefillRowsM);
            int n1 = Math.Min(N, n0 + PrefillRowsN);
            for (int i = m0; i < m1; i++)
            {
                float* yr = Y + (nint)i * N;
                for (int j = n0; j < n1; j++)
                    yr[j] = Bias == null ? 0f : Bias[j];
            }

            nint stride = (nint)K * TW.Size;
            int mr = Vector512.IsHardwareAccelerated ? 4 : Vector256.IsHardwareAccelerated ? 2 : 1;
            float* sums = stackalloc float[16];
            for (int k0 = 0; k0 < K; k0 += PrefillSliceK)
            {
                int kc = Math.Min(PrefillSliceK, K - k0);
                for (int j = n0; j < n1; j += 4)
                {
                    int nValid = Math.Min(4, n1 - j);
                    byte* w0 = W + j * stride + (nint)k0 * TW.Size;
                    byte* w1 = nValid > 1 ? w0 + stride : w0;
                    byte* w2 = nValid > 2 ? w0 + 2 * stride : w0;
                    byte* w3 = nValid > 3 ? w0 + 3 * stride : w0;
                    for (int i = m0; i < m1; i += mr)
                    {
                        int mValid = Math.Min(mr, m1 - i);
                        float* x0 = X + (nint)i * K + k0;
                        if (mr == 4)
                        {
                            float* x1 = mValid > 1 ? x0 + K : x0;
                            float* x2 = mValid > 2 ? x0 + 2 * K : x0;
                            float* x3 = mValid > 3 ? x0 + 3 * K : x0;
                            Tile4x4<TW>(x0, x1, x2, x3, w0, w1, w2, w3, kc, sums);
                        }
                        else if (mr == 2)
                        {
                            Tile2x4<TW>(x0, mValid > 1 ? x0 + K : x0, w0, w1, w2, w3, kc, sums);
                        }
                        else
                        {
                            Dot1x4Scalar<TW>(x0, w0, w1, w2, w3, kc, sums);
                        }
                        for (int a = 0; a < mValid; a++)
                        {
                            float* yr = Y + (nint)(i + a) * N + j;
                            for (int b = 0; b < nValid; b++)
                                yr[b] += sums[a * 4 + b];
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Splits each block of x into its even and odd elements, the order in which
    /// <see cref="IWeightType.LoadPairs512"/> (or LoadPairs256) yields 16-bit weights; done once per
    /// call so the weight loop needs no shuffles. Elements past the last whole block are not copied.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float* PermutePairs(float* x, int k, float* dst)
    {
        nint i = 0;
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
        {
            var evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            var odds = evens + Vector512<int>.One;
            for (; i <= k - 32; i += 32)
            {
                var a = Vector512.Load(x + i);
                var b = Vector512.Load(x + i + 16);
                Avx512F.PermuteVar16x32x2(a, evens, b).Store(dst + i);
                Avx512F.PermuteVar16x32x2(a, odds, b).Store(dst + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated && Avx2.IsSupported)
        {
            var split = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7);
            for (; i <= k - 16; i += 16)
            {
                var a = Avx2.PermuteVar8x32(Vector256.Load(x + i), split);
                var b = Avx2.PermuteVar8x32(Vector256.Load(x + i + 8), split);
                Avx2.Permute2x128(a, b, 0x20).Store(dst + i);
                Avx2.Permute2x128(a, b, 0x31).Store(dst + i + 8);
            }
        }
        else
        {
            int block = Vector512.IsHardwareAccelerated ? 32 : 16;
            for (; i <= k - block; i += block)
            {
                for (int j = 0; j < block / 2; j++)
                {
                    dst[i + j] = x[i + 2 * j];
                    dst[i + block / 2 + j] = x[i + 2 * j + 1];
                }
            }
        }
        return dst;
    }

    /// <summary>
    /// Dot product of x with one W row, the decode kernel: 64 bytes of weights per load, widened in
    /// registers, four accumulators to cover FMA latency. <paramref name="xs"/> is x permuted to
    /// match the weights' element order (x itself for float32).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1x1<TW>(float* x, float* xs, byte* w, int k) where TW : unmanaged, IWeightType
    {
        nint i = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= k - 64; i += 64)
            {
                TW.LoadPairs512(w, i, out var e0, out var o0);
                TW.LoadPairs512(w, i + 32, out var e1, out var o1);
                a0 = Vector512.FusedMultiplyAdd(e0, Vector512.Load(xs + i), a0);
                a1 = Vector512.FusedMultiplyAdd(o0, Vector512.Load(xs + i + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(e1, Vector512.Load(xs + i + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(o1, Vector512.Load(xs + i + 48), a3);
            }
            if (i <= k - 32)
            {
                TW.LoadPairs512(w, i, out var e0, out var o0);
                a0 = Vector512.FusedMultiplyAdd(e0, Vector512.Load(xs + i), a0);
                a1 = Vector512.FusedMultiplyAdd(o0, Vector512.Load(xs + i + 16), a1);
                i += 32;
            }
            s = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= k - 32; i += 32)
            {
                TW.LoadPairs256(w, i, out var e0, out var o0);
                TW.LoadPairs256(w, i + 16, out var e1, out var o1);
                a0 = Vector256.FusedMultiplyAdd(e0, Vector256.Load(xs + i), a0);
                a1 = Vector256.FusedMultiplyAdd(o0, Vector256.Load(xs + i + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(e1, Vector256.Load(xs + i + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(o1, Vector256.Load(xs + i + 24), a3);
            }
            if (i <= k - 16)
            {
                TW.LoadPairs256(w, i, out var e0, out var o0);
                a0 = Vector256.FusedMultiplyAdd(e0, Vector256.Load(xs + i), a0);
                a1 = Vector256.FusedMultiplyAdd(o0, Vector256.Load(xs + i + 8), a1);
                i += 16;
            }
            s = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < k; i++)
            s += TW.Load(w, i) * x[i];
        return s;
    }

    /// <summary>sums[0..3] = the dot products of one x row with four W rows over k elements; the no-SIMD tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot1x4Scalar<TW>(float* x, byte* w0, byte* w1, byte* w2, byte* w3, int k, float* sums)
        where TW : unmanaged, IWeightType
    {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (nint i = 0; i < k; i++)
        {
            float xv = x[i];
            s0 += TW.Load(w0, i) * xv;
            s1 += TW.Load(w1, i) * xv;
            s2 += TW.Load(w2, i) * xv;
            s3 += TW.Load(w3, i) * xv;
        }
        sums[0] = s0;
        sums[1] = s1;
        sums[2] = s2;
        sums[3] = s3;
    }

    /// <summary>4 x rows times 4 W rows: 16 accumulators of 32, each W vector widened once and used 4 times.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x4<TW>(float* x0, float* x1, float* x2, float* x3, byte* w0, byte* w1, byte* w2, byte* w3, int k, float* sums)
        where TW : unmanaged, IWeightType
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        nint i = 0;
        for (; i <= k - 16; i += 16)
        {
            var v0 = TW.Load512(w0, i);
            var v1 = TW.Load512(w1, i);
            var v2 = TW.Load512(w2, i);
            var v3 = TW.Load512(w3, i);
            var xv = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(v0, xv, c00);
            c01 = Vector512.FusedMultiplyAdd(v1, xv, c01);
            c02 = Vector512.FusedMultiplyAdd(v2, xv, c02);
            c03 = Vector512.FusedMultiplyAdd(v3, xv, c03);
            xv = Vector512.Load(x1 + i);
            c10 = Vector512.FusedMultiplyAdd(v0, xv, c10);
            c11 = Vector512.FusedMultiplyAdd(v1, xv, c11);
            c12 = Vector512.FusedMultiplyAdd(v2, xv, c12);
            c13 = Vector512.FusedMultiplyAdd(v3, xv, c13);
            xv = Vector512.Load(x2 + i);
            c20 = Vector512.FusedMultiplyAdd(v0, xv, c20);
            c21 = Vector512.FusedMultiplyAdd(v1, xv, c21);
            c22 = Vector512.FusedMultiplyAdd(v2, xv, c22);
            c23 = Vector512.FusedMultiplyAdd(v3, xv, c23);
            xv = Vector512.Load(x3 + i);
            c30 = Vector512.FusedMultiplyAdd(v0, xv, c30);
            c31 = Vector512.FusedMultiplyAdd(v1, xv, c31);
            c32 = Vector512.FusedMultiplyAdd(v2, xv, c32);
            c33 = Vector512.FusedMultiplyAdd(v3, xv, c33);
        }
        sums[0] = Vector512.Sum(c00); sums[1] = Vector512.Sum(c01); sums[2] = Vector512.Sum(c02); sums[3] = Vector512.Sum(c03);
        sums[4] = Vector512.Sum(c10); sums[5] = Vector512.Sum(c11); sums[6] = Vector512.Sum(c12); sums[7] = Vector512.Sum(c13);
        sums[8] = Vector512.Sum(c20); sums[9] = Vector512.Sum(c21); sums[10] = Vector512.Sum(c22); sums[11] = Vector512.Sum(c23);
        sums[12] = Vector512.Sum(c30); sums[13] = Vector512.Sum(c31); sums[14] = Vector512.Sum(c32); sums[15] = Vector512.Sum(c33);
        for (; i < k; i++)
        {
            float a0 = TW.Load(w0, i), a1 = TW.Load(w1, i), a2 = TW.Load(w2, i), a3 = TW.Load(w3, i);
            float xa = x0[i], xb = x1[i], xc = x2[i], xd = x3[i];
            sums[0] += a0 * xa; sums[1] += a1 * xa; sums[2] += a2 * xa; sums[3] += a3 * xa;
            sums[4] += a0 * xb; sums[5] += a1 * xb; sums[6] += a2 * xb; sums[7] += a3 * xb;
            sums[8] += a0 * xc; sums[9] += a1 * xc; sums[10] += a2 * xc; sums[11] += a3 * xc;
            sums[12] += a0 * xd; sums[13] += a1 * xd; sums[14] += a2 * xd; sums[15] += a3 * xd;
        }
    }

    /// <summary>2 x rows times 4 W rows for 16-register AVX2: 8 accumulators, 4 W vectors, 1 x vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile2x4<TW>(float* x0, float* x1, byte* w0, byte* w1, byte* w2, byte* w3, int k, float* sums)
        where TW : unmanaged, IWeightType
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default;
        nint i = 0;
        for (; i <= k - 8; i += 8)
        {
            var v0 = TW.Load256(w0, i);
            var v1 = TW.Load256(w1, i);
            var v2 = TW.Load256(w2, i);
            var v3 = TW.Load256(w3, i);
            var xv = Vector256.Load(x0 + i);
            c00 = Vector256.FusedMultiplyAdd(v0, xv, c00);
            c01 = Vector256.FusedMultiplyAdd(v1, xv, c01);
            c02 = Vector256.FusedMultiplyAdd(v2, xv, c02);
            c03 = Vector256.FusedMultiplyAdd(v3, xv, c03);
            xv = Vector256.Load(x1 + i);
            c10 = Vector256.FusedMultiplyAdd(v0, xv, c10);
            c11 = Vector256.FusedMultiplyAdd(v1, xv, c11);
            c12 = Vector256.FusedMultiplyAdd(v2, xv, c12);
            c13 = Vector256.FusedMultiplyAdd(v3, xv, c13);
        }
        sums[0] = Vector256.Sum(c00); sums[1] = Vector256.Sum(c01); sums[2] = Vector256.Sum(c02); sums[3] = Vector256.Sum(c03);
        sums[4] = Vector256.Sum(c10); sums[5] = Vector256.Sum(c11); sums[6] = Vector256.Sum(c12); sums[7] = Vector256.Sum(c13);
        for (; i < k; i++)
        {
            float a0 = TW.Load(w0, i), a1 = TW.Load(w1, i), a2 = TW.Load(w2, i), a3 = TW.Load(w3, i);
            float xa = x0[i], xb = x1[i];
            sums[0] += a0 * xa; sums[1] += a1 * xa; sums[2] += a2 * xa; sums[3] += a3 * xa;
            sums[4] += a0 * xb; sums[5] += a1 * xb; sums[6] += a2 * xb; sums[7] += a3 * xb;
        }
    }
}

/// <summary>One weight of a <see cref="Linear.ForwardGroup"/>: W [n × k] as stored, an optional float32 bias, and the output.</summary>
public readonly unsafe struct GemvTarget(byte* w, int n, float* bias, float* y)
{
    /// <summary>The weight's first byte.</summary>
    public byte* W { get; } = w;
    /// <summary>Output features (rows of W).</summary>
    public int N { get; } = n;
    /// <summary>Bias of N floats, or null.</summary>
    public float* Bias { get; } = bias;
    /// <summary>Output of N floats.</summary>
    public float* Y { get; } = y;
}
