// ---- paged attention of prompt steps on tensor cores (head width 128) ---------------------------------------------
// Block = (query tile of up to 32 consecutive tokens of one sequence, H ≤ 4 query heads of one KV head); warp w computes
// head w % H of the block for the tile's rows 16 (w / H) .. + 15, as the 16 rows of m16n8k16 MMAs, and skips keys past
// its last row. Keys come in tiles of 64 (32 for H < 4): each thread copies its share of a key tile's cache rows to shared
// memory asynchronously and turns them into f16 hi and lo itself, in one of two buffers, while the block computes on the
// other. Every operand is split into f16 hi + lo (22 bits of mantissa together) and each product is hi·hi + hi·lo + lo·hi
// with float32 accumulation, so scores and outputs keep float32-like accuracy (about 2^-21 relative) at tensor-core
// speed; f16's range bounds |q·scale·log2 e|, |k| and |v| at 65504 (beyond it they saturate). Softmax is online, in base
// 2, in float32. Causal and sliding-window masks as in `attention` above; one key split (the grid's z is 1): each block
// walks its tokens' whole key span. Within each 16 dimensions, K and V are staged in the order 0 1 4 5 8 9 12 13 2 3 6 7
// 10 11 14 15, the order a lane's MMA fragments take them in: a lane's q dimensions (4 of each 16) are then one 16-byte
// load, and its output ones one 16-byte store.
// tiles[x] = (first token, count, the first token's position, the sequence's block-table offset).

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

// The 16 elements of a raw slot of attention_tc as floats (the hi plane's 16 × 2 or 4 bytes, then F24's 16 low bytes), in
// 16-byte shared loads.
template <class KV>
__device__ __forceinline__ void slot16(KV, const char* p, float* x)
{
#pragma unroll
    for (int i = 0; i < 16; i += 8)
    {
        const uint4 v = *(const uint4*)(p + 2 * i);
        const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int k = 0; k < 4; k++)
        {
            x[i + 2 * k] = KV::widen((u16)w[k]);
            x[i + 2 * k + 1] = KV::widen((u16)(w[k] >> 16));
        }
    }
}
__device__ __forceinline__ void slot16(F32, const char* p, float* x)
{
#pragma unroll
    for (int i = 0; i < 16; i += 4)
    {
        const float4 v = *(const float4*)(p + 4 * i);
        x[i] = v.x; x[i + 1] = v.y; x[i + 2] = v.z; x[i + 3] = v.w;
    }
}
__device__ __forceinline__ void slot16(F24, const char* p, float* x)
{
    const uint4 h0 = *(const uint4*)p, h1 = *(const uint4*)(p + 16), l = *(const uint4*)(p + 32);
    f24x4(h0.x, h0.y, l.x, x);
    f24x4(h0.z, h0.w, l.y, x + 4);
    f24x4(h1.x, h1.y, l.z, x + 8);
    f24x4(h1.z, h1.w, l.w, x + 12);
}

constexpr int TcHeadDim = 128;
// Row groups of 16 query tokens a block takes: its query tile is 32 tokens.
constexpr int TcRowGroups = 2;
// Row pitch of the staged tiles in 16-bit elements: 8 more than the head width, so the 8 rows an ldmatrix reads fall on
// distinct banks.
constexpr int TcPitch = TcHeadDim + 8;

