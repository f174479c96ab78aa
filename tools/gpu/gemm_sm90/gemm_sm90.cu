// bf16 GEMM on Hopper tensor cores for decode steps: Y[rows × n] (float32) = X[rows × k] · W[n × k]^T, X and W bf16
// row-major, float32 accumulation; rows at most 256. At these rows the product is bound by reading W once, so the
// kernel is built to stream W at the memory's copy rate:
// - Weights are wgmma's A operand (64 output features a warpgroup, M), activations its B operand (N = the rows), both
//   K-major in shared memory with the 128-byte swizzle that the tensor memory accelerator (TMA) writes.
// - One producer thread streams weight and activation tiles through a ring of shared-memory stages with
//   cp.async.bulk.tensor, completing on mbarriers; 1 or 2 consumer warpgroups multiply.
// - A persistent grid splits the (feature tile × k-block) work evenly over the CTAs (stream-K), so every SM moves the
//   same number of weight bytes whatever the shape. A tile cut between CTAs is summed by the last of them to finish,
//   in CTA order, so results do not depend on timing.
// - In a cluster of 2 or 4 CTAs (neighbouring feature tiles, the same k-blocks) each CTA loads a part of the
//   activation tile and multicasts it to all, which divides the activations' L2 traffic by the cluster size.
// No headers: NVRTC compiles this with the rest of the module. Only sm_90a has wgmma; elsewhere the kernels are empty.

// A CUtensorMap: 128 opaque bytes, 64-byte aligned, passed by value.
struct __align__(64) GemmTma
{
    unsigned long long bits[16];
};

// Shape of one kernel instance: N rows of activations (64, 128 or 256), WG consumer warpgroups of 64 features, KSUB
// 64-wide k slices (one 128-byte swizzle atom each) per pipeline stage.
template <int N, int WG, int KSUB>
struct GemmSm90Shape
{
    enum : int
    {
        BM = 64 * WG,
        W_BYTES = KSUB * BM * 128,
        X_BYTES = KSUB * N * 128,
        STAGE = W_BYTES + X_BYTES,
        // As many stages as fit in 225 KB beside the 1 KB alignment slack and the barriers: 64-96 KB of weights in
        // flight per SM covers the memory latency at the copy rate.
        FIT = (225 * 1024 - 1024 - 512) / STAGE,
        STAGES = FIT > 16 ? 16 : FIT,
        SMEM = 1024 + STAGES * STAGE + 512,
        THREADS = 128 * (WG + 1),
    };
};

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

// Arrives on the barrier at the same offset in CTA `cta` of the cluster: a stage is free only when every CTA whose
// multicast writes into it has been released by its consumers.
__device__ __forceinline__ void gemm_mbar_arrive_cluster(unsigned bar, unsigned cta)
{
    asm volatile("{\n.reg .b32 r;\nmapa.shared::cluster.u32 r, %0, %1;\nmbarrier.arrive.release.cluster.shared::cluster.b64 _, [r];\n}"
                 ::"r"(bar), "r"(cta)
                 : "memory");
}

__device__ __forceinline__ void gemm_tma_load(unsigned dst, const GemmTma* map, int c0, int c1, unsigned bar, unsigned long long policy)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;"
                 ::"r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(bar), "l"(policy)
                 : "memory");
}

__device__ __forceinline__ void gemm_tma_multicast(unsigned dst, const GemmTma* map, int c0, int c1, unsigned bar, unsigned short mask,
                                                   unsigned long long policy)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster.L2::cache_hint"
                 " [%0], [%1, {%2, %3}], [%4], %5, %6;"
                 ::"r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(bar), "h"(mask), "l"(policy)
                 : "memory");
}

__device__ __forceinline__ void gemm_cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
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

__device__ __forceinline__ void gemm_store(float* y, int rows, int n, int r, int f, float v)
{
    if (r < rows && f < n)
        y[(long long)r * n + f] = v;
}

// First unit of the stream-K range of cluster c (of `clusters`), over `total` units; the ranges cover them all.
__device__ __forceinline__ int gemm_start(int c, int clusters, long long total)
{
    return (int)(c * total / clusters);
}

// The cluster whose range holds unit u: the largest c with gemm_start(c) <= u.
__device__ __forceinline__ int gemm_owner(int u, int clusters, long long total)
{
    return (int)(((long long)(u + 1) * clusters - 1) / total);
}

