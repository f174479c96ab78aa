// ---- paged attention of prompt steps on tensor cores (head width 128) ---------------------------------------------
// Block = (query tile of up to 16 consecutive tokens of one sequence, H query heads of one KV head); warp w computes head
// w of the block for the tile's tokens, as the 16 rows of m16n8k16 MMAs. Keys come in tiles of 64, staged in shared
// memory once for all the block's warps. Every operand is split into f16 hi + lo (22 bits of mantissa together) and each
// product is hi·hi + hi·lo + lo·hi with float32 accumulation, so scores and outputs keep float32-like accuracy (about
// 2^-21 relative) at tensor-core speed; f16's range bounds |q·scale·log2 e|, |k| and |v| at 65504 (beyond it they
// saturate). Softmax is online, in base 2, in float32. Causal and sliding-window masks as in `attention` above; one
// key split (the grid's z is 1): each block walks its tokens' whole key span.
// seqs[s] = (query start, query length, context length, block-table offset); tokSeq[t] = s; tiles[x] = (first token,
// count).

__device__ __forceinline__ u32 pack_f16(float lo, float hi)
{
    u32 d;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

// x as f16 hi + lo, two values a register (the lower index in the low half).
__device__ __forceinline__ void split_f16x2(float a, float b, u32& hi, u32& lo)
{
    a = F16::fit(a);
    b = F16::fit(b);
    hi = pack_f16(a, b);
    lo = pack_f16(a - h2f((u16)hi), b - h2f((u16)(hi >> 16)));
}

__device__ __forceinline__ void mma_f16(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(u32* r, const u16* p)
{
    u32 a = (u32)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32* r, const u16* p)
{
    u32 a = (u32)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// Elements i .. i + 3 of a KV cache (i a multiple of 4; lo as kv_load8's).
template <class KV>
__device__ __forceinline__ void kv_load4(KV, const typename KV::T* p, long long lo, long long i, float* o)
{
    if constexpr (sizeof(typename KV::T) == 4)
    {
        float4 v = __ldg((const float4*)(p + i));
        o[0] = v.x; o[1] = v.y; o[2] = v.z; o[3] = v.w;
    }
    else
    {
        uint2 v = __ldg((const uint2*)(p + i));
        o[0] = KV::widen((u16)v.x); o[1] = KV::widen((u16)(v.x >> 16));
        o[2] = KV::widen((u16)v.y); o[3] = KV::widen((u16)(v.y >> 16));
    }
}
__device__ __forceinline__ void kv_load4(F24, const u16* p, long long lo, long long i, float* o)
{
    const uint2 h = __ldg((const uint2*)(p + i));
    f24x4(h.x, h.y, __ldg((const u32*)((const unsigned char*)p + lo + i)), o);
}

constexpr int TcHeadDim = 128;
constexpr int TcKeys = 64;
// Row pitch of the staged tiles in 16-bit elements: 8 more than the head width, so the 8 rows an ldmatrix reads fall on
// distinct banks.
constexpr int TcPitch = TcHeadDim + 8;

template <class KV, int H>
__device__ void attention_tc(const float* q, float* out, const typename KV::T* kc, const typename KV::T* vc, long long lo, const int* tokSeq,
    const int4* seqs, const int* tables, const int2* tiles, int heads, int kvHeads, int chunks, float scale, int blockSize, int window,
    AttentionSplit split)
{
    constexpr int D = TcHeadDim, BC = TcKeys, P = TcPitch, Loads = 4;
    // K hi, K lo, V hi, V lo: 4 × 64 × 136 × 2 bytes (TensorCoreAttentionShared on the host).
    extern __shared__ float4 smem4[];
    u16* kh = (u16*)smem4;
    u16* kl = kh + BC * P;
    u16* vh = kl + BC * P;
    u16* vl = vh + BC * P;
    const int warp = threadIdx.y, lane = threadIdx.x, g = lane >> 2, tq = lane & 3;
    const int2 tile = tiles[blockIdx.x];
    const int t0 = tile.x, count = tile.y;
    const int group = heads / kvHeads;
    const int kvh = blockIdx.y / chunks, chunk = blockIdx.y - kvh * chunks;
    const int head0 = kvh * group + chunk * H, headCount = min(H, group - chunk * H);
    const bool active = warp < headCount;
    const int head = head0 + (active ? warp : 0);
    const int4 s = seqs[tokSeq[t0]];
    const int pos0 = s.z - s.y + (t0 - s.x);
    const int spanBegin = window > 0 ? max(0, pos0 - window + 1) : 0, spanEnd = pos0 + count;
    const int kvDim = kvHeads * D;

    // This lane's query rows g and g + 8 as A fragments (per 16 dimensions: rows g, g+8 at dimensions 2tq and 2tq + 8).
    const float c = scale * 1.4426950408889634f;
    u32 qh[D / 16][4], ql[D / 16][4];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = g + 8 * r;
        const bool valid = active && row < count;
        const float* qr = q + ((long long)(t0 + (valid ? row : 0)) * heads + head) * D + 2 * tq;
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++)
        {
            float2 a = valid ? *(const float2*)(qr + ks * 16) : make_float2(0.f, 0.f);
            float2 b = valid ? *(const float2*)(qr + ks * 16 + 8) : make_float2(0.f, 0.f);
            split_f16x2(a.x * c, a.y * c, qh[ks][r], ql[ks][r]);
            split_f16x2(b.x * c, b.y * c, qh[ks][2 + r], ql[ks][2 + r]);
        }
    }
    int rowPos[2], rowBegin[2];
    float m[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = g + 8 * r;
        // Rows past the tile attend nothing (an empty span).
        rowPos[r] = row < count ? pos0 + row : -1;
        rowBegin[r] = window > 0 ? max(0, pos0 + row - window + 1) : 0;
        m[r] = NEG_INF;
        l[r] = 0.f;
    }
    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

    const int threads = 32 * H, tid = warp * 32 + lane;
    for (int base = spanBegin; base < spanEnd; base += BC)
    {
        const int n = min(BC, spanEnd - base);
        __syncthreads();
        // Stage K and V of keys [base, base + n) as f16 hi and lo, four dimensions a thread and Loads of them in flight;
        // rows past n are zeros (their probabilities are 0, and 0 × garbage could be NaN).
        for (int e0 = tid; e0 < BC * (D / 4); e0 += Loads * threads)
        {
            float kx[Loads][4], vx[Loads][4];
#pragma unroll
            for (int u = 0; u < Loads; u++)
            {
                const int e = e0 + u * threads, j = e / (D / 4), d = (e % (D / 4)) * 4;
                if (e < BC * (D / 4) && j < n)
                {
                    const int p = base + j;
                    const long long off = ((long long)tables[s.w + p / blockSize] * blockSize + p % blockSize) * kvDim + (long long)kvh * D + d;
                    kv_load4(KV(), kc, lo, off, kx[u]);
                    kv_load4(KV(), vc, lo, off, vx[u]);
                }
                else
                {
#pragma unroll
                    for (int i = 0; i < 4; i++) kx[u][i] = vx[u][i] = 0.f;
                }
            }
#pragma unroll
            for (int u = 0; u < Loads; u++)
            {
                const int e = e0 + u * threads, j = e / (D / 4), d = (e % (D / 4)) * 4;
                if (e < BC * (D / 4))
                {
                    uint2 h, lo;
                    split_f16x2(kx[u][0], kx[u][1], h.x, lo.x);
                    split_f16x2(kx[u][2], kx[u][3], h.y, lo.y);
                    *(uint2*)(kh + j * P + d) = h;
                    *(uint2*)(kl + j * P + d) = lo;
                    split_f16x2(vx[u][0], vx[u][1], h.x, lo.x);
                    split_f16x2(vx[u][2], vx[u][3], h.y, lo.y);
                    *(uint2*)(vh + j * P + d) = h;
                    *(uint2*)(vl + j * P + d) = lo;
                }
            }
        }
        __syncthreads();
        if (!active) continue;

        // Scores of the warp's 16 rows against the 64 keys: n-tile j holds keys base + 8j .. + 7.
        float sc[BC / 8][4];
#pragma unroll
        for (int j = 0; j < BC / 8; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
        // ldmatrix x4: lanes 0-7 address matrix 0 (hi, dimensions +0..7), 8-15 matrix 1 (hi, +8..15), 16-23 and 24-31
        // the same in lo; each matrix's rows are 8 keys.
        const int mi = lane >> 3, mr = lane & 7;
        const u16* kRow = (mi < 2 ? kh : kl) + mr * P + (mi & 1) * 8;
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++)
        {
#pragma unroll
            for (int j = 0; j < BC / 8; j++)
            {
                u32 b[4];
                ldmatrix_x4(b, kRow + j * 8 * P + ks * 16);
                mma_f16(sc[j], qh[ks], b[0], b[1]);
                mma_f16(sc[j], qh[ks], b[2], b[3]);
                mma_f16(sc[j], ql[ks], b[0], b[1]);
            }
        }
        // Online softmax per row (a row's 64 scores sit on the 4 lanes of a quad: columns 2tq, 2tq + 1 of each n-tile).
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            float best = NEG_INF;
#pragma unroll
            for (int j = 0; j < BC / 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {
                    const int key = base + 8 * j + 2 * tq + e;
                    const bool valid = key - base < n && key >= rowBegin[r] && key <= rowPos[r];
                    sc[j][2 * r + e] = valid ? sc[j][2 * r + e] : NEG_INF;
                    best = fmaxf(best, sc[j][2 * r + e]);
                }
            best = fmaxf(best, __shfl_xor_sync(FULL_MASK, best, 1));
            best = fmaxf(best, __shfl_xor_sync(FULL_MASK, best, 2));
            const float mNew = fmaxf(m[r], best);
            // A row with no key yet keeps m = -inf: nothing to rescale, and its probabilities are 0.
            const float corr = mNew == NEG_INF ? 1.f : exp2f(m[r] - mNew);
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < BC / 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {
                    float p = mNew == NEG_INF ? 0.f : exp2f(sc[j][2 * r + e] - mNew);
                    sc[j][2 * r + e] = p;
                    sum += p;
                }
            sum += __shfl_xor_sync(FULL_MASK, sum, 1);
            sum += __shfl_xor_sync(FULL_MASK, sum, 2);
            l[r] = l[r] * corr + sum;
            m[r] = mNew;
#pragma unroll
            for (int i = 0; i < D / 8; i++)
            {
                o[i][2 * r] *= corr;
                o[i][2 * r + 1] *= corr;
            }
        }
        // O += P · V, 16 keys a step: the score accumulators of n-tiles 2kk and 2kk + 1 are the A fragment of that step.
        const u16* vRow = (mi < 2 ? vh : vl) + ((mi & 1) * 8 + mr) * P;
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++)
        {
            u32 ph[4], pl[4];
            split_f16x2(sc[2 * kk][0], sc[2 * kk][1], ph[0], pl[0]);
            split_f16x2(sc[2 * kk][2], sc[2 * kk][3], ph[1], pl[1]);
            split_f16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1], ph[2], pl[2]);
            split_f16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3], ph[3], pl[3]);