template <class KV, int H, int BC>
__device__ void attention_tc(const float* q, float* out, const typename KV::T* kc, const typename KV::T* vc, long long lo, const int* tables,
    const int4* tiles, int heads, int kvHeads, int chunks, float scale, int blockSize, int window, AttentionSplit split)
{
    constexpr int D = TcHeadDim, P = TcPitch, threads = 32 * TcRowGroups * H;
    // A thread's tasks of a key tile: 16 dimensions of one key's K or V row each (task e: key e / 16, V if e / 8 is odd,
    // dimensions 16 (e % 8) on), copied raw to the task's own slot of shared memory and turned into f16 hi and lo there by
    // the same thread, so no barrier stands between a copy landing and its use.
    constexpr int HB = (int)sizeof(typename KV::T), LB = KvLowBytes<KV>::value, Tasks = BC * 16 / threads;
    // A slot: the 16 elements' hi plane (or only one), then F24's low bytes, in an odd number of 16-byte units (the 8
    // lanes of a 16-byte shared load then meet distinct banks).
    constexpr int SlotUnits = (HB + LB) | 1, Slot = 16 * SlotUnits, Tile = 4 * BC * P;
    // Two buffers of K hi, K lo, V hi, V lo as f16 (2 × 4 × BC × 136 × 2 bytes): the block computes on one while it fills
    // the other; then the raw slots (BC × 16 × Slot bytes; PromptAttentionTensorCores on the host adds them up).
    extern __shared__ float4 smem4[];
    u16* tilesF16 = (u16*)smem4;
    char* raw = (char*)(tilesF16 + 2 * Tile);
    const u32 rawAddr = (u32)__cvta_generic_to_shared(raw);

    const int warp = threadIdx.y, lane = threadIdx.x, g = lane >> 2, tq = lane & 3, tid = warp * 32 + lane;
    const int4 tile = tiles[blockIdx.x];
    const int t0 = tile.x, count = tile.y, pos0 = tile.z, table = tile.w;
    const int group = heads / kvHeads;
    const int kvh = blockIdx.y / chunks, chunk = blockIdx.y - kvh * chunks;
    const int head0 = kvh * group + chunk * H, headCount = min(H, group - chunk * H);
    // Warp w: head w % H of the block for rows 16 (w / H) .. + 15 of the tile.
    const int hw = warp % H, rows0 = 16 * (warp / H);
    const bool active = hw < headCount && rows0 < count;
    const int head = head0 + (hw < headCount ? hw : 0);
    const int spanBegin = window > 0 ? max(0, pos0 - window + 1) : 0, spanEnd = pos0 + count;
    // Keys past the warp's last row are masked for all its rows (causal): it skips them.
    const int warpLast = pos0 + min(count, rows0 + 16) - 1;
    const int kvDim = kvHeads * D;
    const int pageShift = (blockSize & (blockSize - 1)) == 0 ? __ffs(blockSize) - 1 : -1;

    // Copies this thread's tasks of the key tile at base (keys past the span: nothing) to their slots, asynchronously. The
    // block-table look-ups come first, all in flight together.
    auto issue = [&](int base)
    {
        long long at[Tasks];
#pragma unroll
        for (int k = 0; k < Tasks; k++)
        {
            const int e = tid + k * threads, p = min(base + (e >> 4), spanEnd - 1);
            const int page = pageShift >= 0 ? p >> pageShift : p / blockSize;
            at[k] = ((long long)__ldg(tables + table + page) * blockSize + (p - page * blockSize)) * kvDim + (long long)kvh * D + 16 * (e & 7);
        }
#pragma unroll
        for (int k = 0; k < Tasks; k++)
        {
            const int e = tid + k * threads;
            if (base + (e >> 4) >= spanEnd) continue;
            const char* cache = (const char*)((e & 8) ? vc : kc);
            const u32 to = rawAddr + e * Slot;
#pragma unroll
            for (int u = 0; u < HB; u++) cp_async16(to + 16 * u, cache + at[k] * HB + 16 * u, 16);
            if constexpr (LB > 0) cp_async16(to + 16 * HB, cache + lo + at[k], 16);
        }
        cp_async_commit();
    };
    // Turns this thread's landed tasks of the key tile at base into f16 hi and lo in buffer `to`, in the staged order of
    // dimensions; keys past the span are zeros (their probabilities are 0, and 0 × garbage could be NaN).
    auto convert = [&](int base, u16* to)
    {
        cp_async_wait(0);
#pragma unroll
        for (int k = 0; k < Tasks; k++)
        {
            const int e = tid + k * threads, j = e >> 4, d = 16 * (e & 7);
            float x[16];
            if (base + j < spanEnd)
                slot16(KV(), raw + e * Slot, x);
            else
            {
#pragma unroll
                for (int i = 0; i < 16; i++) x[i] = 0.f;
            }
            u16* hi = to + ((e & 8) ? 2 * BC * P : 0) + j * P + d;
            u16* low = hi + BC * P;
#pragma unroll
            for (int h = 0; h < 2; h++)
            {
                uint4 vh, vl;
                split_f16x2(x[2 * h], x[2 * h + 1], vh.x, vl.x);
                split_f16x2(x[4 + 2 * h], x[5 + 2 * h], vh.y, vl.y);
                split_f16x2(x[8 + 2 * h], x[9 + 2 * h], vh.z, vl.z);
                split_f16x2(x[12 + 2 * h], x[13 + 2 * h], vh.w, vl.w);
                *(uint4*)(hi + 8 * h) = vh;
                *(uint4*)(low + 8 * h) = vl;
            }
        }
    };
    // This lane's query rows g and g + 8 as A fragments: per 16 dimensions, rows g and g + 8 at staged positions 2tq, 2tq + 1
    // and 2tq + 8, 2tq + 9, which are dimensions 4tq .. 4tq + 3. Loaded before the first key tile's copies are issued, so
    // both are in flight at once.
    float4 qx[2][D / 16];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = rows0 + g + 8 * r;
        const bool valid = active && row < count;
        const float* qr = q + ((long long)(t0 + (valid ? row : 0)) * heads + head) * D + 4 * tq;
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++) qx[r][ks] = valid ? *(const float4*)(qr + ks * 16) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    issue(spanBegin);
    const float c = scale * 1.4426950408889634f;
    u32 qh[D / 16][4], ql[D / 16][4];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++)
        {
            split_f16x2(qx[r][ks].x * c, qx[r][ks].y * c, qh[ks][r], ql[ks][r]);
            split_f16x2(qx[r][ks].z * c, qx[r][ks].w * c, qh[ks][2 + r], ql[ks][2 + r]);
        }
    int rowPos[2], rowBegin[2];
    float m[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = rows0 + g + 8 * r;
        // Rows past the tile attend nothing (an empty span).
        rowPos[r] = row < count ? pos0 + row : -1;
        rowBegin[r] = window > 0 ? max(0, pos0 + row - window + 1) : 0;
        m[r] = NEG_INF;
        l[r] = 0.f;
    }
    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

    const int mi = lane >> 3, mr = lane & 7;
    convert(spanBegin, tilesF16);
    if (spanBegin + BC < spanEnd) issue(spanBegin + BC);
    __syncthreads();
    for (int base = spanBegin, buffer = 0; base < spanEnd; base += BC, buffer ^= 1)
    {
        const int n = min(BC, spanEnd - base), next = base + BC;
        const u16* kh = tilesF16 + buffer * Tile;
        const u16* kl = kh + BC * P;
        const u16* vh = kl + BC * P;
        const u16* vl = vh + BC * P;
        if (active && base <= warpLast)
        {
            // Groups of four n-tiles (32 keys) and key steps (16) that start past lim are masked for all the warp's rows.
            const int lim = warpLast - base;

            // Scores of the warp's 16 rows against the BC keys: n-tile j holds keys base + 8j .. + 7. Four n-tiles at a time, each
            // step of the three products for all four: the accumulators' chains interleave (one n-tile's three in a row wait on
            // each other, and the MMAs would run at their latency).
            float sc[BC / 8][4];
#pragma unroll
            for (int j = 0; j < BC / 8; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
            // ldmatrix x4: lanes 0-7 address matrix 0 (hi, dimensions +0..7), 8-15 matrix 1 (hi, +8..15), 16-23 and 24-31
            // the same in lo; each matrix's rows are 8 keys.
            const u16* kRow = (mi < 2 ? kh : kl) + mr * P + (mi & 1) * 8;
#pragma unroll
            for (int j0 = 0; j0 < BC / 8; j0 += 4)
            {
                if (8 * j0 > lim) break;
#pragma unroll
                for (int ks = 0; ks < D / 16; ks++)
                {
                    u32 b[4][4];
#pragma unroll
                    for (int u = 0; u < 4; u++) ldmatrix_x4(b[u], kRow + (j0 + u) * 8 * P + ks * 16);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(sc[j0 + u], qh[ks], b[u][0], b[u][1]);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(sc[j0 + u], qh[ks], b[u][2], b[u][3]);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(sc[j0 + u], ql[ks], b[u][0], b[u][1]);
                }
            }
            // Online softmax per row (a row's BC scores sit on the 4 lanes of a quad: columns 2tq, 2tq + 1 of each n-tile).
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
            // Four output n-tiles at a time, as above.
            const u16* vRow = (mi < 2 ? vh : vl) + ((mi & 1) * 8 + mr) * P;
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++)
            {
                if (16 * kk > lim) break;
                u32 ph[4], pl[4];
                split_f16x2(sc[2 * kk][0], sc[2 * kk][1], ph[0], pl[0]);
                split_f16x2(sc[2 * kk][2], sc[2 * kk][3], ph[1], pl[1]);
                split_f16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1], ph[2], pl[2]);
                split_f16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3], ph[3], pl[3]);
