// Prompt-step GEMMs with the activations' lo half in fp8: speed and accuracy on the Llama-3-8B prefill shapes (8192 rows).
// Today's backend multiplies the bf16 weights by the stacked [hi; lo] 16-bit split of the float32 activations (one GEMM of
// 2 × 8192 rows, float32 out). Here the lo half instead goes through an fp8 (e4m3) cuBLASLt GEMM against an fp8 copy of
// the weights, after a 16-bit hi pass of 8192 rows. Every variant's result is compared with a float64 reference on 256 of
// the rows. See README.md beside this file for the table and the decision it led to.
// On the GPU machine: nvcc -O3 -std=c++17 -arch=sm_90a fp8_lo.cu -o fp8_lo -lcublasLt -lcublas && ./fp8_lo
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cmath>
#include <vector>
#include <string>
#include <algorithm>

#define CK(x) do { auto e_ = (x); if (e_ != 0) { printf("%s:%d: %s failed: %d\n", __FILE__, __LINE__, #x, (int)e_); exit(1); } } while (0)

#if CUBLAS_VER_MAJOR > 12 || (CUBLAS_VER_MAJOR == 12 && CUBLAS_VER_MINOR >= 9)
#define HAVE_OUTER_VEC 1
#else
#define HAVE_OUTER_VEC 0
#endif

typedef unsigned short u16;
typedef unsigned char u8;

static const int Rows = 8192;   // prefill tokens: batch 64 × 128
static const int Samples = 256; // rows compared with float64 (every 32nd)
static const size_t WorkspaceBytes = 32ull << 20;

// ---- data ---------------------------------------------------------------------------------------------------------
__device__ __forceinline__ unsigned hash32(unsigned long long i, unsigned seed)
{
    unsigned long long h = (i + 1) * 0x9E3779B97F4A7C15ull ^ ((unsigned long long)seed * 0xD1B54A32D192ED03ull);
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull; h ^= h >> 33;
    return (unsigned)h;
}
__device__ float gauss(unsigned long long i, unsigned seed)
{
    float u1 = ((hash32(2 * i, seed) >> 8) + 1) * (1.f / 16777216.f);
    float u2 = (hash32(2 * i + 1, seed) >> 8) * (1.f / 16777216.f);
    return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}
// Weights N(0, 0.02) rounded to bf16.
__global__ void gen_weights(__nv_bfloat16* w, size_t count, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        w[i] = __float2bfloat16_rn(0.02f * gauss(i, seed));
}
// Activations N(0, 1); one channel in 256 scaled 20-40× (LLM outlier features), one element in 20000 ×60.
__global__ void gen_activations(float* x, int rows, int k, unsigned seed)
{
    size_t count = (size_t)rows * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
    {
        int c = (int)(i % k);
        float v = gauss(i, seed);
        if (hash32(c, seed + 7) % 256 == 0) v *= 20.f + hash32(c, seed + 9) % 21;
        if (hash32(i, seed + 3) % 20000 == 0) v *= 60.f;
        x[i] = v;
    }
}