#pragma unroll
            for (int i = 0; i < D / 8; i++)
            {
                // Transposed: matrix 0 and 1 are keys +0..7 and +8..15 of dimensions 8i..8i+7 (hi), 2 and 3 the same in lo.
                u32 b[4];
                ldmatrix_x4_trans(b, vRow + kk * 16 * P + i * 8);
                mma_f16(o[i], ph, b[0], b[1]);
                mma_f16(o[i], ph, b[2], b[3]);
                mma_f16(o[i], pl, b[0], b[1]);
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = g + 8 * r;
        if (row >= count) continue;
        const float inv = 1.f / l[r];
        const long long at = ((long long)(t0 + row) * heads + head) * D + 2 * tq;
#pragma unroll
        for (int i = 0; i < D / 8; i++)
        {
            const float2 v = make_float2(o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
            *(float2*)(out + at + 8 * i) = v;
            split.put(at + 8 * i, v.x);
            split.put(at + 8 * i + 1, v.y);
        }
    }
}
#define ATTENTION_TC(TYPE, NAME, H) \
    extern "C" __global__ void __launch_bounds__(32 * H) attention_tc_##NAME##_##H(const float* q, float* out, const TYPE::T* kc, \
        const TYPE::T* vc, long long lo, const int* tokSeq, const int4* seqs, const int* tables, const int2* tiles, int heads, int kvHeads, \
        int chunks, float scale, int blockSize, int window, AttentionSplit split) \
    { attention_tc<TYPE, H>(q, out, kc, vc, lo, tokSeq, seqs, tables, tiles, heads, kvHeads, chunks, scale, blockSize, window, split); }
ATTENTION_TC(F32, f32, 1) ATTENTION_TC(F32, f32, 2) ATTENTION_TC(F32, f32, 4) ATTENTION_TC(F32, f32, 8)
ATTENTION_TC(BF16, bf16, 1) ATTENTION_TC(BF16, bf16, 2) ATTENTION_TC(BF16, bf16, 4) ATTENTION_TC(BF16, bf16, 8)
ATTENTION_TC(F16, f16, 1) ATTENTION_TC(F16, f16, 2) ATTENTION_TC(F16, f16, 4) ATTENTION_TC(F16, f16, 8)
ATTENTION_TC(F24, f24, 1) ATTENTION_TC(F24, f24, 2) ATTENTION_TC(F24, f24, 4) ATTENTION_TC(F24, f24, 8)