template <int N, int WG, int KSUB>
__device__ __forceinline__ void gemm_sm90(const GemmTma& wmap, const GemmTma& xmap, float* y, float* partial, int* counters, int rows,
                                          int n, int tiles, int units)
{
    typedef GemmSm90Shape<N, WG, KSUB> S;
    constexpr int BM = S::BM, STAGES = S::STAGES;
    extern __shared__ unsigned char gemm_shared[];
    // The 128-byte swizzle repeats every 1024 bytes: the descriptors assume stage tiles aligned to it.
    const unsigned base = (gemm_smem_addr(gemm_shared) + 1023u) & ~1023u;
    const unsigned full = base + STAGES * S::STAGE, empty = full + 8 * STAGES, flag = empty + 8 * STAGES;
    const int tid = threadIdx.x;
    unsigned cl, rank;
    asm("mov.u32 %0, %%cluster_nctarank;" : "=r"(cl));
    asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    const int clusters = gridDim.x / cl, cluster = blockIdx.x / cl;
    const long long total = (long long)tiles * units;
    const int first = gemm_start(cluster, clusters, total), last = gemm_start(cluster + 1, clusters, total);

    if (tid == 0)
    {
        for (int s = 0; s < STAGES; s++)
        {
            gemm_mbar_init(full + 8 * s, 1);
            gemm_mbar_init(empty + 8 * s, 4 * WG * cl);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    // Peers multicast into this CTA's stages and arrive on its barriers: all must be initialised first.
    gemm_cluster_sync();

    if (tid < 128)
    {
        if (tid == 0)
        {
            asm volatile("prefetch.tensormap [%0];" ::"l"(&wmap) : "memory");
            asm volatile("prefetch.tensormap [%0];" ::"l"(&xmap) : "memory");
            // Weights are read once: evicted first, so the activations (read by every CTA) and partial sums stay in L2.
            unsigned long long stream, keep;
            asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(stream));
            asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(keep));
            const int xrows = N / cl;
            int s = 0;
            unsigned phase = 0;
            for (int u = first; u < last; u++)
            {
                gemm_mbar_wait(empty + 8 * s, phase ^ 1);
                gemm_mbar_expect_tx(full + 8 * s, S::STAGE);
                const int t = u / units, k0 = (u - t * units) * KSUB * 64;
                const unsigned w = base + s * S::STAGE, x = w + S::W_BYTES;
#pragma unroll
                for (int ks = 0; ks < KSUB; ks++)
                {
                    gemm_tma_load(w + ks * BM * 128, &wmap, k0 + ks * 64, (t * cl + rank) * BM, full + 8 * s, stream);
                    if (cl == 1)
                        gemm_tma_load(x + ks * N * 128, &xmap, k0 + ks * 64, 0, full + 8 * s, keep);
                    else
                        gemm_tma_multicast(x + ks * N * 128 + rank * xrows * 128, &xmap, k0 + ks * 64, rank * xrows, full + 8 * s,
                                           (unsigned short)((1u << cl) - 1), keep);
                }
                if (++s == STAGES)
                {
                    s = 0;
                    phase ^= 1;
                }
            }
        }
    }
    else
    {
        const int ct = tid - 128, wg = ct >> 7, warp = (ct >> 5) & 3, lane = tid & 31;
        float acc[N / 2];
#pragma unroll
        for (int i = 0; i < N / 2; i++)
            acc[i] = 0.f;
        int s = 0;
        unsigned phase = 0;
        for (int u = first; u < last;)
        {
            const int t = u / units, seg = u, end = min(last, (t + 1) * units);
            for (; u < end; u++)
            {
                gemm_mbar_wait(full + 8 * s, phase);
                const unsigned w = base + s * S::STAGE + wg * 64 * 128, x = base + s * S::STAGE + S::W_BYTES;
                gemm_fence_acc(acc);
                asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
                for (int ks = 0; ks < KSUB; ks++)
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
                        gemm_wgmma<N>(acc, gemm_desc(w + ks * BM * 128 + kk * 32), gemm_desc(x + ks * N * 128 + kk * 32),
                                      (u != seg || ks != 0 || kk != 0) ? 1 : 0);
                asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
                asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
                gemm_fence_acc(acc);
                if (lane == 0)
                    for (unsigned c = 0; c < cl; c++)
                        gemm_mbar_arrive_cluster(empty + 8 * s, c);
                if (++s == STAGES)
                {
                    s = 0;
                    phase ^= 1;
                }
            }

            // Epilogue of tile t. The accumulator layout of m64nNk16: warp w holds features 16w + lane/4 (+8), and
            // register 4j+q the row 8j + 2(lane%4) + q%2 of feature + 8(q/2).
            const int f = (t * cl + rank) * BM + wg * 64 + warp * 16 + (lane >> 2), r = 2 * (lane & 3);
            const int owner0 = gemm_owner(t * units, clusters, total), owner1 = gemm_owner((t + 1) * units - 1, clusters, total);
            if (owner0 == owner1)
            {
#pragma unroll
                for (int j = 0; j < N / 8; j++)
                {
                    gemm_store(y, rows, n, 8 * j + r, f, acc[4 * j]);
                    gemm_store(y, rows, n, 8 * j + r + 1, f, acc[4 * j + 1]);
                    gemm_store(y, rows, n, 8 * j + r, f + 8, acc[4 * j + 2]);
                    gemm_store(y, rows, n, 8 * j + r + 1, f + 8, acc[4 * j + 3]);
                }
                continue;
            }
            // Tile t is cut between clusters owner0..owner1. Each keeps two partial slots, for its first tile and its
            // last (a range inside one tile uses the first), in the accumulators' own layout: 16 bytes a thread a row.
            const long long slotFloats = (long long)BM * N, stride = WG * 128 * 4;
            const int cta = t * cl + rank;
            auto slot = [&](int c) {
                const int which = gemm_start(c, clusters, total) / units == t ? 0 : 1;
                return partial + ((long long)(c * 2 + which) * cl + rank) * slotFloats + ct * 4;
            };
            float* mine = slot(cluster);
#pragma unroll
            for (int j = 0; j < N / 8; j++)
                asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(mine + j * stride), "f"(acc[4 * j]), "f"(acc[4 * j + 1]),
                             "f"(acc[4 * j + 2]), "f"(acc[4 * j + 3])
                             : "memory");
            __threadfence();
            asm volatile("bar.sync 1, %0;" ::"r"(WG * 128) : "memory");
            if (ct == 0)
            {
                const int done = atomicAdd(counters + cta, 1) == owner1 - owner0;
                if (done)
                    counters[cta] = 0;  // left at zero for the next launch
                asm volatile("st.shared.u32 [%0], %1;" ::"r"(flag), "r"(done) : "memory");
            }
            asm volatile("bar.sync 1, %0;" ::"r"(WG * 128) : "memory");
            unsigned done;
            asm volatile("ld.shared.u32 %0, [%1];" : "=r"(done) : "r"(flag) : "memory");
            if (!done)
                continue;
            __threadfence();
#pragma unroll
            for (int j = 0; j < N / 8; j++)
            {
                float v0 = 0.f, v1 = 0.f, v2 = 0.f, v3 = 0.f;
                // In cluster order whoever finishes last, so the sum is the same every run.
                for (int c = owner0; c <= owner1; c++)
                {
                    float a0, a1, a2, a3;
                    if (c == cluster)
                        a0 = acc[4 * j], a1 = acc[4 * j + 1], a2 = acc[4 * j + 2], a3 = acc[4 * j + 3];
                    else
                        asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];"
                                     : "=f"(a0), "=f"(a1), "=f"(a2), "=f"(a3)
                                     : "l"(slot(c) + j * stride)
                                     : "memory");
                    if (c == owner0)
                        v0 = a0, v1 = a1, v2 = a2, v3 = a3;
                    else
                        v0 += a0, v1 += a1, v2 += a2, v3 += a3;
                }
                gemm_store(y, rows, n, 8 * j + r, f, v0);
                gemm_store(y, rows, n, 8 * j + r + 1, f, v1);
                gemm_store(y, rows, n, 8 * j + r, f + 8, v2);
                gemm_store(y, rows, n, 8 * j + r + 1, f + 8, v3);
            }
        }
    }
    // Peers may still arrive on this CTA's barriers: none leaves before all are done.
    gemm_cluster_sync();
}
#endif