// ---- 16-bit and fp8 conversions -----------------------------------------------------------------------------------
template <bool F16> __device__ __forceinline__ u16 to16(float v)
{
    if (F16) return __half_as_ushort(__float2half_rn(v));
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
template <bool F16> __device__ __forceinline__ float from16(u16 b)
{
    if (F16) return __half2float(__ushort_as_half(b));
    return __bfloat162float(__ushort_as_bfloat16(b));
}
__device__ __forceinline__ u8 to8(float v) { return (u8)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3); }
// The largest power of two s with amax·s ≤ 448 (e4m3's largest finite value): exact to apply and to undo.
__device__ __forceinline__ float fp8_scale(float amax)
{
    if (!(amax > 0.f)) return 1.f;
    int e = (int)floorf(log2f(448.f / amax));
    return ldexpf(1.f, max(-126, min(126, e)));
}
__device__ float block_max(float v)
{
    __shared__ float part[32];
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(~0u, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;
    if (warp == 0)
        for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(~0u, v, o));
    if (threadIdx.x == 0) part[0] = v;
    __syncthreads();
    return part[0];
}
// Today's split: hi at out[i], the remainder lo at out[count + i] (the stacked GEMM's second half).
template <bool F16> __global__ void split16(const float* x, u16* out, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
    {
        u16 h = to16<F16>(x[i]);
        out[i] = h;
        out[count + i] = to16<F16>(x[i] - from16<F16>(h));
    }
}
// One row a block: hi as 16-bit, lo = x - hi as e4m3 with the row's power-of-two scale, and 1/scale for cuBLASLt. The
// kernel the backend would run before an fp8-lo GEMM (x read twice, the second time mostly from L2).
template <bool F16> __global__ void split8_rows(const float* x, int k, u16* hi, u8* lo8, float* dequant)
{
    const size_t base = (size_t)blockIdx.x * k;
    const float4* x4 = (const float4*)(x + base);
    const int k4 = k >> 2;
    float m = 0.f;
    for (int i = threadIdx.x; i < k4; i += blockDim.x)
    {
        float4 v = x4[i];
        m = fmaxf(m, fabsf(v.x - from16<F16>(to16<F16>(v.x))));
        m = fmaxf(m, fabsf(v.y - from16<F16>(to16<F16>(v.y))));
        m = fmaxf(m, fabsf(v.z - from16<F16>(to16<F16>(v.z))));
        m = fmaxf(m, fabsf(v.w - from16<F16>(to16<F16>(v.w))));
    }
    float s = fp8_scale(block_max(m));
    if (threadIdx.x == 0) dequant[blockIdx.x] = 1.f / s;
    for (int i = threadIdx.x; i < k4; i += blockDim.x)
    {
        float4 v = x4[i];
        u16 a = to16<F16>(v.x), b = to16<F16>(v.y), c = to16<F16>(v.z), d = to16<F16>(v.w);
        ((ushort4*)(hi + base))[i] = make_ushort4(a, b, c, d);
        ((uchar4*)(lo8 + base))[i] = make_uchar4(to8((v.x - from16<F16>(a)) * s), to8((v.y - from16<F16>(b)) * s),
            to8((v.z - from16<F16>(c)) * s), to8((v.w - from16<F16>(d)) * s));
    }
}
// Per-tensor lo scale: the amax of every lo first (non-negative floats order as their bits), then the quantization.
template <bool F16> __global__ void lo_amax(const float* x, size_t count, unsigned* amax)
{
    float m = 0.f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        m = fmaxf(m, fabsf(x[i] - from16<F16>(to16<F16>(x[i]))));
    m = block_max(m);
    if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
}
// dequant gets `rows` copies of 1/scale: the same numbers through cuBLASLt's outer-vector mode as a scalar scale.
template <bool F16> __global__ void lo_tensor(const float* x, size_t count, const unsigned* amax, u8* lo8, float* dequant, int rows)
{
    float s = fp8_scale(__uint_as_float(*amax));
    size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (first < (size_t)rows) dequant[first] = 1.f / s;
    for (size_t i = first; i < count; i += (size_t)gridDim.x * blockDim.x)
        lo8[i] = to8((x[i] - from16<F16>(to16<F16>(x[i]))) * s);
}
// fp8 weights: one scale per output channel (row of W), or one for the tensor (channel = false, amax given), written as
// N copies.
__global__ void weights_fp8(const __nv_bfloat16* w, int k, u8* w8, float* dequant, const unsigned* tensorAmax)
{
    const size_t base = (size_t)blockIdx.x * k;
    float m = 0.f;
    if (tensorAmax == nullptr)
    {
        for (int i = threadIdx.x; i < k; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(w[base + i])));
        m = block_max(m);
    }
    else
        m = __uint_as_float(*tensorAmax);
    float s = fp8_scale(m);
    if (threadIdx.x == 0) dequant[blockIdx.x] = 1.f / s;
    for (int i = threadIdx.x; i < k; i += blockDim.x) w8[base + i] = to8(__bfloat162float(w[base + i]) * s);
}
__global__ void weights_amax(const __nv_bfloat16* w, size_t count, unsigned* amax)
{
    float m = 0.f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        m = fmaxf(m, fabsf(__bfloat162float(w[i])));
    m = block_max(m);
    if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
}
__global__ void bf16_to_f16(const __nv_bfloat16* w, __half* h, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        h[i] = __float2half_rn(__bfloat162float(w[i]));
}