#pragma unroll
                for (int i0 = 0; i0 < D / 8; i0 += 4)
                {
                    // Transposed: matrix 0 and 1 are keys +0..7 and +8..15 of dimensions 8i..8i+7 (hi), 2 and 3 the same in lo.
                    u32 b[4][4];
#pragma unroll
                    for (int u = 0; u < 4; u++) ldmatrix_x4_trans(b[u], vRow + kk * 16 * P + (i0 + u) * 8);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(o[i0 + u], ph, b[u][0], b[u][1]);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(o[i0 + u], ph, b[u][2], b[u][3]);
#pragma unroll
                    for (int u = 0; u < 4; u++) mma_f16(o[i0 + u], pl, b[u][0], b[u][1]);
                }
            }
        }
        if (next < spanEnd)
        {
            convert(next, tilesF16 + (buffer ^ 1) * Tile);
            if (next + BC < spanEnd) issue(next + BC);
        }
        // The other buffer is filled, and every warp is done with this one (the tile after next goes there).
        __syncthreads();
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = rows0 + g + 8 * r;
        if (row >= count) continue;
        const float inv = 1.f / l[r];
        const long long at = ((long long)(t0 + row) * heads + head) * D + 4 * tq;
        // n-tiles 2b and 2b + 1 hold staged positions 16b + 2tq, + 1 and 16b + 8 + 2tq, + 1: dimensions 16b + 4tq .. + 3.
