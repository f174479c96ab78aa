// Turbine's CUDA kernels. Compiled at run time by NVRTC for the device's own architecture, so no CUDA headers are
// included: bf16 and f16 are handled as 16-bit integers with explicit conversions.
// Activations are float32 row-major; weights keep their checkpoint dtype; the KV cache is float32, f16, bf16 or F24.

typedef unsigned short u16;
typedef unsigned int u32;

#define FULL_MASK 0xffffffffu
#define NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f2bf(float f)
{
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return (u16)(u >> 16);
}
__device__ __forceinline__ float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

// One struct per storage dtype: scalar get/put and an 8-element load (16 bytes for the 16-bit types).
struct F32
{
    typedef float T;
    static __device__ __forceinline__ float fit(float f) { return f; }
    static __device__ __forceinline__ float get(const T* p, long long i) { return p[i]; }
    static __device__ __forceinline__ T put(float f) { return f; }
    static __device__ __forceinline__ float widen(T v) { return v; }
    static __device__ __forceinline__ void load8(const T* p, float* o)
    {
        float4 a = __ldg((const float4*)p), b = __ldg((const float4*)p + 1);
        o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w; o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
    }
};

struct BF16
{
    typedef u16 T;
    static __device__ __forceinline__ float fit(float f) { return f; }
    static __device__ __forceinline__ float get(const T* p, long long i) { return bf2f(p[i]); }
    static __device__ __forceinline__ T put(float f) { return f2bf(f); }
    static __device__ __forceinline__ float widen(T v) { return bf2f(v); }
    static __device__ __forceinline__ void load8(const T* p, float* o)
    {
        uint4 v = __ldg((const uint4*)p);
        o[0] = __uint_as_float(v.x << 16); o[1] = __uint_as_float(v.x & 0xffff0000u);
        o[2] = __uint_as_float(v.y << 16); o[3] = __uint_as_float(v.y & 0xffff0000u);
        o[4] = __uint_as_float(v.z << 16); o[5] = __uint_as_float(v.z & 0xffff0000u);
        o[6] = __uint_as_float(v.w << 16); o[7] = __uint_as_float(v.w & 0xffff0000u);
    }
};

struct F16
{
    typedef u16 T;
    // Saturates to the largest finite half: an activation beyond it would otherwise become inf in a GEMM input.
    static __device__ __forceinline__ float fit(float f) { return fminf(fmaxf(f, -65504.f), 65504.f); }
    static __device__ __forceinline__ float get(const T* p, long long i) { return h2f(p[i]); }
    static __device__ __forceinline__ T put(float f) { return f2h(f); }
    static __device__ __forceinline__ float widen(T v) { return h2f(v); }
    static __device__ __forceinline__ void load8(const T* p, float* o)
    {
        uint4 v = __ldg((const uint4*)p);
        o[0] = h2f((u16)v.x); o[1] = h2f((u16)(v.x >> 16));
        o[2] = h2f((u16)v.y); o[3] = h2f((u16)(v.y >> 16));
        o[4] = h2f((u16)v.z); o[5] = h2f((u16)(v.z >> 16));
        o[6] = h2f((u16)v.w); o[7] = h2f((u16)(v.w >> 16));
    }
};

// KV caches only: float32 rounded to 24 bits (sign, exponent, 15 mantissa bits; relative error at most 2^-16) in two
// planes, the top 16 bits (a bf16 pattern) as T and the next 8 in a plane of bytes `lo` bytes after the T plane, at the
// same element index (kv_put, kv_put_w, kv_get, kv_load8 and load4 take both).
struct F24
{
    typedef u16 T;
};

// Which of the above keep a plane of low bytes too, and its bytes per element.
template <class KV> struct KvLowBytes { static constexpr int value = 0; };
template <> struct KvLowBytes<F24> { static constexpr int value = 1; };

// f rounded to F24's 24 bits, as those bits (hi 16 | lo 8): halves round away from zero, and a carry into the exponent
// is IEEE rounding (floats within half a step of 2^128 become inf). NaN is kept a NaN (quieted): the carry would turn
// a NaN of a small payload into inf, and wrap a negative one to 0.
__device__ __forceinline__ u32 f2f24(float f)
{
    const u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 8) | 0x4000u;
    return (u + 0x80u) >> 8;
}
// Four consecutive F24 elements from their hi halves (two a word, the lower index in the low half) and low bytes: each
// float is the bytes (0, low byte, hi half), put together by byte permutes, 6 for the 4.
__device__ __forceinline__ void f24x4(u32 h0, u32 h1, u32 l, float* o)
{
    const u32 l01 = __byte_perm(l, 0, 0x1404), l23 = __byte_perm(l, 0, 0x3424);
    o[0] = __uint_as_float(__byte_perm(l01, h0, 0x5410));
    o[1] = __uint_as_float(__byte_perm(l01, h0, 0x7632));
    o[2] = __uint_as_float(__byte_perm(l23, h1, 0x5410));
    o[3] = __uint_as_float(__byte_perm(l23, h1, 0x7632));
}

// Element i of a KV cache (p: its T plane; lo: F24's low-byte plane, in bytes from p, unused by the other types).
template <class KV>
__device__ __forceinline__ void kv_put(KV, typename KV::T* p, long long lo, long long i, float f) { p[i] = KV::put(f); }
__device__ __forceinline__ void kv_put(F24, u16* p, long long lo, long long i, float f)
{
    const u32 r = f2f24(f);
    p[i] = (u16)(r >> 8);
    ((unsigned char*)p + lo)[i] = (unsigned char)r;
}
template <class KV>
__device__ __forceinline__ float kv_get(KV, const typename KV::T* p, long long lo, long long i) { return KV::get(p, i); }
__device__ __forceinline__ float kv_get(F24, const u16* p, long long lo, long long i)
{
    return __uint_as_float(((u32)p[i] << 16) | ((u32)((const unsigned char*)p + lo)[i] << 8));
}
// Elements i .. i + 7 (i a multiple of 8: 16-byte loads of T, 8-byte of low bytes).
template <class KV>
__device__ __forceinline__ void kv_load8(KV, const typename KV::T* p, long long lo, long long i, float* o) { KV::load8(p + i, o); }
__device__ __forceinline__ void kv_load8(F24, const u16* p, long long lo, long long i, float* o)
{
    const uint4 h = __ldg((const uint4*)(p + i));
    const uint2 l = __ldg((const uint2*)((const unsigned char*)p + lo + i));
    f24x4(h.x, h.y, l.x, o);
    f24x4(h.z, h.w, l.y, o + 4);
}

// Programmatic dependent launch (sm_90+): a kernel lets the next one start launching once all its blocks run, and a
// kernel launched that way waits for its predecessor to finish before reading what it wrote, so its blocks are
// scheduled during the predecessor's tail. (Prefetching weights into L2 before the wait was measured slower: 152.3
// against 154.6 tok/s at batch 1.) Elsewhere both are no-ops and launches serialise as usual.
__device__ __forceinline__ void launch_dependents()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_predecessor()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum (Max: the maximum of values >= 0) over a block of up to 1024 threads (a multiple of 32); every thread gets it.
// The second round pads with 0, which changes neither.
template <bool Max>
__device__ float block_reduce(float v)
{
    __shared__ float partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = Max ? warp_max(v) : warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    if (warp == 0) v = Max ? warp_max(v) : warp_sum(v);
    if (threadIdx.x == 0) partial[0] = v;
    __syncthreads();
    return partial[0];
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

// ---- embedding: y[t] = table[tokens[t]], or, where feed[t] >= 0, table[ids[feed[t]]]: the id an argmax of the step
// before chose for that row (a step queued before the host read them) ---------------------------------------------
template <class W>
__device__ void embed(const typename W::T* table, const int* tokens, const int* feed, const int* ids, float* y, int width)
{
    const int f = feed != 0 ? feed[blockIdx.x] : -1;
    long long row = f >= 0 ? ids[f] : tokens[blockIdx.x];
    float* out = y + (long long)blockIdx.x * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) out[i] = W::get(table, row * width + i);
}
#define EMBED(TYPE, NAME) \
    extern "C" __global__ void embed_##NAME(const TYPE::T* t, const int* tok, const int* feed, const int* ids, float* y, int w) \
    { embed<TYPE>(t, tok, feed, ids, y, w); }
EMBED(F32, f32) EMBED(BF16, bf16) EMBED(F16, f16)

// ---- e4m3 (fp8) for the lo pass of prompt-step GEMMs (CudaGemmPrecision.Fp8Lo, sm_89 and later) ------------------
typedef unsigned char u8;

// Two floats as e4m3, rounded to nearest and saturated to ±448: a in the high byte, b in the low one.
__device__ __forceinline__ u16 f2e4m3x2(float a, float b)
{
#if __CUDA_ARCH__ >= 890
    u16 r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(a), "f"(b));
    return r;
#else
    return 0;  // no such instruction; the backend runs Fp8Lo as Split there
#endif
}

// The largest power of two s with amax·s ≤ 448, e4m3's largest finite value: exact to apply, and 1/s exact too.
__device__ __forceinline__ float e4m3_scale(float amax)
{
    if (!(amax > 0.f)) return 1.f;
    return ldexpf(1.f, (int)fminf(fmaxf(floorf(log2f(448.f / amax)), -126.f), 126.f));
}

__device__ __forceinline__ float4 fit_f16(float4 a) { return make_float4(F16::fit(a.x), F16::fit(a.y), F16::fit(a.z), F16::fit(a.w)); }

__device__ __forceinline__ float lo_f16(float v) { return fabsf(v - h2f(f2h(v))); }

// The largest lo_f16 of four values.
__device__ __forceinline__ float lo_max4(float4 a) { return fmaxf(fmaxf(lo_f16(a.x), lo_f16(a.y)), fmaxf(lo_f16(a.z), lo_f16(a.w))); }

// Elements at..at+3 of a row: f16 hi to hi, the remainder times s as e4m3 to lo.
__device__ __forceinline__ void put_fp8_split(u16* hi, u8* lo, long long at, float4 a, float s)
{
    u16 h0 = f2h(a.x), h1 = f2h(a.y), h2 = f2h(a.z), h3 = f2h(a.w);
    *(uint2*)(hi + at) = make_uint2(h0 | (u32)h1 << 16, h2 | (u32)h3 << 16);
    u16 l01 = f2e4m3x2((a.y - h2f(h1)) * s, (a.x - h2f(h0)) * s), l23 = f2e4m3x2((a.w - h2f(h3)) * s, (a.z - h2f(h2)) * s);
    *(u32*)(lo + at) = l01 | (u32)l23 << 16;
}

// The fp8 split of a row a block holds in registers, float4 u at index threadIdx.x + u·blockDim.x (of w4): f16 hi
// to hi, the remainder x - hi as e4m3 times the row's scale to lo, and 1/scale to dequant[blockIdx.x], the layout
// split_fp8 writes for cuBLASLt's per-row B scale. The scale needs the row's largest remainder before any is written.
template <int U>
__device__ __forceinline__ void put_fp8_row(const float4* v, int w4, long long base, u16* hi, u8* lo, float* dequant)
{
    float m = 0.f;
#pragma unroll
    for (int u = 0; u < U; u++)
    {
        int i = threadIdx.x + u * blockDim.x;
        if (i < w4)
        {
            float4 a = fit_f16(v[u]);
            m = fmaxf(m, lo_max4(a));
        }
    }
    float s = e4m3_scale(block_max(m));
    if (threadIdx.x == 0) dequant[blockIdx.x] = 1.f / s;
#pragma unroll
    for (int u = 0; u < U; u++)
    {
        int i = threadIdx.x + u * blockDim.x;
        if (i < w4) put_fp8_split(hi, lo, base + 4 * i, fit_f16(v[u]), s);
    }
}