// wmap: W as {k, n} bf16, box {64, 64 * WG}; xmap: X as {k, rows}, box {64, N / cluster size}; both 128-byte swizzled.
// partial: 2 * gridDim.x * 64 * WG * N floats; counters: one int per 64 * WG features, zero (and left at zero).
// tiles: feature tiles of 64 * WG * cluster size; units: k-blocks of 64 * KSUB per tile. gridDim.x: CTAs, at most one
// per SM, a multiple of the cluster size, at most tiles * units clusters.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GEMM_SM90_BODY(N, WG, KSUB) gemm_sm90<N, WG, KSUB>(wmap, xmap, y, partial, counters, rows, n, tiles, units);
#else
#define GEMM_SM90_BODY(N, WG, KSUB)
#endif
#define GEMM_SM90(N, WG, KSUB)                                                                                                   \
    extern "C" __global__ void __launch_bounds__(128 * (WG + 1), 1)                                                              \
        gemm_sm90_n##N##_w##WG##_k##KSUB(const __grid_constant__ GemmTma wmap, const __grid_constant__ GemmTma xmap, float* y, \
                                          float* partial, int* counters, int rows, int n, int tiles, int units)                  \
    {                                                                                                                            \
        GEMM_SM90_BODY(N, WG, KSUB)                                                                                              \
    }