// ---- reference and comparison -------------------------------------------------------------------------------------
// ref[s][n] = Σ_k W[n][k]·x[32 s][k] in float64: a warp per output channel, 16 sampled rows a block.
__global__ void reference(const __nv_bfloat16* w, const float* x, int n, int k, double* ref)
{
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, col = blockIdx.x * 8 + warp, s0 = blockIdx.y * 16;
    if (col >= n) return;
    double acc[16];
    for (int j = 0; j < 16; j++) acc[j] = 0.0;
    const __nv_bfloat16* wr = w + (size_t)col * k;
    for (int i = lane; i < k; i += 32)
    {
        double wv = (double)__bfloat162float(wr[i]);
#pragma unroll
        for (int j = 0; j < 16; j++) acc[j] += wv * (double)x[(size_t)(s0 + j) * (Rows / Samples) * k + i];
    }
    for (int j = 0; j < 16; j++)
    {
        double v = acc[j];
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(~0u, v, o);
        if (lane == 0) ref[(size_t)(s0 + j) * n + col] = v;
    }
}
// The sampled rows of a result: y[r] (+ the lo half's y[count + r], float32 or bf16).
__global__ void gather(const float* y, const float* lo32, const __nv_bfloat16* lo16, int n, double* out)
{
    size_t count = (size_t)Samples * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
    {
        size_t at = (i / n) * (Rows / Samples) * (size_t)n + i % n;
        double v = y[at];
        if (lo32) v += lo32[at];
        if (lo16) v += (double)__bfloat162float(lo16[at]);
        out[i] = v;
    }
}

// ---- GEMMs --------------------------------------------------------------------------------------------------------
static cudaStream_t stream;
static cublasHandle_t blas;
static cublasLtHandle_t lt;
static void* workspace;

// The backend's 16-bit GEMM: weights [n × k] (op T) × activations [rows × k] (op N), float32 out [rows × n].
static void gemm16(bool f16, const void* w, const void* x, int rows, int n, int k, float* y, float beta = 0.f)
{
    float one = 1.f;
    cudaDataType t = f16 ? CUDA_R_16F : CUDA_R_16BF;
    CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &one, w, t, k, x, t, k, &beta, y, CUDA_R_32F, n,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// An fp8 GEMM through cuBLASLt: A = fp8 weights (TN: op T on the [n × k] row-major matrix), B = fp8 activations, D of
// type dType [rows × n]; scales per tensor (scalar) or per output channel and per row (outer vectors).
struct Fp8Gemm
{
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    std::vector<cublasLtMatmulHeuristicResult_t> algos;
    int status = 0;
    std::string why;
};
static Fp8Gemm makeFp8(int n, int rows, int k, cudaDataType dType, bool outer, bool fast, const float* aScale, const float* bScale)
{
    Fp8Gemm g;
    auto ok = [&](cublasStatus_t s, const char* what) {
        if (s != CUBLAS_STATUS_SUCCESS && g.status == 0) { g.status = (int)s; g.why = what; }
        return s == CUBLAS_STATUS_SUCCESS;
    };
    ok(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT), "transa");
    ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN), "transb");
    ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &aScale, sizeof aScale), "a scale");
    ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bScale, sizeof bScale), "b scale");
    if (outer)
    {
#if HAVE_OUTER_VEC
        int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode), "a scale mode");
        ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode), "b scale mode");
