// bf16 GEMM on Hopper tensor cores for decode steps: Y[rows × n] (float32) = X[rows × k] · W[n × k]^T, X and W bf16
// row-major, float32 accumulation; rows at most 256. At these rows the product is bound by reading W once, so the
// kernel is built to stream W at the memory's copy rate:
// - Weights are wgmma's A operand (64 output features per instruction, M), activations its B operand (N = the rows),
//   both K-major in shared memory in the 128-byte swizzled layout that the tensor memory accelerator (TMA) writes.
// - One producer thread streams weight and activation tiles through a ring of shared-memory stages with
//   cp.async.bulk.tensor, completing on mbarriers; 2 consumer warpgroups of MW × 64 features each multiply. Every CTA
//   reads the activations of its k-blocks from L2 again (N / (128 MW) bytes per weight byte).
// - A persistent grid splits the (feature tile × k-block) work evenly over the CTAs (stream-K), so every SM moves the
//   same number of weight bytes whatever the shape. A tile cut between CTAs is summed after all of them wrote their
//   partial sums, each CTA a slice of it, in CTA order, so results do not depend on timing.
// No headers: NVRTC can compile this with the rest of the module. Only sm_90a has wgmma; elsewhere the kernels are
// empty. Measured slower than cuBLAS over a decode step (README.md beside this file), so not used by the backend.

// A CUtensorMap: 128 opaque bytes, 64-byte aligned, passed by value.
struct __align__(64) GemmTma
{
    unsigned long long bits[16];
};

// Shape of one kernel instance: N rows of activations (64, 128 or 256), MW blocks of 64 features per consumer
// warpgroup (BM = 128 MW features a tile), KSUB 64-wide k slices a stage: each weight row is then read KSUB * 128
// contiguous bytes at a time, which the memory serves faster than 128-byte pieces of many rows.
template <int N, int MW, int KSUB>
struct GemmSm90Shape
{
    enum : int
    {
        BM = 128 * MW,
        W_BYTES = KSUB * BM * 128,  // one stage: KSUB slices of 64 k of each feature, 128 bytes each
        X_BYTES = KSUB * N * 128,
        STAGE = W_BYTES + X_BYTES,
        // As many stages as fit in 225 KB beside the 1 KB alignment slack and the barriers: 96-200 KB in flight per SM
        // covers the memory latency at the copy rate.
        FIT = (225 * 1024 - 1024 - 512) / STAGE,
        STAGES = FIT > 16 ? 16 : FIT,
        SMEM = 1024 + STAGES * STAGE + 512,
        THREADS = 288,  // consumer warpgroups in warps 0-7 (wgmma wants them 4-aligned), the producer in warp 8
    };
};

// GEMM_SM90_TRACE (defined by the harness): each CTA writes the global timer at 6 points of its run to
// gemm_trace[8 * CTA + point] (0 start, 1 first load issued, 2 first stage in, 3 main loop done, 4 end, 6 last load
// issued), to see where the time goes.
#if defined(GEMM_SM90_TRACE)
__device__ unsigned long long* gemm_trace;
#define GEMM_TRACE(i)                                                     \
    do                                                                    \
    {                                                                     \
        unsigned long long t_;                                            \
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_)::"memory");  \
        gemm_trace[blockIdx.x * 8 + (i)] = t_;                            \
    } while (0)