// An fp8 split of `count` elements (GemmFp8's input): f16 hi, then the e4m3 lo bytes, then a float per row.
__device__ __forceinline__ u8* fp8_lo(u16* split, long long count) { return (u8*)(split + count); }
__device__ __forceinline__ float* fp8_dequant(u16* split, long long count) { return (float*)(fp8_lo(split, count) + count); }

// ---- RMSNorm, optionally after residual += delta; one block per row; weight in float32 -------------------------
// Fused with its neighbours in GEMM steps, to save a launch and a pass over memory each:
// - delta may come straight from the previous GEMM's float32 result acc [rows × width] (plus its lo half's result after
//   it when accTwo, plus bias): it is summed here, and delta, which AddRmsNorm consumes, is not written;
// - the normalised rows may also go to split as 16-bit hi (and, when splitTwo, the rounding remainder lo after all
//   rows; rmsnorm_fp8: f16 hi and the e4m3 lo with its row scales, in the registers' path only): the next GEMM's
//   input, which it would otherwise convert in a kernel of its own; y itself then only when set (the backend leaves it
//   out when that GEMM is all that reads it).
template <class S>
__device__ __forceinline__ void put_split(typename S::T* split, long long i, long long count, int two, float v)
{
    v = S::fit(v);
    typename S::T hi = S::put(v);
    split[i] = hi;
    if (two) split[count + i] = S::put(v - S::widen(hi));
}

// put_split of four consecutive values (i a multiple of 4, count too): one 8-byte store a half.
template <class S>
__device__ __forceinline__ void put_split4(typename S::T* split, long long i, long long count, int two, float4 v)
{
    float f[4] = { S::fit(v.x), S::fit(v.y), S::fit(v.z), S::fit(v.w) };
    typename S::T hi[4], lo[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
    {
        hi[j] = S::put(f[j]);
        lo[j] = S::put(f[j] - S::widen(hi[j]));
    }
    *(uint2*)(split + i) = make_uint2(hi[0] | ((u32)hi[1] << 16), hi[2] | ((u32)hi[3] << 16));
    if (two) *(uint2*)(split + count + i) = make_uint2(lo[0] | ((u32)lo[1] << 16), lo[2] | ((u32)lo[3] << 16));
}

template <class S, bool Fp8 = false>
__device__ void rmsnorm_rows(float* residual, float* delta, const float* weight, float eps, float* y, int width, const float* acc,
    int accTwo, const float* bias, typename S::T* split, int splitTwo)
{
    launch_dependents();
    const long long base = (long long)blockIdx.x * width, count = (long long)gridDim.x * width;
    float* x = residual + base;
    if ((width & 3) == 0 && width <= 32 * (int)blockDim.x)
    {
        // float4 accesses, the row kept in registers between the sum of squares and the scaling.
        const int w4 = width >> 2;
        float4* x4 = (float4*)x;
        float4 v[8];
        float ss = 0.f;
#pragma unroll
        for (int u = 0; u < 8; u++)
        {
            int i = threadIdx.x + u * blockDim.x;
            if (i < w4)
            {
                float4 a = x4[i];
                if (delta != 0)
                {
                    float4 b;
                    if (acc != 0)
                    {
                        b = ((const float4*)(acc + base))[i];
                        if (accTwo)
                        {
                            float4 l = ((const float4*)(acc + count + base))[i];
                            b.x += l.x; b.y += l.y; b.z += l.z; b.w += l.w;
                        }
                        if (bias != 0)
                        {
                            float4 c = ((const float4*)bias)[i];
                            b.x += c.x; b.y += c.y; b.z += c.z; b.w += c.w;
                        }
                    }
                    else
                        b = ((const float4*)(delta + base))[i];
                    a.x += b.x; a.y += b.y; a.z += b.z; a.w += b.w;
                    x4[i] = a;
                }
                v[u] = a;
                ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
            }
        }
        float inv = rsqrtf(block_sum(ss) / width + eps);
#pragma unroll
        for (int u = 0; u < 8; u++)
        {
            int i = threadIdx.x + u * blockDim.x;
            if (i < w4)
            {
                float4 g = ((const float4*)weight)[i], a = v[u];
                float4 r = make_float4(g.x * (a.x * inv), g.y * (a.y * inv), g.z * (a.z * inv), g.w * (a.w * inv));
                if (y != 0) ((float4*)(y + base))[i] = r;
                if constexpr (Fp8) v[u] = r;
                else if (split != 0) put_split4<S>(split, base + 4 * i, count, splitTwo, r);
            }
        }
        if constexpr (Fp8) put_fp8_row<8>(v, w4, base, split, fp8_lo(split, count), fp8_dequant(split, count));
        return;
    }
    float ss = 0.f;
    for (int i = threadIdx.x; i < width; i += blockDim.x)
    {
        float v = x[i];
        if (delta != 0)
        {
            float d;
            if (acc != 0)
            {
                d = acc[base + i];
                if (accTwo) d += acc[count + base + i];
                if (bias != 0) d += bias[i];
            }
            else
                d = delta[base + i];
            v += d;
            x[i] = v;
        }
        ss += v * v;
    }
    float inv = rsqrtf(block_sum(ss) / width + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x)
    {
        float r = weight[i] * (x[i] * inv);
        if (y != 0) y[base + i] = r;
        if (split != 0) put_split<S>(split, base + i, count, splitTwo, r);
    }
}
#define RMSNORM(TYPE, NAME) \
    extern "C" __global__ void rmsnorm_##NAME(float* residual, float* delta, const float* weight, float eps, float* y, int width, \
        const float* acc, int accTwo, const float* bias, TYPE::T* split, int splitTwo) \
    { rmsnorm_rows<TYPE>(residual, delta, weight, eps, y, width, acc, accTwo, bias, split, splitTwo); }
RMSNORM(BF16, bf16) RMSNORM(F16, f16)
// With the fp8 split of rows that fit the registers' path: a kernel of its own, so that the extra registers
// it needs do not limit the others' block size.
extern "C" __global__ void __launch_bounds__(1024) rmsnorm_fp8(float* residual, float* delta, const float* weight, float eps, float* y,
    int width, const float* acc, int accTwo, const float* bias, u16* split, int splitTwo)
{ rmsnorm_rows<F16, true>(residual, delta, weight, eps, y, width, acc, accTwo, bias, split, splitTwo); }

// ---- GEMV for few rows: y[m, j] = x[m] · W[j] + bias[j]; one warp per output column j, M rows at once ------------
// Up to three linears of the same input run as one launch (q/k/v, gate/up): their outputs are stacked, part p owning
// columns [end[p-1], end[p]). One launch instead of three saves the launch gaps and fills the GPU for the narrow k/v.
// GEMMs of stacked weights use the same description for their epilogue (linear_epilogue below).
struct LinearParts
{
    const void* w[3];
    const float* bias[3];
    float* y[3];
    int end[3];
};