#else
        ok(CUBLAS_STATUS_NOT_SUPPORTED, "outer-vector scales need cuBLAS 12.9");
#endif
    }
    int8_t fa = fast ? 1 : 0;
    ok(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fa, sizeof fa), "fast accum");
    ok(cublasLtMatrixLayoutCreate(&g.a, CUDA_R_8F_E4M3, k, n, k), "layout a");
    ok(cublasLtMatrixLayoutCreate(&g.b, CUDA_R_8F_E4M3, k, rows, k), "layout b");
    ok(cublasLtMatrixLayoutCreate(&g.c, dType, n, rows, n), "layout c");
    cublasLtMatmulPreference_t pref = nullptr;
    ok(cublasLtMatmulPreferenceCreate(&pref), "pref");
    uint64_t wsBytes = WorkspaceBytes;
    ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes, sizeof wsBytes), "pref ws");
    if (g.status == 0)
    {
        g.algos.resize(8);
        int found = 0;
        if (ok(cublasLtMatmulAlgoGetHeuristic(lt, g.desc, g.a, g.b, g.c, g.c, pref, 8, g.algos.data(), &found), "heuristic"))
        {
            g.algos.resize(found);
            if (found == 0) ok(CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm");
        }
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    return g;
}
static void freeFp8(Fp8Gemm& g)
{
    if (g.desc) cublasLtMatmulDescDestroy(g.desc);
    if (g.a) cublasLtMatrixLayoutDestroy(g.a);
    if (g.b) cublasLtMatrixLayoutDestroy(g.b);
    if (g.c) cublasLtMatrixLayoutDestroy(g.c);
    g = Fp8Gemm{};
}
static int runFp8(Fp8Gemm& g, int algo, const u8* w8, const u8* x8, void* c, void* d, float beta)
{
    float one = 1.f;
    return (int)cublasLtMatmul(lt, g.desc, &one, w8, g.a, x8, g.b, &beta, c, g.c, d, g.c, &g.algos[algo].algo, workspace,
        WorkspaceBytes, stream);
}

// µs a call: two warm-ups, then the mean of `reps`.
template <class F> static float timeIt(int reps, F&& fn)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 2; i++) fn();
    CK(cudaEventRecord(a, stream));
    for (int i = 0; i < reps; i++) fn();
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms * 1000.f / reps;
}
// The heuristic's first algorithm (what a backend would take) and the fastest of its top 8.
struct Fp8Time { float first = -1, best = -1; int bestAt = -1; };
static Fp8Time timeFp8(Fp8Gemm& g, const u8* w8, const u8* x8, void* c, void* d, float beta)
{
    Fp8Time t;
    for (int i = 0; i < (int)g.algos.size(); i++)
    {
        if (runFp8(g, i, w8, x8, c, d, beta) != 0) continue;
        float us = timeIt(10, [&] { runFp8(g, i, w8, x8, c, d, beta); });
        if (i == 0) t.first = us;
        if (t.best < 0 || us < t.best) { t.best = us; t.bestAt = i; }
    }
    CK(cudaStreamSynchronize(stream));
    return t;
}

struct Err { double rel = -1, worst = -1; };
static Err compare(const std::vector<double>& y, const std::vector<double>& ref)
{
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < ref.size(); i++)
    {
        double e = y[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
        worst = std::max(worst, std::fabs(e));
    }
    return {std::sqrt(num / den), worst / std::sqrt(den / ref.size())};
}