#pragma unroll
        for (int b = 0; b < D / 16; b++)
        {
            const float4 v = make_float4(o[2 * b][2 * r] * inv, o[2 * b][2 * r + 1] * inv, o[2 * b + 1][2 * r] * inv, o[2 * b + 1][2 * r + 1] * inv);
            *(float4*)(out + at + 16 * b) = v;
            split.put(at + 16 * b, v.x);
            split.put(at + 16 * b + 1, v.y);
            split.put(at + 16 * b + 2, v.z);
            split.put(at + 16 * b + 3, v.w);
        }
    }
}
// Heads a block: 1, 2 or 4, as TcRowGroups × H warps; key tiles of 64 for 4 heads (8 warps share each), 32 for fewer
// (smaller blocks, more of them resident).
#define ATTENTION_TC(TYPE, NAME, H, BC) \
    extern "C" __global__ void __launch_bounds__(32 * TcRowGroups * H) attention_tc_##NAME##_##H(const float* q, float* out, \
        const TYPE::T* kc, const TYPE::T* vc, long long lo, const int* tables, const int4* tiles, int heads, int kvHeads, int chunks, \
        float scale, int blockSize, int window, AttentionSplit split) \
    { attention_tc<TYPE, H, BC>(q, out, kc, vc, lo, tables, tiles, heads, kvHeads, chunks, scale, blockSize, window, split); }
#define ATTENTION_TC_TYPE(TYPE, NAME) ATTENTION_TC(TYPE, NAME, 1, 32) ATTENTION_TC(TYPE, NAME, 2, 32) ATTENTION_TC(TYPE, NAME, 4, 64)
ATTENTION_TC_TYPE(F32, f32) ATTENTION_TC_TYPE(BF16, bf16) ATTENTION_TC_TYPE(F16, f16) ATTENTION_TC_TYPE(F24, f24)