template <class W, int M>
__device__ void gemv_column(const LinearParts& parts, const float* x, int k, int rows, int column, int lane)
{
    // Selects instead of indexing the parameter arrays, which would move them to local memory.
    int p = column < parts.end[0] ? 0 : column < parts.end[1] ? 1 : 2;
    int start = p == 0 ? 0 : p == 1 ? parts.end[0] : parts.end[1];
    int n = (p == 0 ? parts.end[0] : p == 1 ? parts.end[1] : parts.end[2]) - start;
    int j = column - start;
    const typename W::T* w = (const typename W::T*)(p == 0 ? parts.w[0] : p == 1 ? parts.w[1] : parts.w[2]);
    const float* bias = p == 0 ? parts.bias[0] : p == 1 ? parts.bias[1] : parts.bias[2];
    float* y = p == 0 ? parts.y[0] : p == 1 ? parts.y[1] : parts.y[2];
    const typename W::T* wr = w + (long long)j * k;
    wait_for_predecessor();
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
    if ((k & 7) == 0)
    {
#pragma unroll 4
        for (int i = lane * 8; i < k; i += 256)
        {
            float wv[8];
            W::load8(wr + i, wv);
#pragma unroll
            for (int m = 0; m < M; m++)
            {
                if (m < rows)
                {
                    const float4* xp = (const float4*)(x + (long long)m * k + i);
                    float4 a = xp[0], b = xp[1];
                    acc[m] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
                }
            }
        }
    }
    else
    {
        for (int i = lane; i < k; i += 32)
        {
            float wv = W::get(wr, i);
#pragma unroll
            for (int m = 0; m < M; m++)
                if (m < rows) acc[m] += wv * x[(long long)m * k + i];
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = warp_sum(acc[m]);
    if (lane == 0)
    {
        float b = bias != 0 ? bias[j] : 0.f;
#pragma unroll
        for (int m = 0; m < M; m++)
            if (m < rows) y[(long long)m * n + j] = acc[m] + b;
    }
}

template <class W, int M>
__device__ void gemv(const LinearParts& parts, const float* x, int k, int rows)
{
    launch_dependents();
    int column = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (column < parts.end[2])
        gemv_column<W, M>(parts, x, k, rows, column, threadIdx.x & 31);
    else
        wait_for_predecessor();
}
#define GEMV(TYPE, NAME, M) \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_##M(LinearParts parts, const float* x, int k, int rows) \
    { gemv<TYPE, M>(parts, x, k, rows); }
GEMV(F32, f32, 1) GEMV(F32, f32, 2) GEMV(F32, f32, 4) GEMV(F32, f32, 8)
GEMV(BF16, bf16, 1) GEMV(BF16, bf16, 2) GEMV(BF16, bf16, 4) GEMV(BF16, bf16, 8)
GEMV(F16, f16, 1) GEMV(F16, f16, 2) GEMV(F16, f16, 4) GEMV(F16, f16, 8)

// ---- gate/up GEMV fused with SwiGLU: one warp computes gate row j and up row j for M input rows, writes both and
// y = silu(gate) * up, so the MLP's activation needs no launch of its own (y may be the gate buffer). ------------------
template <class W, int M>
__device__ void gemv_swiglu(const typename W::T* gw, const typename W::T* uw, const float* x, int k, int rows, int n, float* gate,
    float* up, float* y)
{
    launch_dependents();
    int j = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (j >= n)
    {
        wait_for_predecessor();
        return;
    }
    const typename W::T* gr = gw + (long long)j * k;
    const typename W::T* ur = uw + (long long)j * k;
    wait_for_predecessor();
    float ga[M], ua[M];
#pragma unroll
    for (int m = 0; m < M; m++) ga[m] = ua[m] = 0.f;
    if ((k & 7) == 0)
    {
#pragma unroll 4
        for (int i = lane * 8; i < k; i += 256)
        {
            float g[8], u[8];
            W::load8(gr + i, g);
            W::load8(ur + i, u);
#pragma unroll
            for (int m = 0; m < M; m++)
            {
                if (m < rows)
                {
                    const float4* xp = (const float4*)(x + (long long)m * k + i);
                    float4 a = xp[0], b = xp[1];
                    ga[m] += g[0] * a.x + g[1] * a.y + g[2] * a.z + g[3] * a.w + g[4] * b.x + g[5] * b.y + g[6] * b.z + g[7] * b.w;
                    ua[m] += u[0] * a.x + u[1] * a.y + u[2] * a.z + u[3] * a.w + u[4] * b.x + u[5] * b.y + u[6] * b.z + u[7] * b.w;
                }
            }
        }
    }
    else
    {
        for (int i = lane; i < k; i += 32)
        {
            float g = W::get(gr, i), u = W::get(ur, i);
#pragma unroll
            for (int m = 0; m < M; m++)
                if (m < rows)
                {
                    float a = x[(long long)m * k + i];
                    ga[m] += g * a;
                    ua[m] += u * a;
                }
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
    {
        ga[m] = warp_sum(ga[m]);
        ua[m] = warp_sum(ua[m]);
    }
    if (lane == 0)
    {
#pragma unroll
        for (int m = 0; m < M; m++)
            if (m < rows)
            {
                long long o = (long long)m * n + j;
                gate[o] = ga[m];
                up[o] = ua[m];
                y[o] = ga[m] / (1.f + expf(-ga[m])) * ua[m];
            }
    }
}
#define GEMV_SWIGLU(TYPE, NAME, M) \
    extern "C" __global__ void __launch_bounds__(256) gemv_swiglu_##NAME##_##M(const TYPE::T* gw, const TYPE::T* uw, const float* x, int k, \
        int rows, int n, float* gate, float* up, float* y) \
    { gemv_swiglu<TYPE, M>(gw, uw, x, k, rows, n, gate, up, y); }
GEMV_SWIGLU(F32, f32, 1) GEMV_SWIGLU(F32, f32, 2) GEMV_SWIGLU(F32, f32, 4) GEMV_SWIGLU(F32, f32, 8)
GEMV_SWIGLU(BF16, bf16, 1) GEMV_SWIGLU(BF16, bf16, 2) GEMV_SWIGLU(BF16, bf16, 4) GEMV_SWIGLU(BF16, bf16, 8)
GEMV_SWIGLU(F16, f16, 1) GEMV_SWIGLU(F16, f16, 2) GEMV_SWIGLU(F16, f16, 4) GEMV_SWIGLU(F16, f16, 8)

// ---- bf16 weights rewritten as f16 in place (same size): exact for |w| in [6.1e-5, 65504], the rest rounds to a
// half subnormal; a value beyond 65504 sets *overflow, since it would become inf. -------------------------------------
extern "C" __global__ void bf16_to_f16(u16* w, long long count, int* overflow)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    {
        float f = bf2f(w[i]);
        if (!(fabsf(f) <= 65504.f)) *overflow = 1;
        w[i] = f2h(f);
    }
}

// ---- e4m3 weight copies, and the fp8 split of GEMM inputs that no kernel wrote with them -------------------------
// A linear's f16 weights [rows × width] (width even) as e4m3, a block per row (output channel), each row times its own
// scale; 1/scale to dequant[row], cuBLASLt's per-row A scale.
extern "C" __global__ void weights_e4m3(const u16* w, int width, u8* w8, float* dequant)
{
    const long long base = (long long)blockIdx.x * width;
    float m = 0.f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) m = fmaxf(m, fabsf(h2f(w[base + i])));
    float s = e4m3_scale(block_max(m));
    if (threadIdx.x == 0) dequant[blockIdx.x] = 1.f / s;
    for (int i = 2 * threadIdx.x; i < width; i += 2 * blockDim.x)
        *(u16*)(w8 + base + i) = f2e4m3x2(h2f(w[base + i + 1]) * s, h2f(w[base + i]) * s);
}

// A GEMM's float32 input rows (width a multiple of 4), a block per row: the f16 hi (saturated, as put_split does) to
// hi, the remainder lo = x - hi as e4m3 times the row's scale to lo, and 1/scale to dequant[row], cuBLASLt's per-row B
// scale. The scale needs the row's largest remainder before any is written: up to 16 floats a thread stay in
// registers between the two passes, the rest of a wider row is read again.
extern "C" __global__ void split_fp8(const float* x, int width, u16* hi, u8* lo, float* dequant)
{
    const long long base = (long long)blockIdx.x * width;
    const float4* x4 = (const float4*)(x + base);
    const int w4 = width >> 2;
    float4 v[4];
    float m = 0.f;
#pragma unroll
    for (int u = 0; u < 4; u++)
    {
        int i = threadIdx.x + u * blockDim.x;
        if (i < w4)
        {
            float4 a = fit_f16(x4[i]);
            v[u] = a;
            m = fmaxf(m, lo_max4(a));
        }
    }
    for (int i = threadIdx.x + 4 * blockDim.x; i < w4; i += blockDim.x)
    {
        float4 a = fit_f16(x4[i]);
        m = fmaxf(m, lo_max4(a));
    }
    float s = e4m3_scale(block_max(m));
    if (threadIdx.x == 0) dequant[blockIdx.x] = 1.f / s;
#pragma unroll
    for (int u = 0; u < 4; u++)
    {
        int i = threadIdx.x + u * blockDim.x;
        if (i < w4) put_fp8_split(hi, lo, base + 4 * i, v[u], s);
    }
    for (int i = threadIdx.x + 4 * blockDim.x; i < w4; i += blockDim.x)
        put_fp8_split(hi, lo, base + 4 * i, fit_f16(x4[i]), s);
}

// ---- GEMM helpers: float32 rows to 16-bit (hi, and optionally the rounding remainder lo after all rows) ----------
template <class W>
__device__ void split_rows(const float* x, typename W::T* out, long long count, int withRemainder)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
        put_split<W>(out, i, count, withRemainder, x[i]);
}
extern "C" __global__ void split_bf16(const float* x, u16* out, long long count, int rem) { split_rows<BF16>(x, out, count, rem); }
extern "C" __global__ void split_f16(const float* x, u16* out, long long count, int rem) { split_rows<F16>(x, out, count, rem); }

// y = parts[0..count) (+ parts[count..2count) when two) + bias[i % n]
// A GEMM's float32 result acc [rows × n] (n = the parts' last end), plus the lo part's result after it when two,
// plus each part's bias, scattered to each part's own [rows × width] output.
extern "C" __global__ void linear_epilogue(const float* acc, int two, LinearParts parts, int rows)
{
    int n = parts.end[2];
    long long count = (long long)rows * n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    {
        float v = acc[i];
        if (two) v += acc[count + i];
        int r = (int)(i / n), c = (int)(i % n);
        int p = c < parts.end[0] ? 0 : c < parts.end[1] ? 1 : 2;
        int start = p == 0 ? 0 : p == 1 ? parts.end[0] : parts.end[1];
        int width = (p == 0 ? parts.end[0] : p == 1 ? parts.end[1] : parts.end[2]) - start;
        const float* bias = p == 0 ? parts.bias[0] : p == 1 ? parts.bias[1] : parts.bias[2];
        float* y = p == 0 ? parts.y[0] : p == 1 ? parts.y[1] : parts.y[2];
        if (bias != 0) v += bias[c - start];
        y[(long long)r * width + c - start] = v;
    }
}

// The stacked gate/up GEMM's result [rows × 2·width] (+ its lo half after it when two) as y = silu(gate) * up, in place
// of linear_epilogue and silu_mul (gate and up, which SiluMul consumes, are not written); y also goes to split as the
// down GEMM's 16-bit input (hi, and lo after all rows when splitTwo) when split is set, and y itself only when y is set
// (the backend leaves it out when the down GEMM reads just the split). Four columns a thread when the width allows.
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.f + expf(-g)) * u; }

template <class S>
__device__ void swiglu_rows(const float* acc, int two, float* y, int rows, int width, typename S::T* split, int splitTwo)
{
    long long count = (long long)rows * width, total = 2 * count;
    long long stride = (long long)gridDim.x * blockDim.x;
    if ((width & 3) == 0)
    {
        for (long long i = 4 * (blockIdx.x * (long long)blockDim.x + threadIdx.x); i < count; i += 4 * stride)
        {
            long long r = i / width, a = r * 2 * width + (i - r * width);
            float4 g = *(const float4*)(acc + a), u = *(const float4*)(acc + a + width);
            if (two)
            {
                float4 gl = *(const float4*)(acc + total + a), ul = *(const float4*)(acc + total + a + width);
                g.x += gl.x; g.y += gl.y; g.z += gl.z; g.w += gl.w;
                u.x += ul.x; u.y += ul.y; u.z += ul.z; u.w += ul.w;
            }
            float4 v = make_float4(silu_times(g.x, u.x), silu_times(g.y, u.y), silu_times(g.z, u.z), silu_times(g.w, u.w));
            if (y != 0) *(float4*)(y + i) = v;
            if (split != 0) put_split4<S>(split, i, count, splitTwo, v);
        }
        return;
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += stride)
    {
        long long r = i / width, a = r * 2 * width + (i - r * width);
        float g = acc[a], u = acc[a + width];
        if (two)
        {
            g += acc[total + a];
            u += acc[total + a + width];
        }
        float v = silu_times(g, u);
        if (y != 0) y[i] = v;
        if (split != 0) put_split<S>(split, i, count, splitTwo, v);
    }
}
// swiglu_rows for steps whose down GEMM takes the fp8 lo pass: a block per row (width a multiple of 4, at most eight
// float4 a thread), so that y's fp8 split, which needs the row's largest remainder, goes out from registers; y itself
// only when y is set (the backend leaves it out when the down GEMM reads just the split).
extern "C" __global__ void __launch_bounds__(1024) swiglu_epilogue_fp8(const float* acc, int two, float* y, int width, u16* split)
{
    const int w4 = width >> 2;
    const long long r = blockIdx.x, count = (long long)gridDim.x * width, total = 2 * count;
    const float4* g4 = (const float4*)(acc + r * 2 * width);
    const float4* l4 = (const float4*)(acc + total + r * 2 * width);
    float4* y4 = (float4*)y + r * w4;
    float4 v[8];
#pragma unroll
    for (int u = 0; u < 8; u++)
    {
        int i = threadIdx.x + u * blockDim.x;
        if (i < w4)
        {
            float4 g = g4[i], up = g4[w4 + i];
            if (two)
            {
                float4 gl = l4[i], ul = l4[w4 + i];
                g.x += gl.x; g.y += gl.y; g.z += gl.z; g.w += gl.w;
                up.x += ul.x; up.y += ul.y; up.z += ul.z; up.w += ul.w;
            }
            v[u] = make_float4(silu_times(g.x, up.x), silu_times(g.y, up.y), silu_times(g.z, up.z), silu_times(g.w, up.w));
            if (y != 0) y4[i] = v[u];
        }
    }
    put_fp8_row<8>(v, w4, r * width, split, fp8_lo(split, count), fp8_dequant(split, count));
}

#define SWIGLU_EPILOGUE(TYPE, NAME) \
    extern "C" __global__ void swiglu_epilogue_##NAME(const float* acc, int two, float* y, int rows, int width, TYPE::T* split, \
        int splitTwo) \
    { swiglu_rows<TYPE>(acc, two, y, rows, width, split, splitTwo); }
SWIGLU_EPILOGUE(BF16, bf16) SWIGLU_EPILOGUE(F16, f16)

// ---- rotary over q and k in place, with the step's cos/sin rows: pair i is (i, i + half) (neox), or (2i, 2i + 1) when
// interleaved (GPT-J); dimensions past 2 * half are left as they are (partial rotary) -------------------------------
extern "C" __global__ void rope(float* q, float* k, const float* cosTable, const float* sinTable, int heads, int kvHeads, int headDim, int half,
    int interleaved)
{
    int t = blockIdx.x;
    int pairs = (heads + kvHeads) * half;
    for (int e = threadIdx.x; e < pairs; e += blockDim.x)
    {
        int h = e / half, i = e - h * half;
        float* x = h < heads ? q + ((long long)t * heads + h) * headDim : k + ((long long)t * kvHeads + (h - heads)) * headDim;
        float c = cosTable[(long long)t * half + i], s = sinTable[(long long)t * half + i];
        int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
        float a = x[i1], b = x[i2];
        x[i1] = a * c - b * s;
        x[i2] = b * c + a * s;
    }
}

// ---- SwiGLU: y = silu(gate) * up ---------------------------------------------------------------------------------
extern "C" __global__ void silu_mul(const float* gate, const float* up, float* y, long long count)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    {
        y[i] = silu_times(gate[i], up[i]);
    }
}