int main()
{
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CK(cublasCreate(&blas));
    CK(cublasSetStream(blas, stream));
    CK(cublasLtCreate(&lt));
    CK(cudaMalloc(&workspace, WorkspaceBytes));
    CK(cublasSetWorkspace(blas, workspace, WorkspaceBytes));
    printf("cuBLAS %d.%d.%d; outer-vector scales %s\n", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH,
        HAVE_OUTER_VEC ? "in the header" : "not in the header");
    // The enum values a P/Invoke binding needs, from this header.
    printf("enums: CUDA_R_8F_E4M3 %d, DESC_TRANSA %d, TRANSB %d, A_SCALE_POINTER %d, B_SCALE_POINTER %d, FAST_ACCUM %d, "
           "PREF_MAX_WORKSPACE_BYTES %d, sizeof(heuristic result) %zu",
        (int)CUDA_R_8F_E4M3, (int)CUBLASLT_MATMUL_DESC_TRANSA, (int)CUBLASLT_MATMUL_DESC_TRANSB, (int)CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
        (int)CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, (int)CUBLASLT_MATMUL_DESC_FAST_ACCUM, (int)CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
        sizeof(cublasLtMatmulHeuristicResult_t));
#if HAVE_OUTER_VEC
    printf(", A_SCALE_MODE %d, B_SCALE_MODE %d, OUTER_VEC_32F %d", (int)CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
        (int)CUBLASLT_MATMUL_DESC_B_SCALE_MODE, (int)CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
#endif
    printf("\n");

    struct Shape { const char* name; int n, k; };
    const Shape shapes[] = {{"q+k+v", 6144, 4096}, {"o", 4096, 4096}, {"gate+up", 28672, 4096}, {"down", 4096, 14336}};
    // Accuracy variants (rel L2 vs float64 over 256 rows × n) and times (µs), per shape.
    const char* accNames[] = {"bf16 split (today)", "bf16 single", "f16 single", "f16 split",
        "bf16 hi + fp8 lo, lo/tensor w/tensor", "bf16 hi + fp8 lo, lo/row w/tensor", "bf16 hi + fp8 lo, lo/tensor w/channel", "bf16 hi + fp8 lo, lo/row w/channel",
        "f16 hi + fp8 lo, lo/tensor w/tensor", "f16 hi + fp8 lo, lo/row w/tensor", "f16 hi + fp8 lo, lo/tensor w/channel", "f16 hi + fp8 lo, lo/row w/channel",
        "f16 hi + fp8 lo, lo/row w/channel, lo accumulated (beta 1)", "f16 hi + fp8 lo, lo/row w/channel, lo as bf16",
        "f16 hi + fp8 lo, lo/row w/channel, no fast accum"};
    const int AccCount = sizeof accNames / sizeof accNames[0];
    const char* timeNames[] = {"stacked bf16 split, 16384 rows", "hi bf16, 8192 rows", "hi f16, 8192 rows",
        "lo fp8 scalar scales, f32 out", "lo fp8 outer scales, f32 out", "lo fp8 outer, f32 accumulated into hi (beta 1)",
        "lo fp8 outer, bf16 out", "lo fp8 outer, f32 out, no fast accum", "split16 kernel (x -> hi|lo 16-bit)", "split8 kernel (x -> hi 16-bit + lo e4m3 + row scale)"};
    const int TimeCount = sizeof timeNames / sizeof timeNames[0];
    std::vector<std::vector<Err>> acc(4, std::vector<Err>(AccCount));
    std::vector<std::vector<float>> times(4, std::vector<float>(TimeCount, -1.f)), bestTimes(4, std::vector<float>(TimeCount, -1.f));

    for (int si = 0; si < 4; si++)
    {
        const Shape sh = shapes[si];
        const int n = sh.n, k = sh.k;
        const size_t wCount = (size_t)n * k, xCount = (size_t)Rows * k, yCount = (size_t)Rows * n;
        __nv_bfloat16* w;
        __half* wh;
        u8 *w8t, *w8c, *hiLo8[4];
        float *x, *y, *wScaleT, *wScaleC, *loScale[4];
        u16 *split, *hi8[2];
        __nv_bfloat16* loBf16;
        double *ref, *got;
        unsigned* amax;
        CK(cudaMalloc(&w, wCount * 2));
        CK(cudaMalloc(&wh, wCount * 2));
        CK(cudaMalloc(&w8t, wCount));
        CK(cudaMalloc(&w8c, wCount));
        CK(cudaMalloc(&wScaleT, n * 4));
        CK(cudaMalloc(&wScaleC, n * 4));
        CK(cudaMalloc(&x, xCount * 4));
        CK(cudaMalloc(&split, xCount * 4));
        for (int i = 0; i < 2; i++) CK(cudaMalloc(&hi8[i], xCount * 2));
        for (int i = 0; i < 4; i++) { CK(cudaMalloc(&hiLo8[i], xCount)); CK(cudaMalloc(&loScale[i], Rows * 4)); }
        CK(cudaMalloc(&y, 2 * yCount * 4));
        CK(cudaMalloc(&loBf16, yCount * 2));
        CK(cudaMalloc(&ref, (size_t)Samples * n * 8));
        CK(cudaMalloc(&got, (size_t)Samples * n * 8));
        CK(cudaMalloc(&amax, 4 * sizeof(unsigned)));
        CK(cudaMemsetAsync(amax, 0, 4 * sizeof(unsigned), stream));

        gen_weights<<<4096, 256, 0, stream>>>(w, wCount, 11 + si);
        gen_activations<<<4096, 256, 0, stream>>>(x, Rows, k, 101 + si);
        bf16_to_f16<<<4096, 256, 0, stream>>>(w, wh, wCount);
        weights_amax<<<1024, 256, 0, stream>>>(w, wCount, amax + 0);
        weights_fp8<<<n, 256, 0, stream>>>(w, k, w8t, wScaleT, amax + 0);
        weights_fp8<<<n, 256, 0, stream>>>(w, k, w8c, wScaleC, nullptr);
        // lo planes: [0] bf16 hi per tensor, [1] bf16 hi per row, [2] f16 hi per tensor, [3] f16 hi per row.
        lo_amax<false><<<1024, 256, 0, stream>>>(x, xCount, amax + 1);
        lo_tensor<false><<<4096, 256, 0, stream>>>(x, xCount, amax + 1, hiLo8[0], loScale[0], Rows);
        split8_rows<false><<<Rows, 256, 0, stream>>>(x, k, hi8[0], hiLo8[1], loScale[1]);
        lo_amax<true><<<1024, 256, 0, stream>>>(x, xCount, amax + 2);
        lo_tensor<true><<<4096, 256, 0, stream>>>(x, xCount, amax + 2, hiLo8[2], loScale[2], Rows);
        split8_rows<true><<<Rows, 256, 0, stream>>>(x, k, hi8[1], hiLo8[3], loScale[3]);
        reference<<<dim3((n + 7) / 8, Samples / 16), 256, 0, stream>>>(w, x, n, k, ref);
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(stream));
        std::vector<double> hRef((size_t)Samples * n), hGot((size_t)Samples * n);
        CK(cudaMemcpy(hRef.data(), ref, hRef.size() * 8, cudaMemcpyDeviceToHost));
        auto measure = [&](int variant, const float* lo32, const __nv_bfloat16* lo16) {
            gather<<<1024, 256, 0, stream>>>(y, lo32, lo16, n, got);
            CK(cudaGetLastError());
            CK(cudaStreamSynchronize(stream));
            CK(cudaMemcpy(hGot.data(), got, hGot.size() * 8, cudaMemcpyDeviceToHost));
            acc[si][variant] = compare(hGot, hRef);
        };
        float* yLo = y + yCount;

        // Today's split (bf16 and, for reference, f16) and single 16-bit passes.
        split16<false><<<4096, 256, 0, stream>>>(x, split, xCount);
        gemm16(false, w, split, 2 * Rows, n, k, y);
        measure(0, yLo, nullptr);
        times[si][0] = timeIt(10, [&] { gemm16(false, w, split, 2 * Rows, n, k, y); });
        gemm16(false, w, split, Rows, n, k, y);
        measure(1, nullptr, nullptr);
        times[si][1] = timeIt(10, [&] { gemm16(false, w, split, Rows, n, k, y); });
        times[si][8] = timeIt(10, [&] { split16<false><<<4096, 256, 0, stream>>>(x, split, xCount); });
        split16<true><<<4096, 256, 0, stream>>>(x, split, xCount);
        gemm16(true, wh, split, Rows, n, k, y);
        measure(2, nullptr, nullptr);
        times[si][2] = timeIt(10, [&] { gemm16(true, wh, split, Rows, n, k, y); });
        gemm16(true, wh, split, 2 * Rows, n, k, y);
        measure(3, yLo, nullptr);
        times[si][9] = timeIt(10, [&] { split8_rows<true><<<Rows, 256, 0, stream>>>(x, k, hi8[1], hiLo8[3], loScale[3]); });
        CK(cudaGetLastError());

        // hi pass + fp8 lo pass into the lo half, every scale combination (outer vectors where cuBLASLt has them).
        for (int hiF16 = 0; hiF16 < 2; hiF16++)
            for (int combo = 0; combo < 4; combo++)
            {
                bool rowLo = combo & 1, channelW = combo & 2;
                int plane = 2 * hiF16 + (rowLo ? 1 : 0);
                bool outer = rowLo || channelW;
                Fp8Gemm g = makeFp8(n, Rows, k, CUDA_R_32F, outer, true, channelW ? wScaleC : wScaleT, loScale[plane]);
                int variant = 4 + 4 * hiF16 + combo;
                if (g.status != 0)
                {
                    printf("%s %s: not run (%s: status %d)\n", sh.name, accNames[variant], g.why.c_str(), g.status);
                    freeFp8(g);
                    continue;
                }
                gemm16(hiF16, hiF16 ? (const void*)wh : (const void*)w, hi8[hiF16], Rows, n, k, y);
                int s = runFp8(g, 0, channelW ? w8c : w8t, hiLo8[plane], yLo, yLo, 0.f);
                if (s != 0) printf("%s %s: cublasLtMatmul status %d\n", sh.name, accNames[variant], s);
                else measure(variant, yLo, nullptr);
                freeFp8(g);
            }

        // The f16-hi, row/channel variant's other forms, and the fp8 pass's times.
        auto fp8Times = [&](int slot, Fp8Gemm& g, void* c, void* d, float beta) {
            Fp8Time t = timeFp8(g, w8c, hiLo8[3], c, d, beta);
            times[si][slot] = t.first;
            bestTimes[si][slot] = t.best;
        };
        {
            Fp8Gemm g = makeFp8(n, Rows, k, CUDA_R_32F, false, true, wScaleT, loScale[2]);
            if (g.status == 0) fp8Times(3, g, yLo, yLo, 0.f);
            else printf("%s scalar-scale fp8: %s status %d\n", sh.name, g.why.c_str(), g.status);
            freeFp8(g);
        }
        {
            Fp8Gemm g = makeFp8(n, Rows, k, CUDA_R_32F, true, true, wScaleC, loScale[3]);
            if (g.status == 0)
            {
                fp8Times(4, g, yLo, yLo, 0.f);
                // beta 1: C = D = the hi pass's result, which then holds the sum.
                gemm16(true, wh, hi8[1], Rows, n, k, y);
                if (runFp8(g, 0, w8c, hiLo8[3], y, y, 1.f) == 0) measure(12, nullptr, nullptr);
                fp8Times(5, g, y, y, 1.f);
            }
            freeFp8(g);
        }
        {
            Fp8Gemm g = makeFp8(n, Rows, k, CUDA_R_16BF, true, true, wScaleC, loScale[3]);
            if (g.status == 0)
            {
                gemm16(true, wh, hi8[1], Rows, n, k, y);
                if (runFp8(g, 0, w8c, hiLo8[3], loBf16, loBf16, 0.f) == 0) measure(13, nullptr, loBf16);
                fp8Times(6, g, loBf16, loBf16, 0.f);
            }
            else printf("%s bf16-out fp8: %s status %d\n", sh.name, g.why.c_str(), g.status);
            freeFp8(g);
        }
        {
            Fp8Gemm g = makeFp8(n, Rows, k, CUDA_R_32F, true, false, wScaleC, loScale[3]);
            if (g.status == 0)
            {
                gemm16(true, wh, hi8[1], Rows, n, k, y);
                if (runFp8(g, 0, w8c, hiLo8[3], yLo, yLo, 0.f) == 0) measure(14, yLo, nullptr);
                fp8Times(7, g, yLo, yLo, 0.f);
            }
            freeFp8(g);
        }
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(stream));
        void* all[] = {w, wh, w8t, w8c, wScaleT, wScaleC, x, split, hi8[0], hi8[1], y, loBf16, ref, got, amax};
        for (void* p : all) CK(cudaFree(p));
        for (int i = 0; i < 4; i++) { CK(cudaFree(hiLo8[i])); CK(cudaFree(loScale[i])); }
        printf("%s done\n", sh.name);
        fflush(stdout);
    }

    printf("\n## Accuracy: rel L2 vs float64 (worst |error| / rms of the result), 256 rows x n\n\n| variant | q+k+v | o | gate+up | down |\n| --- | --- | --- | --- | --- |\n");
    for (int v = 0; v < AccCount; v++)
    {
        printf("| %s |", accNames[v]);
        for (int si = 0; si < 4; si++)
            if (acc[si][v].rel < 0) printf(" n/a |");
            else printf(" %.2e (%.1e) |", acc[si][v].rel, acc[si][v].worst);
        printf("\n");
    }
    printf("\n## Time, µs a call (heuristic's first algorithm; fastest of its top 8 in brackets)\n\n| step | q+k+v | o | gate+up | down | x32 layers, ms |\n| --- | --- | --- | --- | --- | --- |\n");
    for (int t = 0; t < TimeCount; t++)
    {
        printf("| %s |", timeNames[t]);
        double sum = 0;
        bool all = true;
        for (int si = 0; si < 4; si++)
        {
            float us = times[si][t];
            if (us < 0) { printf(" n/a |"); all = false; continue; }
            sum += us;
            if (bestTimes[si][t] >= 0 && bestTimes[si][t] < us * 0.98f) printf(" %.0f (%.0f) |", us, bestTimes[si][t]);
            else printf(" %.0f |", us);
        }
        if (all) printf(" %.1f |\n", sum * 32 / 1000);
        else printf(" |\n");
    }
    // The two-pass total against today's stacked GEMM, with the fp8 pass as it would run (first algorithm).
    printf("\n## Two passes (f16 hi + fp8 lo, outer scales) against the stacked split, ms over 4 GEMMs x 32 layers\n\n");
    double stacked = 0, f32out = 0, accum = 0;
    bool ok = true;
    for (int si = 0; si < 4; si++)
    {
        ok &= times[si][4] >= 0 && times[si][5] >= 0;
        stacked += times[si][0];
        f32out += times[si][2] + times[si][4];
        accum += times[si][2] + times[si][5];
    }
    if (ok)
        printf("stacked %.1f ms; hi + lo (f32 out) %.1f ms, saves %.1f; hi + lo accumulated (beta 1) %.1f ms, saves %.1f\n",
            stacked * 32 / 1000, f32out * 32 / 1000, (stacked - f32out) * 32 / 1000, accum * 32 / 1000, (stacked - accum) * 32 / 1000);
    else
        printf("the outer-scale fp8 pass did not run\n");
    return 0;
}