#else
#define GEMM_TRACE(i)
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ unsigned gemm_smem_addr(const void* p)
{
    unsigned a;
    asm("{\n.reg .u64 t;\ncvta.to.shared.u64 t, %1;\ncvt.u32.u64 %0, t;\n}" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void gemm_mbar_init(unsigned bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void gemm_mbar_expect_tx(unsigned bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void gemm_mbar_arrive(unsigned bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void gemm_mbar_wait(unsigned bar, unsigned parity)
{
    unsigned done;
    do
    {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}

__device__ __forceinline__ void gemm_tma_load(unsigned dst, const GemmTma* map, int c0, int c1, unsigned bar, unsigned long long policy)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;"
                 ::"r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(bar), "l"(policy)
                 : "memory");
}

// Shared-memory matrix descriptor of a K-major tile in the 128-byte swizzled layout: rows of 128 bytes, groups of 8
// rows 1024 bytes apart (the stride offset); the leading offset is unused for this layout. Tiles start 1024-aligned,
// so a k step inside the swizzle atom is a plain byte offset on the start address.
__device__ __forceinline__ unsigned long long gemm_desc(unsigned addr)
{
    return (unsigned long long)((addr & 0x3FFFFu) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma instructions.
template <int R>
__device__ __forceinline__ void gemm_fence_acc(float (&d)[R])
{
#pragma unroll
    for (int i = 0; i < R; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

__device__ __forceinline__ void gemm_sm90_wgmma_n64(float (&d)[32], unsigned long long a, unsigned long long b, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(a), "l"(b), "r"(accumulate));
}

__device__ __forceinline__ void gemm_sm90_wgmma_n128(float (&d)[64], unsigned long long a, unsigned long long b, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(accumulate));
}

__device__ __forceinline__ void gemm_sm90_wgmma_n256(float (&d)[128], unsigned long long a, unsigned long long b, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(a), "l"(b), "r"(accumulate));
}

template <int N>
__device__ __forceinline__ void gemm_wgmma(float (&d)[N / 2], unsigned long long a, unsigned long long b, int accumulate)
{
    if constexpr (N == 64)
        gemm_sm90_wgmma_n64(d, a, b, accumulate);
    else if constexpr (N == 128)
        gemm_sm90_wgmma_n128(d, a, b, accumulate);
    else
        gemm_sm90_wgmma_n256(d, a, b, accumulate);
}

// First unit of the stream-K range of CTA c (of `ctas`), over `total` units; the ranges cover them all.
__device__ __forceinline__ int gemm_start(int c, int ctas, long long total)
{
    return (int)(c * total / ctas);
}

// The CTA whose range holds unit u: the largest c with gemm_start(c) <= u.
__device__ __forceinline__ int gemm_owner(int u, int ctas, long long total)
{
    return (int)(((long long)(u + 1) * ctas - 1) / total);
}

// The accumulator layout of m64nNk16: warp w of a warpgroup holds features 16w + lane/4 (+8), its register 4j+q the
// row 8j + 2(lane%4) + q%2 of feature + 8(q/2). Chunk j (of MW * N/8) of consumer thread ct: block j / (N/8) of the
// thread's warpgroup, rows 8(j % (N/8)) + 2(lane%4) + {0, 1}, features f and f + 8. Stores the chunk's 4 values.
template <int N, int MW>
__device__ __forceinline__ void gemm_store4(float* y, int rows, int n, int tile, int ct, int j, float v0, float v1, float v2, float v3)
{
    const int lane = ct & 31;
    const int f = tile * 128 * MW + (ct >> 7) * 64 * MW + (j / (N / 8)) * 64 + ((ct >> 5) & 3) * 16 + (lane >> 2);
    const int r = 8 * (j % (N / 8)) + 2 * (lane & 3);
    if (r < rows)
    {
        if (f < n)
            y[(long long)r * n + f] = v0;
        if (f + 8 < n)
            y[(long long)r * n + f + 8] = v2;
    }
    if (r + 1 < rows)
    {
        if (f < n)
            y[(long long)(r + 1) * n + f] = v1;
        if (f + 8 < n)
            y[(long long)(r + 1) * n + f + 8] = v3;
    }
}

// Partial-sum slots: two per CTA, for its first tile and for its last (a range inside one tile uses the first), each
// BM * N floats in the accumulators' layout: float4 number j * 256 + ct holds chunk j of consumer thread ct.
__device__ __forceinline__ float* gemm_slot(float* partial, int c, int t, int ctas, long long total, int units, int floats)
{
    const int which = gemm_start(c, ctas, total) / units == t ? 0 : 1;
    return partial + (long long)(2 * c + which) * floats;
}

// Sums slice `index` of the `count` slices of cut tile t from the partial sums of CTAs owner .. owner + count - 1, in
// that order, into y, once all of them have written theirs (counters[t] counts the writers, then the readers; the
// last reader leaves it at zero). Every CTA writes its partial sums before it waits here, and a CTA has an SM of its
// own (grid <= SMs, one CTA an SM), so the wait ends. The owner holds the tile's first units: its share is in its
// last slot unless its range starts with the tile; the others' shares are in their first slots.
template <int N, int MW>
__device__ __forceinline__ void gemm_fixup(float* y, const float* partial, int* counters, int rows, int n, int t, int owner, int count,
                                           int index, bool ownerLast)
{
    constexpr int F4 = 128 * MW * N / 4, THREADS = 256, BATCH = 4;
    const int ct = threadIdx.x;
    if (ct == 0)
    {
        unsigned seen;
        do
        {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counters + t) : "memory");
            if (seen < (unsigned)count)
                __nanosleep(64);
        } while (seen < (unsigned)count);
    }
    asm volatile("bar.sync 1, %0;" ::"r"(THREADS) : "memory");
    const int lo = (int)((long long)F4 * index / count), hi = (int)((long long)F4 * (index + 1) / count);
    const float4* first = (const float4*)partial + (long long)(2 * owner + (ownerLast ? 1 : 0)) * F4;
    // BATCH float4 a thread from every contributor in flight at once: the sums wait on L2 once a batch, not once a value.
    for (int i0 = lo + ct; i0 < hi; i0 += BATCH * THREADS)
    {
        float4 sum[BATCH];
#pragma unroll
        for (int q = 0; q < BATCH; q++)
            sum[q] = i0 + q * THREADS < hi ? __ldcg(first + i0 + q * THREADS) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
        for (int c = 1; c < count; c++)
        {
            const float4* p = (const float4*)partial + (long long)(2 * (owner + c)) * F4 + i0;
            float4 v[BATCH];
#pragma unroll
            for (int q = 0; q < BATCH; q++)
                v[q] = i0 + q * THREADS < hi ? __ldcg(p + q * THREADS) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int q = 0; q < BATCH; q++)
            {
                sum[q].x += v[q].x;
                sum[q].y += v[q].y;
                sum[q].z += v[q].z;
                sum[q].w += v[q].w;
            }
        }
#pragma unroll
        for (int q = 0; q < BATCH; q++)
        {
            const int i = i0 + q * THREADS;
            if (i < hi)
                gemm_store4<N, MW>(y, rows, n, t, i % THREADS, i / THREADS, sum[q].x, sum[q].y, sum[q].z, sum[q].w);
        }
    }
    asm volatile("bar.sync 1, %0;" ::"r"(THREADS) : "memory");
    if (ct == 0 && atomicAdd(counters + t, 1) == 2 * count - 1)
        counters[t] = 0;
}

template <int N, int MW, int KSUB>
__device__ __forceinline__ void gemm_sm90(const GemmTma& wmap, const GemmTma& xmap, float* y, float* partial, int* counters, int rows,
                                          int n, int tiles, int units)
{
    typedef GemmSm90Shape<N, MW, KSUB> S;
    constexpr int BM = S::BM, STAGES = S::STAGES, FLOATS = BM * N;
    extern __shared__ unsigned char gemm_shared[];
    // The 128-byte swizzle repeats every 1024 bytes: the descriptors assume stage tiles aligned to it.
    const unsigned base = (gemm_smem_addr(gemm_shared) + 1023u) & ~1023u;
    const unsigned full = base + STAGES * S::STAGE, empty = full + 8 * STAGES;
    const int tid = threadIdx.x, ctas = gridDim.x, cta = blockIdx.x;
    const long long total = (long long)tiles * units;
    const int first = gemm_start(cta, ctas, total), last = gemm_start(cta + 1, ctas, total);

    if (tid == 0)
    {
        GEMM_TRACE(0);
        for (int s = 0; s < STAGES; s++)
        {
            gemm_mbar_init(full + 8 * s, 1);
            gemm_mbar_init(empty + 8 * s, 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (tid >= 256)
    {
        if (tid == 256)
        {
            asm volatile("prefetch.tensormap [%0];" ::"l"(&wmap) : "memory");
            asm volatile("prefetch.tensormap [%0];" ::"l"(&xmap) : "memory");
            // Weights are read once: evicted first, so the activations (read by every CTA) and partial sums stay in L2.
            unsigned long long stream, keep;
            asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(stream));
            asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(keep));
            int s = 0;
            unsigned phase = 0;
            for (int u = first; u < last; u++)
            {
                gemm_mbar_wait(empty + 8 * s, phase ^ 1);
                gemm_mbar_expect_tx(full + 8 * s, S::STAGE);
                const int t = u / units, k0 = (u - t * units) * KSUB * 64;
                const unsigned w = base + s * S::STAGE;
#pragma unroll
                for (int ks = 0; ks < KSUB; ks++)
                    gemm_tma_load(w + ks * BM * 128, &wmap, k0 + ks * 64, t * BM, full + 8 * s, stream);
#pragma unroll
                for (int ks = 0; ks < KSUB; ks++)
                    gemm_tma_load(w + S::W_BYTES + ks * N * 128, &xmap, k0 + ks * 64, 0, full + 8 * s, keep);
                if (u == first)
                    GEMM_TRACE(1);
                if (++s == STAGES)
                {
                    s = 0;
                    phase ^= 1;
                }
            }
            GEMM_TRACE(6);
        }
        return;
    }

    const int ct = tid, wg = ct >> 7, lane = ct & 31;
    float acc[MW][N / 2];
#pragma unroll
    for (int m = 0; m < MW; m++)
#pragma unroll
        for (int i = 0; i < N / 2; i++)
            acc[m][i] = 0.f;
    int s = 0;
    unsigned phase = 0;
    for (int u = first; u < last;)
    {
        const int t = u / units, seg = u, end = min(last, (t + 1) * units);
        for (; u < end; u++)
        {
            gemm_mbar_wait(full + 8 * s, phase);
            if (u == first && ct == 0)
                GEMM_TRACE(2);
            const unsigned w = base + s * S::STAGE + wg * MW * 64 * 128, x = base + s * S::STAGE + S::W_BYTES;
#pragma unroll
            for (int m = 0; m < MW; m++)
                gemm_fence_acc(acc[m]);
            asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
            for (int ks = 0; ks < KSUB; ks++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int m = 0; m < MW; m++)
                        gemm_wgmma<N>(acc[m], gemm_desc(w + ks * BM * 128 + m * 64 * 128 + kk * 32), gemm_desc(x + ks * N * 128 + kk * 32),
                                      (u != seg || ks != 0 || kk != 0) ? 1 : 0);
            asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
            asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
#pragma unroll
            for (int m = 0; m < MW; m++)
                gemm_fence_acc(acc[m]);
            if (lane == 0)
                gemm_mbar_arrive(empty + 8 * s);
            if (++s == STAGES)
            {
                s = 0;
                phase ^= 1;
            }
        }
        if (gemm_owner(t * units, ctas, total) == gemm_owner((t + 1) * units - 1, ctas, total))
        {
#pragma unroll
            for (int m = 0; m < MW; m++)
#pragma unroll
                for (int j = 0; j < N / 8; j++)
                    gemm_store4<N, MW>(y, rows, n, t, ct, m * (N / 8) + j, acc[m][4 * j], acc[m][4 * j + 1], acc[m][4 * j + 2], acc[m][4 * j + 3]);
            continue;
        }
        // Tile t is cut between CTAs: this CTA's share goes to its slot, summed once the other shares are there too.
        float4* mine = (float4*)gemm_slot(partial, cta, t, ctas, total, units, FLOATS) + ct;
#pragma unroll
        for (int m = 0; m < MW; m++)
#pragma unroll
            for (int j = 0; j < N / 8; j++)
                __stcg(mine + (m * (N / 8) + j) * 256, make_float4(acc[m][4 * j], acc[m][4 * j + 1], acc[m][4 * j + 2], acc[m][4 * j + 3]));
        __threadfence();
        asm volatile("bar.sync 1, 256;" ::: "memory");
        if (ct == 0)
            atomicAdd(counters + t, 1);
    }

    if (ct == 0)
        GEMM_TRACE(3);
    // Cut tiles: this CTA's first and last ones, each summed in slices by all CTAs that share it.
    const int t0 = first / units, t1 = (last - 1) / units;
    for (int t = t0; t <= t1; t += (t1 > t0 ? t1 - t0 : 1))
    {
        const int owner = gemm_owner(t * units, ctas, total), count = gemm_owner((t + 1) * units - 1, ctas, total) - owner + 1;
        if (count > 1)
            gemm_fixup<N, MW>(y, partial, counters, rows, n, t, owner, count, cta - owner, gemm_start(owner, ctas, total) != t * units);
    }
    if (ct == 0)
        GEMM_TRACE(4);
}
#endif

// wmap: W as {k, n} bf16, box {64, 128 MW}; xmap: X as {k, rows}, box {64, N}; both 128-byte swizzled.
// partial: 2 * gridDim.x * 128 MW * N floats; counters: one int per tile, zero (and left at zero).
// tiles: feature tiles of 128 MW; units: k-blocks of 64 KSUB per tile. gridDim.x: CTAs, at most one per SM (their shared
// memory sees to that) and at most tiles * units.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GEMM_SM90_BODY(N, MW, KSUB) gemm_sm90<N, MW, KSUB>(wmap, xmap, y, partial, counters, rows, n, tiles, units);
#else
#define GEMM_SM90_BODY(N, MW, KSUB)
#endif
#define GEMM_SM90(N, MW, KSUB)                                                                                                    \
    extern "C" __global__ void __launch_bounds__(288, 1) gemm_sm90_n##N##_m##MW##_k##KSUB(                                      \
        const __grid_constant__ GemmTma wmap, const __grid_constant__ GemmTma xmap, float* y, float* partial, int* counters,     \
        int rows, int n, int tiles, int units)                                                                                   \
    {                                                                                                                            \
        GEMM_SM90_BODY(N, MW, KSUB)                                                                                              \
    }