// ---- y[i] = x[rows[i]] ---------------------------------------------------------------------------------------------
extern "C" __global__ void gather_rows(const float* x, const int* rows, float* y, int width)
{
    launch_dependents();
    const float* src = x + (long long)rows[blockIdx.x] * width;
    float* dst = y + (long long)blockIdx.x * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) dst[i] = src[i];
}

// ---- ids[r] = argmax of row r: the first index of the largest value, a NaN counting as larger than any number -----
// (torch.argmax and TensorPrimitives.IndexOfMax agree on both rules). One block per row; each thread scans its stride
// in increasing index order, so a strict comparison keeps its first maximum, and the merges below break ties by index.
__device__ __forceinline__ bool argmax_better(float v, int i, float best, int bestIndex)
{
    bool vn = v != v, bn = best != best;
    if (vn || bn) return vn && (!bn || i < bestIndex);
    return v > best || (v == best && i < bestIndex);
}

// Grid (rows, chunks): block (r, c) scans chunk c of row r. With one chunk it writes ids[r]; with several each writes
// its (best, index) and the last block of the row to finish (counted in counters, left at zero again) merges them, so a
// single row (batch 1) is scanned by many SMs instead of one.
extern "C" __global__ void __launch_bounds__(1024) argmax_rows(const float* x, int* ids, int width, float* partBest, int* partIndex,
    int* counters)
{
    __shared__ float warpBest[32];
    __shared__ int warpIndex[32];
    __shared__ int lastChunk;
    const float* row = x + (long long)blockIdx.x * width;
    const int chunk = (width + gridDim.y - 1) / gridDim.y, from = blockIdx.y * chunk, to = min(width, from + chunk);
    // 0x7fffffff: an index no element has, so any element (even -inf) beats the empty start.
    float best = NEG_INF;
    int index = 0x7fffffff;
    for (int i = from + threadIdx.x; i < to; i += blockDim.x)
    {
        float v = row[i];
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
    {
        float v = __shfl_xor_sync(FULL_MASK, best, o);
        int i = __shfl_xor_sync(FULL_MASK, index, o);
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    if (lane == 0) { warpBest[warp] = best; warpIndex[warp] = index; }
    __syncthreads();
    if (warp != 0) return;
    best = lane < warps ? warpBest[lane] : NEG_INF;
    index = lane < warps ? warpIndex[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
    {
        float v = __shfl_xor_sync(FULL_MASK, best, o);
        int i = __shfl_xor_sync(FULL_MASK, index, o);
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
    if (gridDim.y == 1)
    {
        if (lane == 0) ids[blockIdx.x] = index;
        return;
    }
    long long at = (long long)blockIdx.x * gridDim.y;
    if (lane == 0)
    {
        partBest[at + blockIdx.y] = best;
        partIndex[at + blockIdx.y] = index;
        __threadfence();
        lastChunk = atomicAdd(counters + blockIdx.x, 1) == (int)gridDim.y - 1;
        if (lastChunk) counters[blockIdx.x] = 0;
    }
    __syncwarp();
    if (!__shfl_sync(FULL_MASK, lastChunk, 0)) return;
    __threadfence();
    best = NEG_INF;
    index = 0x7fffffff;
    for (int c = lane; c < (int)gridDim.y; c += 32)
    {
        float v = __ldcg(partBest + at + c);
        int i = __ldcg(partIndex + at + c);
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
    {
        float v = __shfl_xor_sync(FULL_MASK, best, o);
        int i = __shfl_xor_sync(FULL_MASK, index, o);
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
    if (lane == 0) ids[blockIdx.x] = index;
}

// ---- KV write: the step's k, v rows into their cache slots ----------------------------------------------------------
// lo: where F24's low-byte planes are, in bytes from kc and from vc (as in every kernel that takes the cache).
template <class KV>
__device__ void kv_write(const float* k, const float* v, const int* slots, typename KV::T* kc, typename KV::T* vc, long long lo, int kvDim)
{
    int slot = slots[blockIdx.x];
    if (slot < 0) return;
    long long src = (long long)blockIdx.x * kvDim, dst = (long long)slot * kvDim;
    for (int i = threadIdx.x; i < kvDim; i += blockDim.x)
    {
        kv_put(KV(), kc, lo, dst + i, k[src + i]);
        kv_put(KV(), vc, lo, dst + i, v[src + i]);
    }
}
#define KV_WRITE(TYPE, NAME) \
    extern "C" __global__ void kv_write_##NAME(const float* k, const float* v, const int* s, TYPE::T* kc, TYPE::T* vc, long long lo, int d) \
    { kv_write<TYPE>(k, v, s, kc, vc, lo, d); }
KV_WRITE(F32, f32) KV_WRITE(BF16, bf16) KV_WRITE(F16, f16) KV_WRITE(F24, f24)

// ---- rotary on q and k in place (as rope above) fused with the KV write of the rotated k and of v: one launch -------
// With src.acc set, q, k and v are not written yet: they are the stacked q/k/v GEMM's float32 result (columns q | k | v
// of n, plus the lo half's result src.lo floats further, plus the biases), summed here and written to q, k and v, in
// place of the linear's epilogue.
struct QkvSource
{
    const float* acc;
    long long lo;
    int n;
    const float* bias[3];
};

__device__ __forceinline__ float qkv_at(const QkvSource& src, int part, long long row, int start, int j)
{
    long long i = row * src.n + start + j;
    float v = src.acc[i];
    if (src.lo != 0) v += src.acc[src.lo + i];
    const float* b = part == 0 ? src.bias[0] : part == 1 ? src.bias[1] : src.bias[2];
    if (b != 0) v += b[j];
    return v;
}

// Dimension d of head j0 (its first column within the part) of the q (part 0) or k (part 1) linear's output in src,
// rotated: pair (a, b) of neox (d, d + half) or interleaved (2i, 2i + 1) dimensions becomes (a c - b s, b c + a s);
// dimensions past 2 half are as they are. The same arithmetic as rope_kv_write.
__device__ __forceinline__ float rotated_at(const QkvSource& src, int part, long long t, int start, int j0, int d, int half, int interleaved,
    const float* cosTable, const float* sinTable)
{
    const float x = qkv_at(src, part, t, start, j0 + d);
    if (d >= 2 * half) return x;
    const bool first = interleaved ? (d & 1) == 0 : d < half;
    const int i = interleaved ? d >> 1 : first ? d : d - half;
    const int partner = interleaved ? (first ? d + 1 : d - 1) : (first ? d + half : d - half);
    const float y = qkv_at(src, part, t, start, j0 + partner);
    const float c = cosTable[t * half + i], sn = sinTable[t * half + i];
    return first ? x * c - y * sn : x * c + y * sn;
}

// RoPE and the KV write done by the decode attention itself, straight from the q/k/v GEMM's result (src.acc == 0: not
// fused, q and the cache are already written): every block rotates its heads' q (split 0 also stores them to q), and
// the block whose key split holds the new token writes that token's K and V rows to the cache before it reads them
// (chunk 0 also stores k and v).
struct DecodeRope
{
    QkvSource src;
    const float* cosTable;
    const float* sinTable;
    const int* slots;
    float* q;
    float* k;
    float* v;
    int half;
    int interleaved;
};

// W consecutive floats at p (W = 4: one 16-byte access; p then 16-byte aligned).
template <int W>
__device__ __forceinline__ void load_w(const float* p, float* x)
{
    if constexpr (W == 4)
    {
        const float4 v = *(const float4*)p;
        x[0] = v.x; x[1] = v.y; x[2] = v.z; x[3] = v.w;
    }
    else
        x[0] = *p;
}
template <int W>
__device__ __forceinline__ void store_w(float* p, const float* x)
{
    if constexpr (W == 4) *(float4*)p = make_float4(x[0], x[1], x[2], x[3]);
    else *p = x[0];
}
// Columns j .. j + W - 1 of part `part` (starting at column `start`) of row `row` of the q/k/v GEMM result, summed (as qkv_at).
template <int W>
__device__ __forceinline__ void qkv_w(const QkvSource& src, int part, long long row, int start, int j, float* x)
{
    const long long i = row * src.n + start + j;
    load_w<W>(src.acc + i, x);
    if (src.lo != 0)
    {
        float y[W];
        load_w<W>(src.acc + src.lo + i, y);
#pragma unroll
        for (int e = 0; e < W; e++) x[e] += y[e];
    }
    const float* b = part == 0 ? src.bias[0] : part == 1 ? src.bias[1] : src.bias[2];
    if (b != 0)
    {
        float y[W];
        load_w<W>(b + j, y);
#pragma unroll
        for (int e = 0; e < W; e++) x[e] += y[e];
    }
}
// Elements i .. i + W - 1 of a KV cache (W = 4: 16-, 8- and 4-byte stores).
template <int W, class KV>
__device__ __forceinline__ void kv_put_w(KV, typename KV::T* p, long long lo, long long i, const float* x)
{
    if constexpr (W == 4)
    {
        if constexpr (sizeof(typename KV::T) == 4) *(float4*)(p + i) = make_float4(x[0], x[1], x[2], x[3]);
        else *(uint2*)(p + i) = make_uint2(KV::put(x[0]) | (u32)KV::put(x[1]) << 16, KV::put(x[2]) | (u32)KV::put(x[3]) << 16);
    }
    else
        kv_put(KV(), p, lo, i, x[0]);
}
template <int W>
__device__ __forceinline__ void kv_put_w(F24, u16* p, long long lo, long long i, const float* x)
{
    if constexpr (W == 4)
    {
        u32 r[4];
#pragma unroll
        for (int e = 0; e < 4; e++) r[e] = f2f24(x[e]);
        *(uint2*)(p + i) = make_uint2((r[0] >> 8) | (r[1] >> 8) << 16, (r[2] >> 8) | (r[3] >> 8) << 16);
        *(u32*)((unsigned char*)p + lo + i) = (r[0] & 0xffu) | (r[1] & 0xffu) << 8 | (r[2] & 0xffu) << 16 | (r[3] & 0xffu) << 24;
    }
    else
        kv_put(F24(), p, lo, i, x[0]);
}

// A thread per piece of a token's row, W floats wide (4 where the rotary and head widths allow 16-byte accesses): per
// rotated head (q's heads, then k's) half / W pieces of W pairs each, read as two W-vectors (neox: dimensions d.. and
// d + half..; interleaved: 2d.. and 2d + W..), then (headDim - 2 half) / W pieces of unrotated dimensions; then
// kvDim / W pieces of v. Grid: (tokens, pieces / 128 rounded up).
template <class KV, int W>
__device__ void rope_kv_write(float* q, float* k, float* v, const float* cosTable, const float* sinTable, const int* slots,
    typename KV::T* kc, typename KV::T* vc, long long lo, int heads, int kvHeads, int headDim, int half, int interleaved, QkvSource src)
{
    const int t = blockIdx.x, piece = blockIdx.y * blockDim.x + threadIdx.x;
    const int pairs = half / W, perHead = headDim / W - pairs, rotated = (heads + kvHeads) * perHead;
    const int kvDim = kvHeads * headDim, qDim = heads * headDim;
    if (piece >= rotated + kvDim / W) return;
    const int slot = slots[t];
    const long long dst = (long long)slot * kvDim;
    const bool fresh = src.acc != 0;
    if (piece >= rotated)
    {
        const int d = (piece - rotated) * W;
        const long long at = (long long)t * kvDim + d;
        float x[W];
        if (fresh)
        {
            qkv_w<W>(src, 2, t, qDim + kvDim, d, x);
            store_w<W>(v + at, x);
        }
        else
            load_w<W>(v + at, x);
        if (slot >= 0) kv_put_w<W>(KV(), vc, lo, dst + d, x);
        return;
    }
    const int h = piece / perHead, p = piece - h * perHead;
    const bool key = h >= heads;
    const int part = key ? 1 : 0, j0 = (key ? h - heads : h) * headDim, start = key ? qDim : 0;
    float* x = key ? k + (long long)t * kvDim + j0 : q + (long long)t * qDim + j0;
    if (p >= pairs)
    {
        // Unrotated dimensions (partial rotary): as they are.
        const int d = 2 * half + (p - pairs) * W;
        float y[W];
        if (fresh)
        {
            qkv_w<W>(src, part, t, start, j0 + d, y);
            store_w<W>(x + d, y);
        }
        else if (key)
            load_w<W>(x + d, y);
        if (key && slot >= 0) kv_put_w<W>(KV(), kc, lo, dst + j0 + d, y);
        return;
    }
    const int a0 = interleaved ? 2 * W * p : W * p, b0 = interleaved ? a0 + W : a0 + half;
    // e: the two vectors back to back; pair i is (e[i], e[W + i]) (neox) or (e[2i], e[2i + 1]) (interleaved).
    float e[2 * W], cs[W], sn[W], r[2 * W];
    if (fresh)
    {
        qkv_w<W>(src, part, t, start, j0 + a0, e);
        qkv_w<W>(src, part, t, start, j0 + b0, e + W);
    }
    else
    {
        load_w<W>(x + a0, e);
        load_w<W>(x + b0, e + W);
    }
    load_w<W>(cosTable + (long long)t * half + W * p, cs);
    load_w<W>(sinTable + (long long)t * half + W * p, sn);
#pragma unroll
    for (int i = 0; i < W; i++)
    {
        const int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : W + i;
        const float a = e[i1], b = e[i2];
        r[i1] = a * cs[i] - b * sn[i];
        r[i2] = b * cs[i] + a * sn[i];
    }
    store_w<W>(x + a0, r);
    store_w<W>(x + b0, r + W);
    if (key && slot >= 0)
    {
        kv_put_w<W>(KV(), kc, lo, dst + j0 + a0, r);
        kv_put_w<W>(KV(), kc, lo, dst + j0 + b0, r + W);
    }
}
#define ROPE_KV_WRITE(TYPE, NAME, W) \
    extern "C" __global__ void rope_kv_write_##NAME##_##W(float* q, float* k, float* v, const float* c, const float* s, const int* slots, \
        TYPE::T* kc, TYPE::T* vc, long long lo, int heads, int kvHeads, int headDim, int half, int interleaved, QkvSource src) \
    { rope_kv_write<TYPE, W>(q, k, v, c, s, slots, kc, vc, lo, heads, kvHeads, headDim, half, interleaved, src); }
#define ROPE_KV_WRITE_TYPE(TYPE, NAME) ROPE_KV_WRITE(TYPE, NAME, 1) ROPE_KV_WRITE(TYPE, NAME, 4)
ROPE_KV_WRITE_TYPE(F32, f32) ROPE_KV_WRITE_TYPE(BF16, bf16) ROPE_KV_WRITE_TYPE(F16, f16) ROPE_KV_WRITE_TYPE(F24, f24)

// ---- paged attention of prompt steps (and of decode steps whose K/V rows are not whole 16-byte chunks) --------------
// Block = (query tile, up to H query heads sharing one KV head, key split z); one warp per query token, computing all of
// the block's heads, so every staged K/V element serves H heads of blockDim.y tokens. A KV head's group of query heads
// is cut into `chunks` blocks of H (the last may hold fewer: a group of 7 runs 7 of 8). A query tile is up to blockDim.y consecutive tokens
// of one sequence (tiles[x] = (first token, count)), or the single token x when tiles is null. Keys come in tiles of 32,
// staged in shared memory once for all the block's warps; lane j scores key j for each head, then every lane
// accumulates its own output dimensions over the tile (online softmax in base 2).
// The block's key span (first token's window start to last token's position) is cut into up to gridDim.z equal
// splits of at least 32 keys, computed here from the sequence's own length (blocks past them return at once), so the
// launch shape does not depend on context lengths. With one split the block writes the normalised output; with several
// each writes (acc, m, l) to partial and the last block of its (tile, head group) to finish, counted in counters (left
// at zero again), merges them.
// seqs[s] = (query start, query length, context length, block-table offset); tokSeq[t] = s.
// DEPTH: K/V vectors each thread loads before storing any (registers; blocks of up to 16 warps afford 2). D: output
// dimensions per lane (head dims up to 32·D).
template <class KV, int DEPTH, int H, int D>
__device__ void attention(const float* q, float* out, const typename KV::T* kc, const typename KV::T* vc, long long lo, const int* tokSeq,
    const int4* seqs, const int* tables, const int2* tiles, int heads, int kvHeads, int headDim, int chunks, float scale, int blockSize,
    int window, float* partial, int* counters)
{
    launch_dependents();
    extern __shared__ float4 smem4[];
    float* smem = (float*)smem4;
    const int warp = threadIdx.y, lane = threadIdx.x;
    int t0 = blockIdx.x, count = 1;
    if (tiles != 0)
    {
        int2 tile = tiles[blockIdx.x];
        t0 = tile.x;
        count = tile.y;
    }
    const bool active = warp < count;
    const int t = t0 + (active ? warp : 0);
    const int group = heads / kvHeads;
    const int kvh = blockIdx.y / chunks, chunk = blockIdx.y - kvh * chunks;
    const int head0 = kvh * group + chunk * H, headCount = min(H, group - chunk * H);
    const int4 s = seqs[tokSeq[t0]];
    const int pos0 = s.z - s.y + (t0 - s.x), pos = pos0 + (t - t0);
    // The block walks its split of the union of its tokens' key ranges; each warp masks keys outside its own.
    const int spanBegin = window > 0 ? max(0, pos0 - window + 1) : 0, spanEnd = pos0 + count;
    // Splits of at least one key tile each: the rest of the launch's splits have nothing to do for this span.
    const int splits = min((int)gridDim.z, (spanEnd - spanBegin + 31) / 32);
    if ((int)blockIdx.z >= splits) return;
    const int per = ((spanEnd - spanBegin + splits - 1) / splits + 31) & ~31;
    const int begin = spanBegin + (int)blockIdx.z * per, end = min(spanEnd, begin + per);
    const int myBegin = max(window > 0 ? max(0, pos - window + 1) : 0, begin), myEnd = min(pos + 1, end);
    const int kStride = headDim + 4;  // padding keeps lanes reading different rows off distinct banks
    float* ks = smem;
    float* vs = ks + 32 * kStride;
    float* qs = vs + 32 * headDim + warp * H * headDim;
    const float c = scale * 1.4426950408889634f;
    for (int e = lane; e < H * headDim; e += 32)
    {
        int h = e / headDim;
        qs[e] = h < headCount ? q[((long long)t * heads + head0 + h) * headDim + (e - h * headDim)] * c : 0.f;
    }

    float acc[H][D], m[H], l[H];
#pragma unroll
    for (int h = 0; h < H; h++)
    {
#pragma unroll
        for (int i = 0; i < D; i++) acc[h][i] = 0.f;
        m[h] = NEG_INF;
        l[h] = 0.f;
    }
    const int kvDim = kvHeads * headDim;
    const int threads = 32 * blockDim.y, tid = warp * 32 + lane;
    for (int base = begin; base < end; base += 32)
    {
        __syncthreads();
        const int n = min(32, end - base);
        if ((headDim & 7) == 0)
        {
            // 8 elements (16 bytes of bf16) per load.
            const int vecs = headDim >> 3, total = n * vecs;
            // DEPTH vectors of K and V per thread in flight before any is stored: the loads overlap instead of
            // each waiting for the one before.
            for (int e0 = tid; e0 < total; e0 += DEPTH * threads)
            {
                float a[DEPTH][8], b[DEPTH][8];
#pragma unroll
                for (int u = 0; u < DEPTH; u++)
                {
                    int e = e0 + u * threads;
                    if (e < total)
                    {
                        int j = e / vecs, d = (e - j * vecs) << 3;
                        int p = base + j;
                        long long slot = (long long)tables[s.w + p / blockSize] * blockSize + p % blockSize;
                        long long off = slot * kvDim + (long long)kvh * headDim + d;
                        kv_load8(KV(), kc, lo, off, a[u]);
                        kv_load8(KV(), vc, lo, off, b[u]);
                    }
                }
#pragma unroll
                for (int u = 0; u < DEPTH; u++)
                {
                    int e = e0 + u * threads;
                    if (e < total)
                    {
                        int j = e / vecs, d = (e - j * vecs) << 3;
                        float4* kd = (float4*)(ks + j * kStride + d);
                        float4* vd = (float4*)(vs + j * headDim + d);
                        kd[0] = make_float4(a[u][0], a[u][1], a[u][2], a[u][3]);
                        kd[1] = make_float4(a[u][4], a[u][5], a[u][6], a[u][7]);
                        vd[0] = make_float4(b[u][0], b[u][1], b[u][2], b[u][3]);
                        vd[1] = make_float4(b[u][4], b[u][5], b[u][6], b[u][7]);
                    }
                }
            }
        }
        else
        {
            for (int e = tid; e < n * headDim; e += threads)
            {
                int j = e / headDim, d = e - j * headDim;
                int p = base + j;
                long long slot = (long long)tables[s.w + p / blockSize] * blockSize + p % blockSize;
                long long off = slot * kvDim + (long long)kvh * headDim + d;
                ks[j * kStride + d] = kv_get(KV(), kc, lo, off);
                vs[j * headDim + d] = kv_get(KV(), vc, lo, off);
            }
        }
        __syncthreads();
        const int key = base + lane;
        const bool valid = active && lane < n && key >= myBegin && key < myEnd;
        // None of this warp's keys in the tile (warp-uniform).
        if (!__any_sync(FULL_MASK, valid)) continue;
        float score[H];
#pragma unroll
        for (int h = 0; h < H; h++) score[h] = 0.f;
        if (valid)
        {
            // Each float4 of the key, read once, against the H queries.
            const float4* kr = (const float4*)(ks + lane * kStride);
            for (int d4 = 0; d4 < (headDim >> 2); d4++)
            {
                float4 a = kr[d4];
#pragma unroll
                for (int h = 0; h < H; h++)
                {
                    float4 b = ((const float4*)(qs + h * headDim))[d4];
                    score[h] += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
                }
            }
        }
        float p[H];
#pragma unroll
        for (int h = 0; h < H; h++)
        {
            float sc = valid ? score[h] : NEG_INF;
            float mNew = fmaxf(m[h], warp_max(sc));
            float corr = exp2f(m[h] - mNew);
            p[h] = valid ? exp2f(sc - mNew) : 0.f;
            l[h] = l[h] * corr + warp_sum(p[h]);
            m[h] = mNew;
#pragma unroll
            for (int i = 0; i < D; i++) acc[h][i] *= corr;
        }
        for (int j = 0; j < n; j++)
        {
            float pj[H];
#pragma unroll
            for (int h = 0; h < H; h++) pj[h] = __shfl_sync(FULL_MASK, p[h], j);
            const float* vr = vs + j * headDim;
#pragma unroll
            for (int i = 0; i < D; i++)
            {
                int d = lane + 32 * i;
                if (d < headDim)
                {
                    float v = vr[d];
#pragma unroll
                    for (int h = 0; h < H; h++) acc[h][i] += pj[h] * v;
                }
            }
        }
    }
    if (splits == 1)
    {
        if (!active) return;
#pragma unroll
        for (int h = 0; h < H; h++)
        {
            if (h >= headCount) break;
            const long long row = (long long)t * heads + head0 + h;
            float inv = 1.f / l[h];
#pragma unroll
            for (int i = 0; i < D; i++)
            {
                int d = lane + 32 * i;
                if (d < headDim) out[row * headDim + d] = acc[h][i] * inv;
            }
        }
        return;
    }
    const int stride = headDim + 2;
    if (active)
    {
#pragma unroll
        for (int h = 0; h < H; h++)
        {
            if (h >= headCount) break;
            const long long row = (long long)t * heads + head0 + h;
            float* part = partial + (row * gridDim.z + blockIdx.z) * stride;
#pragma unroll
            for (int i = 0; i < D; i++)
            {
                int d = lane + 32 * i;
                if (d < headDim) part[d] = acc[h][i];
            }
            if (lane == 0)
            {
                part[headDim] = m[h];
                part[headDim + 1] = l[h];
            }
        }
    }
    // Publish this split, then let the last of the splits merge them all.
    __threadfence();
    __syncthreads();
    __shared__ int lastSplit;
    if (warp == 0 && lane == 0)
    {
        int* counter = counters + (long long)blockIdx.x * gridDim.y + blockIdx.y;
        lastSplit = atomicAdd(counter, 1) == splits - 1;
        if (lastSplit) *counter = 0;
    }
    __syncthreads();
    if (!lastSplit || !active) return;
    __threadfence();
    for (int h = 0; h < headCount; h++)
    {
        const long long row = (long long)t * heads + head0 + h;
        const float* part = partial + row * gridDim.z * stride;
        float mMax = NEG_INF;
        for (int z = lane; z < splits; z += 32) mMax = fmaxf(mMax, __ldcg(part + z * stride + headDim));
        mMax = warp_max(mMax);
        float lSum = 0.f;
        for (int z = lane; z < splits; z += 32)
        {
            float mz = __ldcg(part + z * stride + headDim);
            // An empty split has m = -inf and l = 0: it adds nothing (exp2f(-inf) = 0).
            if (mz != NEG_INF) lSum += __ldcg(part + z * stride + headDim + 1) * exp2f(mz - mMax);
        }
        lSum = warp_sum(lSum);
        float inv = 1.f / lSum;
#pragma unroll
        for (int i = 0; i < D; i++)
        {
            int d = lane + 32 * i;
            if (d >= headDim) continue;
            float v = 0.f;
#pragma unroll 4
            for (int z = 0; z < splits; z++)
            {
                float mz = __ldcg(part + z * stride + headDim);
                if (mz != NEG_INF) v += __ldcg(part + z * stride + d) * exp2f(mz - mMax);
            }
            out[row * headDim + d] = v * inv;
        }
    }
}
#define ATTENTION(TYPE, NAME, H, D) \
    extern "C" __global__ void __launch_bounds__(512) attention_##NAME##_##H##_##D(const float* q, float* out, const TYPE::T* kc, \
        const TYPE::T* vc, long long lo, const int* tokSeq, const int4* seqs, const int* tables, const int2* tiles, int heads, int kvHeads, \
        int headDim, int chunks, float scale, int blockSize, int window, float* partial, int* counters) \
    { attention<TYPE, 2, H, D>(q, out, kc, vc, lo, tokSeq, seqs, tables, tiles, heads, kvHeads, headDim, chunks, scale, blockSize, window, partial, \
        counters); }
#define ATTENTION_HEADS(TYPE, NAME, D) ATTENTION(TYPE, NAME, 1, D) ATTENTION(TYPE, NAME, 2, D) ATTENTION(TYPE, NAME, 4, D) ATTENTION(TYPE, NAME, 8, D)
#define ATTENTION_TYPE(TYPE, NAME) ATTENTION_HEADS(TYPE, NAME, 4) ATTENTION_HEADS(TYPE, NAME, 8)
ATTENTION_TYPE(F32, f32) ATTENTION_TYPE(BF16, bf16) ATTENTION_TYPE(F16, f16) ATTENTION_TYPE(F24, f24)

// ---- paged attention of decode steps (one query token per sequence) -------------------------------------------------
// Block = (token x, up to H query heads of one KV head y, key split z), W warps. The split's keys come in rounds of 8 W,
// 8 to each warp; each warp streams its own keys through a ring of `stages` slots in shared memory with cp.async (every
// slot's copies in flight while it waits for the oldest, no block-wide barrier), scores every key for all the block's
// heads from one read of K, and keeps its own online softmax (base 2). The warps' states are merged at the end, and the splits as in attention above (last
// block to finish merges, counters left at zero). Splits are cut from the sequence's own span, at least minKeys each (a
// multiple of 32), so the launch shape does not depend on context lengths.
// Rows are copied in 16-byte units: headDim × element size must be a multiple of 16 (the host uses attention_*
// otherwise; for F24 a row's 2 headDim bytes of hi halves and headDim low bytes are copied as rows of their own). Lane l owns dims 4 l + 128 i (i < NC) of q, K, V and the output, so a warp reads whole rows from shared
// memory; its partial dots for 8 keys × H heads are summed over the warp by exchanges that halve the values each lane
// holds (lane_sums).
#define DECODE_KEYS 8

// 16 bytes from global to shared memory, or 16 zero bytes where `bytes` is 0 (nothing is read then).
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, u32 bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `pending` (0 to 3) of this thread's latest groups are still in flight.
__device__ __forceinline__ void cp_async_wait(int pending)
{
    if (pending >= 3) asm volatile("cp.async.wait_group 3;" ::: "memory");
    else if (pending == 2) asm volatile("cp.async.wait_group 2;" ::: "memory");
    else if (pending == 1) asm volatile("cp.async.wait_group 1;" ::: "memory");
    else asm volatile("cp.async.wait_group 0;" ::: "memory");
}

// A lane's walk over the 16-byte chunks of 8 rows of `chunks` chunks each, 32 chunks a step (chunk 32 it + lane at
// step it): its first chunk (row0, c0), the advance a step, and the steps that cover the rows.
struct RowWalk
{
    int row0, c0, rowStep, cStep, chunks, steps;
    __device__ __forceinline__ RowWalk(int rowChunks, int lane)
        : row0(lane / rowChunks), c0(lane - row0 * rowChunks), rowStep(32 / rowChunks), cStep(32 - rowStep * rowChunks), chunks(rowChunks),
          steps((DECODE_KEYS * rowChunks + 31) >> 5)
    {
    }
};

// Copies the rows of 8 keys (key j's row at src + slot(j) × slotStride, slot(j) held by lane j; -1: zero-filled; -2: not
// copied) to shared memory at dst (this lane's chunk: dst + lane × 16), and the same of V from vOff bytes further in global memory
// to vDst bytes further in shared memory. At most STEPS steps (the most any row width takes).
template <int STEPS>
__device__ __forceinline__ void copy_rows(const RowWalk& w, u32 dst, u32 vDst, const char* src, long long vOff, int slotStride, int slot)
{
    int row = w.row0, c = w.c0;
#pragma unroll
    for (int it = 0; it < STEPS; it++)
    {
        // Every step's exchange, taken or not, keeps the warp converged (no divergence handling around it).
        const int rowSlot = __shfl_sync(FULL_MASK, slot, row & 7);
        if (it < w.steps && row < DECODE_KEYS && rowSlot != -2)
        {
            const char* from = src + c * 16 + (unsigned long long)(u32)max(rowSlot, 0) * (u32)slotStride;
            const u32 bytes = rowSlot >= 0 ? 16 : 0;
            cp_async16(dst + it * 512, from, bytes);
            cp_async16(dst + it * 512 + vDst, from + vOff, bytes);
        }
        row += w.rowStep;
        c += w.cStep;
        if (c >= w.chunks)
        {
            c -= w.chunks;
            row++;
        }
    }
}

// 4 elements of a K or V row in shared memory as floats (p: in the row; pl: F24's low bytes of the same elements).
__device__ __forceinline__ void load4(F32, const char* p, const char* pl, float* o)
{
    float4 a = *(const float4*)p;
    o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
}
__device__ __forceinline__ void load4(BF16, const char* p, const char* pl, float* o)
{
    uint2 v = *(const uint2*)p;
    o[0] = __uint_as_float(v.x << 16); o[1] = __uint_as_float(v.x & 0xffff0000u);
    o[2] = __uint_as_float(v.y << 16); o[3] = __uint_as_float(v.y & 0xffff0000u);
}
__device__ __forceinline__ void load4(F16, const char* p, const char* pl, float* o)
{
    uint2 v = *(const uint2*)p;
    o[0] = h2f((u16)v.x); o[1] = h2f((u16)(v.x >> 16));
    o[2] = h2f((u16)v.y); o[3] = h2f((u16)(v.y >> 16));
}
__device__ __forceinline__ void load4(F24, const char* p, const char* pl, float* o)
{
    uint2 v = *(const uint2*)p;
    f24x4(v.x, v.y, *(const u32*)pl, o);
}
// 4 elements stored as a KV cache holds them (p: the T plane; pl: F24's low bytes), in shared or global memory.
template <class KV>
__device__ __forceinline__ void store4(KV, char* p, char* pl, const float* f)
{
    if constexpr (sizeof(typename KV::T) == 4)
        *(float4*)p = make_float4(f[0], f[1], f[2], f[3]);
    else
        *(uint2*)p = make_uint2(KV::put(f[0]) | (u32)KV::put(f[1]) << 16, KV::put(f[2]) | (u32)KV::put(f[3]) << 16);
}
__device__ __forceinline__ void store4(F24, char* p, char* pl, const float* f)
{
    const u32 r0 = f2f24(f[0]), r1 = f2f24(f[1]), r2 = f2f24(f[2]), r3 = f2f24(f[3]);
    *(uint2*)p = make_uint2((r0 >> 8) | (r1 >> 8) << 16, (r2 >> 8) | (r3 >> 8) << 16);
    *(u32*)pl = (r0 & 0xffu) | (r1 & 0xffu) << 8 | (r2 & 0xffu) << 16 | (r3 & 0xffu) << 24;
}

// H floats from shared memory into registers, in 16-byte loads where H allows.
template <int H>
__device__ __forceinline__ void load_heads(const float* p, float* o)
{
    if constexpr (H % 4 == 0)
    {
#pragma unroll
        for (int h = 0; h < H; h += 4)
        {
            const float4 v = *(const float4*)(p + h);
            o[h] = v.x; o[h + 1] = v.y; o[h + 2] = v.z; o[h + 3] = v.w;
        }
    }
    else if constexpr (H == 2)
    {
        const float2 v = *(const float2*)p;
        o[0] = v.x; o[1] = v.y;
    }
    else
        o[0] = *p;
}

// Sums N values over the warp, lane distances O and below. Lane l's register i holds value i ^ X, X = l N / 32, so at
// every exchange each lane keeps its lower half of registers and adds the partner's upper half, which holds the same
// values: no selects. Afterwards a[i] (i < max(1, N / 32)) is the warp's total of value i ^ X.
template <int N, int O>
__device__ __forceinline__ void lane_sums(float* a)
{
    if constexpr (O > 0)
    {
        if constexpr (N >= 2)
        {
#pragma unroll
            for (int i = 0; i < N / 2; i++) a[i] += __shfl_xor_sync(FULL_MASK, a[i + N / 2], O);
        }
        else
            a[0] += __shfl_xor_sync(FULL_MASK, a[0], O);
        lane_sums<N >= 2 ? N / 2 : 1, O / 2>(a);
    }
}

// Where a decode step's attention output also goes as the o GEMM's 16-bit input (hi, and lo `count` elements further
// when two; bf16, or f16 when f16 is set), sparing that GEMM its own split kernel; data 0: nowhere.
struct AttentionSplit
{
    u16* data;
    long long count;
    int two;
    int f16;
    __device__ __forceinline__ void put(long long i, float v) const
    {
        if (data == 0) return;
        if (f16) put_split<F16>(data, i, count, two, v);
        else put_split<BF16>(data, i, count, two, v);
    }
    // Elements i .. i + 3 (i a multiple of 4).
    __device__ __forceinline__ void put4(long long i, float4 v) const
    {
        if (data == 0) return;
        if (f16) put_split4<F16>(data, i, count, two, v);
        else put_split4<BF16>(data, i, count, two, v);
    }
};

// qkv_at of columns j .. j + 3 (j a multiple of 4, as are n, start and lo): 16-byte loads of the GEMM's result.
__device__ __forceinline__ float4 qkv_at4(const QkvSource& src, int part, long long row, int start, int j)
{
    const long long i = row * src.n + start + j;
    float4 v = *(const float4*)(src.acc + i);
    if (src.lo != 0)
    {
        const float4 w = *(const float4*)(src.acc + src.lo + i);
        v.x += w.x; v.y += w.y; v.z += w.z; v.w += w.w;
    }
    const float* b = part == 0 ? src.bias[0] : part == 1 ? src.bias[1] : src.bias[2];
    if (b != 0)
    {
        v.x += b[j]; v.y += b[j + 1]; v.z += b[j + 2]; v.w += b[j + 3];
    }
    return v;
}

// rotated_at of dimensions d .. d + 3 (d a multiple of 4) in 16-byte loads where the rotary pairs allow (neox: half a
// multiple of 4, so the partners are 4 consecutive dimensions too; interleaved: half even, the pairs within the 4),
// element by element otherwise.
__device__ __forceinline__ float4 rotated4(const QkvSource& src, int part, long long t, int start, int j0, int d, int half, int interleaved,
    const float* cosTable, const float* sinTable)
{
    if ((half & (interleaved ? 1 : 3)) != 0)
        return make_float4(rotated_at(src, part, t, start, j0, d, half, interleaved, cosTable, sinTable),
            rotated_at(src, part, t, start, j0, d + 1, half, interleaved, cosTable, sinTable),
            rotated_at(src, part, t, start, j0, d + 2, half, interleaved, cosTable, sinTable),
            rotated_at(src, part, t, start, j0, d + 3, half, interleaved, cosTable, sinTable));
    const float4 x = qkv_at4(src, part, t, start, j0 + d);
    if (d >= 2 * half) return x;
    if (interleaved)
    {
        const float2 c = *(const float2*)(cosTable + t * half + (d >> 1)), sn = *(const float2*)(sinTable + t * half + (d >> 1));
        return make_float4(x.x * c.x - x.y * sn.x, x.y * c.x + x.x * sn.x, x.z * c.y - x.w * sn.y, x.w * c.y + x.z * sn.y);
    }
    const bool first = d < half;
    const float4 y = qkv_at4(src, part, t, start, j0 + (first ? d + half : d - half));
    const long long at = t * half + (first ? d : d - half);
    const float4 c = *(const float4*)(cosTable + at), sn = *(const float4*)(sinTable + at);
    return first ? make_float4(x.x * c.x - y.x * sn.x, x.y * c.y - y.y * sn.y, x.z * c.z - y.z * sn.z, x.w * c.w - y.w * sn.w)
                 : make_float4(x.x * c.x + y.x * sn.x, x.y * c.y + y.y * sn.y, x.z * c.z + y.z * sn.z, x.w * c.w + y.w * sn.w);
}

template <class KV, int H, int NC, int W>
__device__ void attention_decode(const float* q, float* out, const typename KV::T* kc, const typename KV::T* vc, long long lo, const int* tokSeq,
    const int4* seqs, const int* tables, int heads, int kvHeads, int headDim, int chunks, float scale, int blockSize, int window,
    int stages, int minKeys, float* partial, int* counters, AttentionSplit split, DecodeRope rope)
{
    launch_dependents();
    typedef typename KV::T T;
    // A warp's scores of a round, (key j, head h) at j H + h; each lane ends up holding R of them.
    constexpr int V = DECODE_KEYS * H, R = V > 32 ? V / 32 : 1, PS = (V + H + 3) & ~3;
    extern __shared__ float4 smem4[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x, group = heads / kvHeads;
    const int kvh = blockIdx.y / chunks, chunk = blockIdx.y - kvh * chunks, per = (group + chunks - 1) / chunks;
    const int h0 = kvh * group + chunk * per, nh = min(per, group - chunk * per);
    // Lane l's score register jj H + hh holds key jj ^ jx, head hh ^ hx (lane_sums' order): q is loaded in that order.
    // Lanes past headDim read dim 0 with q = 0 (their sums are never stored), so no load needs a condition. Not fused, q
    // is loaded first, alongside the lookups before the first copies; fused, rotated once those copies are issued.
    const bool fused = rope.src.acc != 0;
    const int X = (lane * V) >> 5, jx = lane >> 2, hx = X & (H - 1);
    float qv[H][NC][4];
    auto load_q = [&]()
    {
        float4 v[H][NC];
#pragma unroll
        for (int i = 0; i < NC; i++)
        {
            const int d = 4 * lane + 128 * i;
#pragma unroll
            for (int hh = 0; hh < H; hh++)
            {
                const int h = hh ^ hx;
                v[hh][i] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (h < nh && d < headDim)
                    v[hh][i] = fused ? rotated4(rope.src, 0, t, 0, (h0 + h) * headDim, d, rope.half, rope.interleaved, rope.cosTable, rope.sinTable)
                                     : *(const float4*)(q + ((long long)t * heads + h0 + h) * headDim + d);
            }
        }
        // Split 0's warp 0 stores the rotated q, after every load (a store before a load would wait for it).
        if (fused && blockIdx.z == 0 && warp == 0)
#pragma unroll
            for (int i = 0; i < NC; i++)
#pragma unroll
                for (int hh = 0; hh < H; hh++)
                {
                    const int h = hh ^ hx, d = 4 * lane + 128 * i;
                    if (h < nh && d < headDim) *(float4*)((float*)q + ((long long)t * heads + h0 + h) * headDim + d) = v[hh][i];
                }
        const float cq = scale * 1.4426950408889634f;
#pragma unroll
        for (int i = 0; i < NC; i++)
#pragma unroll
            for (int hh = 0; hh < H; hh++)
            {
                qv[hh][i][0] = v[hh][i].x * cq; qv[hh][i][1] = v[hh][i].y * cq; qv[hh][i][2] = v[hh][i].z * cq; qv[hh][i][3] = v[hh][i].w * cq;
            }
    };
    if (!fused)
        load_q();
    const int4 s = seqs[tokSeq[t]];
    const int pos = s.z - s.y + (t - s.x);
    const int spanBegin = window > 0 ? max(0, pos - window + 1) : 0, span = pos + 1 - spanBegin;
    const int want = min((int)gridDim.z, (span + minKeys - 1) / minKeys);
    const int len = ((span + want - 1) / want + 31) & ~31;
    const int splits = (span + len - 1) / len;
    if ((int)blockIdx.z >= splits) return;
    const int begin = spanBegin + (int)blockIdx.z * len, end = min(pos + 1, begin + len);
    const int rounds = (end - begin + DECODE_KEYS * W - 1) / (DECODE_KEYS * W);

    // Per warp and ring slot: 8 K rows (for F24: 8 rows of hi halves, then 8 of low bytes), then 8 V rows the same; after
    // the ring, each warp's round probabilities and corrections.
    constexpr int HB = (int)sizeof(T), LB = KvLowBytes<KV>::value;
    const int rowBytes = headDim * HB, lowBytes = headDim * LB, kBytes = DECODE_KEYS * (rowBytes + lowBytes), slotBytes = 2 * kBytes;
    char* ring = (char*)smem4;
    char* mine = ring + warp * stages * slotBytes;
    float* pw = (float*)(ring + W * stages * slotBytes) + warp * PS;
    const u32 mineAddr = (u32)__cvta_generic_to_shared(mine);
    const char* kg = (const char*)kc + (long long)kvh * rowBytes;
    const char* kgLow = (const char*)kc + lo + (long long)kvh * lowBytes;
    const long long vOff = (const char*)vc - (const char*)kc;
    const int pageShift = (blockSize & (blockSize - 1)) == 0 ? __ffs(blockSize) - 1 : -1;
    // Keys are taken from the split's end backwards: round r of warp w holds keys end - 1 - (8 (W r + w) + j), j < 8.
    // Fused, the new token's key (end - 1: warp 0's first round, row 0) is not read back from the cache: warp 0 writes
    // its K and V rows into that slot itself from the q/k/v result, so no copy waits for the cache write.
    const bool fresh = fused && end == pos + 1;
    // Every lane looks up key lane % 8 of each of the warp's rounds (-1: none; -2: the new token's), a round ahead.
    const int k = lane & 7;
    auto slotOf = [&](int r)
    {
        const int key = end - 1 - (DECODE_KEYS * (W * r + warp) + k);
        if (key < begin) return -1;
        if (fresh && key == pos) return -2;
        const int page = pageShift >= 0 ? key >> pageShift : key / blockSize;
        return __ldg(tables + s.w + page) * blockSize + (key - page * blockSize);
    };
    // Copies take whole 128-byte lines: copy `it` of a round moves chunk 32 it + lane of the 8 flattened K rows (row,
    // 16-byte column c), and the same of V; at most 2 NC × bytes of an element of them (8 rows of 128 NC elements). Rows of
    // keys before the split's begin are zero-filled. F24's low bytes are rows of their own, in their plane `lo` bytes
    // further.
    const RowWalk walk(rowBytes >> 4, lane), lowWalk(LB > 0 ? lowBytes >> 4 : 1, lane);
    const int qDim = heads * headDim, kvDim = kvHeads * headDim;
    // The slot of the next round's key (lane % 8) to issue, looked up a round ahead.
    int nextSlot = slotOf(0);
    auto issue = [&](int r, int b)
    {
        if (r < rounds)
        {
            const int slot = nextSlot;
            nextSlot = slotOf(r + 1);
            const u32 dst = mineAddr + b * slotBytes + lane * 16;
            copy_rows<2 * NC * HB>(walk, dst, kBytes, kg, vOff, kvHeads * rowBytes, slot);
            if constexpr (LB > 0)
                copy_rows<2 * NC * LB>(lowWalk, dst + DECODE_KEYS * rowBytes, kBytes, kgLow, vOff, kvHeads * lowBytes, slot);
        }
        cp_async_commit();
    };
    for (int r = 0; r < stages; r++) issue(r, r);

    int dOff[NC];
#pragma unroll
    for (int i = 0; i < NC; i++)
    {
        const int d = 4 * lane + 128 * i;
        dOff[i] = d < headDim ? d * HB : 0;
    }
    if (fused)
    {
        // Warp 0 also takes the new token's K and V rows: this lane's dimensions of them are loaded with q, before any
        // store, then written to row 0 of slot 0 and to the cache, k and v (chunk 0: the other chunks' blocks only need
        // them in shared memory).
        float4 k4[NC], v4[NC];
        const bool writes = fresh && warp == 0;
        const int slot = writes ? rope.slots[t] : -1;
#pragma unroll
        for (int i = 0; i < NC; i++)
        {
            const int d = 4 * lane + 128 * i;
            if (writes && d < headDim)
            {
                k4[i] = rotated4(rope.src, 1, t, qDim, kvh * headDim, d, rope.half, rope.interleaved, rope.cosTable, rope.sinTable);
                v4[i] = qkv_at4(rope.src, 2, t, qDim + kvDim, kvh * headDim + d);
            }
        }
        load_q();
        if (writes)
        {
            const long long dst = (long long)slot * kvDim + (long long)kvh * headDim, at = (long long)t * kvDim + (long long)kvh * headDim;
#pragma unroll
            for (int i = 0; i < NC; i++)
            {
                const int d = 4 * lane + 128 * i;
                if (d < headDim)
                {
                    const float kd[4] = { k4[i].x, k4[i].y, k4[i].z, k4[i].w }, vd[4] = { v4[i].x, v4[i].y, v4[i].z, v4[i].w };
                    store4(KV(), mine + d * HB, mine + DECODE_KEYS * rowBytes + d * LB, kd);
                    store4(KV(), mine + kBytes + d * HB, mine + kBytes + DECODE_KEYS * rowBytes + d * LB, vd);
                    if (chunk == 0)
                    {
                        if (slot >= 0)
                        {
                            store4(KV(), (char*)(kc + dst + d), (char*)kc + lo + dst + d, kd);
                            store4(KV(), (char*)(vc + dst + d), (char*)vc + lo + dst + d, vd);
                        }
                        *(float4*)(rope.k + at + d) = k4[i];
                        *(float4*)(rope.v + at + d) = v4[i];
                    }
                }
            }
            // Lanes past headDim read this row's first dims.
            __syncwarp();
        }
    }
    float acc[H][NC][4];
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int i = 0; i < NC; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[h][i][e] = 0.f;
    int kRow[DECODE_KEYS];
#pragma unroll
    for (int jj = 0; jj < DECODE_KEYS; jj++) kRow[jj] = jj ^ jx;
    // m: running maximum of this lane's heads; l: sum of exp2(score - m) over this lane's key only (added up at the end).
    float m[R], l[R];
#pragma unroll
    for (int i = 0; i < R; i++)
    {
        m[i] = NEG_INF;
        l[i] = 0.f;
    }
    for (int r = 0, b = 0; r < rounds; r++)
    {
        cp_async_wait(stages - 1);
        // Every lane's copies of round r have landed.
        __syncwarp();
        const int n = min(DECODE_KEYS, end - begin - DECODE_KEYS * (W * r + warp));
        const char* kr = mine + b * slotBytes;
        const char* vr = kr + kBytes;
        // Low bytes (F24) sit at 1 / HB of their elements' offsets in the hi rows, after the 8 hi rows.
        const char* krLow = kr + DECODE_KEYS * rowBytes;
        const char* vrLow = vr + DECODE_KEYS * rowBytes;
        if (n > 0)
        {
            float a[V];
#pragma unroll
            for (int i = 0; i < NC; i++)
#pragma unroll
                for (int jj = 0; jj < DECODE_KEYS; jj++)
                {
                    float kf[4];
                    load4(KV(), kr + kRow[jj] * rowBytes + dOff[i], krLow + kRow[jj] * lowBytes + (u32)dOff[i] / HB * LB, kf);
#pragma unroll
                    for (int hh = 0; hh < H; hh++)
                    {
                        const float dot = kf[0] * qv[hh][i][0] + kf[1] * qv[hh][i][1] + kf[2] * qv[hh][i][2] + kf[3] * qv[hh][i][3];
                        a[jj * H + hh] = i == 0 ? dot : a[jj * H + hh] + dot;
                    }
                }
            lane_sums<V, 16>(a);
            // This lane's scores are of key jx (zero-filled rows past n: masked).
#pragma unroll
            for (int i = 0; i < R; i++)
            {
                const float score = jx < n ? a[i] : NEG_INF;
                float top = fmaxf(score, __shfl_xor_sync(FULL_MASK, score, 4));
                top = fmaxf(top, __shfl_xor_sync(FULL_MASK, top, 8));
                top = fmaxf(top, __shfl_xor_sync(FULL_MASK, top, 16));
                const float mNew = fmaxf(m[i], top), corr = exp2f(m[i] - mNew), p = jx < n ? exp2f(score - mNew) : 0.f;
                l[i] = l[i] * corr + p;
                m[i] = mNew;
                pw[i ^ X] = p;
                if (jx == 0) pw[V + ((i ^ X) & (H - 1))] = corr;
            }
            __syncwarp();
            float corr[H];
            load_heads<H>(pw + V, corr);
#pragma unroll
            for (int h = 0; h < H; h++)
#pragma unroll
                for (int i = 0; i < NC; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[h][i][e] *= corr[h];
            // Rows past n are zeros with p = 0: every row is added.
#pragma unroll
            for (int jj = 0; jj < DECODE_KEYS; jj++)
            {
                float pj[H];
                load_heads<H>(pw + jj * H, pj);
#pragma unroll
                for (int i = 0; i < NC; i++)
                {
                    float v[4];
                    load4(KV(), vr + jj * rowBytes + dOff[i], vrLow + jj * lowBytes + (u32)dOff[i] / HB * LB, v);
#pragma unroll
                    for (int h = 0; h < H; h++)
#pragma unroll
                        for (int e = 0; e < 4; e++) acc[h][i][e] += pj[h] * v[e];
                }
            }
        }
        // Every lane is done with slot b (and pw) before it is refilled.
        __syncwarp();
        issue(r + stages, b);
        if (++b == stages) b = 0;
    }
#pragma unroll
    for (int i = 0; i < R; i++)
    {
        l[i] += __shfl_xor_sync(FULL_MASK, l[i], 4);
        l[i] += __shfl_xor_sync(FULL_MASK, l[i], 8);
        l[i] += __shfl_xor_sync(FULL_MASK, l[i], 16);
    }
    cp_async_wait(0);
    __syncthreads();

    // The warps' states, through shared memory (the ring is free now): [warp][head][dim] sums, then [warp][head] m and l.
    float* red = (float*)ring;
    float* redM = red + W * H * headDim;
    float* redL = redM + W * H;
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int i = 0; i < NC; i++)
        {
            const int d = 4 * lane + 128 * i;
            if (d < headDim)
                *(float4*)(red + (warp * H + h) * headDim + d) = make_float4(acc[h][i][0], acc[h][i][1], acc[h][i][2], acc[h][i][3]);
        }
    if (jx == 0)
#pragma unroll
        for (int i = 0; i < R; i++)
        {
            const int h = (i ^ X) & (H - 1);
            redM[warp * H + h] = m[i];
            redL[warp * H + h] = l[i];
        }
    __syncthreads();
    // Warp w merges heads w, w + W, ...: each lane its dims of them, a float4 at a time. Partials padded to whole
    // float4s: [headDim sums, m, l, 2 unused].
    const int stride = headDim + 4;
    for (int h = warp; h < nh; h += W)
    {
        float top = NEG_INF;
#pragma unroll
        for (int w = 0; w < W; w++) top = fmaxf(top, redM[w * H + h]);
        float f[W], sum = 0.f;
#pragma unroll
        for (int w = 0; w < W; w++)
        {
            // A warp that had no keys (m = -inf) adds nothing.
            const float mw = redM[w * H + h];
            f[w] = mw != NEG_INF ? exp2f(mw - top) : 0.f;
            sum += redL[w * H + h] * f[w];
        }
        const long long row = (long long)t * heads + h0 + h;
        float* part = partial + (row * gridDim.z + blockIdx.z) * stride;
#pragma unroll
        for (int i = 0; i < NC; i++)
        {
            const int d = 4 * lane + 128 * i;
            if (d >= headDim) continue;
            // (A warp without keys holds zeros.)
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int w = 0; w < W; w++)
            {
                const float4 x = *(const float4*)(red + (w * H + h) * headDim + d);
                a.x += x.x * f[w]; a.y += x.y * f[w]; a.z += x.z * f[w]; a.w += x.w * f[w];
            }
            if (splits == 1)
            {
                a.x /= sum; a.y /= sum; a.z /= sum; a.w /= sum;
                *(float4*)(out + row * headDim + d) = a;
                split.put4(row * headDim + d, a);
            }
            else
                *(float4*)(part + d) = a;
        }
        if (splits > 1 && lane == 0)
        {
            part[headDim] = top;
            part[headDim + 1] = sum;
        }
    }
    if (splits == 1) return;
    // Publish this split, then let the last of the splits merge them all.
    __threadfence();
    __syncthreads();
    __shared__ int lastSplit;
    if (threadIdx.x == 0)
    {
        int* counter = counters + (long long)blockIdx.x * gridDim.y + blockIdx.y;
        lastSplit = atomicAdd(counter, 1) == splits - 1;
        if (lastSplit) *counter = 0;
    }
    __syncthreads();
    if (!lastSplit) return;
    __threadfence();
    // Each split's weight exp2(m_z - max) / sum, per head (warp w takes heads w, w + W, ...), into shared memory.
    float* weight = red;
    for (int h = warp; h < nh; h += W)
    {
        const float* part = partial + ((long long)t * heads + h0 + h) * gridDim.z * stride;
        float top = NEG_INF;
        for (int z = lane; z < splits; z += 32) top = fmaxf(top, __ldcg(part + z * stride + headDim));
        top = warp_max(top);
        float sum = 0.f;
        for (int z = lane; z < splits; z += 32)
        {
            const float f = exp2f(__ldcg(part + z * stride + headDim) - top);
            weight[h * gridDim.z + z] = f;
            sum += __ldcg(part + z * stride + headDim + 1) * f;
        }
        sum = warp_sum(sum);
        __syncwarp();
        for (int z = lane; z < splits; z += 32) weight[h * gridDim.z + z] /= sum;
    }
    __syncthreads();
    // Then every thread a float4 of one head's output, the splits' loads unrolled so that many are in flight at once.
    const int quads = headDim >> 2;
    for (int i = threadIdx.x; i < nh * quads; i += blockDim.x)
    {
        const int h = i / quads, d = (i - h * quads) << 2;
        const long long row = (long long)t * heads + h0 + h;
        const float* part = partial + row * gridDim.z * stride + d;
        const float* w = weight + h * gridDim.z;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 16
        for (int z = 0; z < splits; z++)
        {
            const float4 a = __ldcg((const float4*)(part + z * stride));
            const float f = w[z];
            v.x += a.x * f; v.y += a.y * f; v.z += a.z * f; v.w += a.w * f;
        }
        *(float4*)(out + row * headDim + d) = v;
        split.put4(row * headDim + d, v);
    }
}
// attention_decode_{cache}_{H}_{NC}_{W}: up to H query heads of a KV head, up to 128 NC dims a head, W warps (2 and 3
// for heads of up to 128 dims only). Blocks of up to 4 heads of up to 128 dims keep to 128 registers a thread, so that 16
// warps an SM stay resident (batch 64 of 8 KV heads: 512 blocks of 4 warps in one wave).
#define ATTENTION_DECODE(TYPE, NAME, H, NC, W) \
    extern "C" __global__ void __launch_bounds__(32 * W, H <= 4 && NC == 1 ? 16 / W : 1) attention_decode_##NAME##_##H##_##NC##_##W(const float* q, \
        float* out, const TYPE::T* kc, const TYPE::T* vc, long long lo, const int* tokSeq, const int4* seqs, const int* tables, int heads, \
        int kvHeads, int headDim, int chunks, float scale, int blockSize, int window, int stages, int minKeys, float* partial, int* counters, \
        AttentionSplit split, DecodeRope rope) \
    { attention_decode<TYPE, H, NC, W>(q, out, kc, vc, lo, tokSeq, seqs, tables, heads, kvHeads, headDim, chunks, scale, blockSize, window, \
        stages, minKeys, partial, counters, split, rope); }
#define ATTENTION_DECODE_HEADS(TYPE, NAME, H) \
    ATTENTION_DECODE(TYPE, NAME, H, 1, 2) ATTENTION_DECODE(TYPE, NAME, H, 1, 3) ATTENTION_DECODE(TYPE, NAME, H, 1, 4) ATTENTION_DECODE(TYPE, NAME, H, 2, 4)
#define ATTENTION_DECODE_ALL(TYPE, NAME) \
    ATTENTION_DECODE_HEADS(TYPE, NAME, 1) ATTENTION_DECODE_HEADS(TYPE, NAME, 2) ATTENTION_DECODE_HEADS(TYPE, NAME, 4) ATTENTION_DECODE_HEADS(TYPE, NAME, 8)
ATTENTION_DECODE_ALL(F32, f32) ATTENTION_DECODE_ALL(BF16, bf16) ATTENTION_DECODE_ALL(F16, f16) ATTENTION_DECODE_ALL(F24, f24)
