// ---- token choice on the device: IComputeBackend.Sample's definition, one 1024-thread block per logit row ---------
// Each row's parameters are 8 words: temperature, top_k (int bits), top_p, repetition, presence, frequency, uniform,
// flags (int bits: SAMPLE_GREEDY, SAMPLE_LOGPROB). Penalised and banned tokens come as CSR lists (offsets per row).
// A sampled row's candidates are ordered by (probability descending, index ascending) without sorting the row:
// e = exp(x/T - max) is stored over the logits, and as e >= 0 its bit pattern, read as an int, orders like its value. A
// prefix of that order is "every element of bits > b, and of bits == b with index <= i"; bisection on b and then on i
// finds where a running count or sum reaches a target (the top-k cut, the top-p cut, the pick). Sums are per thread in
// index order and then over a fixed tree, so a larger prefix never sums to less: the searches see a monotone function
// and the pick always lies inside the kept prefix. Once at most SAMPLE_SMALL candidates are kept, or a row's largest
// few (found by one "ladder" pass over fixed thresholds) are known to hold the top-k, the top-p cut or the pick, those are
// sorted in shared memory and one thread finishes as the host does, summing in double.

#define SAMPLE_GREEDY 1
#define SAMPLE_LOGPROB 2
#define SAMPLE_ALL 0x7fffffff

// Per-warp partial results of the block reductions, and (at [32]) the block's result.
struct SampleShared
{
    float f[33];
    int i[33];
    int c[33];
};

// Sum of s and of c over the block; every thread gets both. Starts with a barrier, so consecutive calls never overwrite
// a result that a thread is still reading.
__device__ void sample_sum(float& s, int& c, SampleShared& sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    s = warp_sum(s);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(FULL_MASK, c, o);
    __syncthreads();
    if (lane == 0) { sh.f[warp] = s; sh.i[warp] = c; }
    __syncthreads();
    if (warp == 0)
    {
        s = lane < warps ? sh.f[lane] : 0.f;
        c = lane < warps ? sh.i[lane] : 0;
        s = warp_sum(s);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(FULL_MASK, c, o);
        if (lane == 0) { sh.f[32] = s; sh.i[32] = c; }
    }
    __syncthreads();
    s = sh.f[32];
    c = sh.i[32];
}

// Maximum of v over the block (NaN ignored, as fmaxf does); every thread gets it.
__device__ float sample_max(float v, SampleShared& sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh.f[warp] = v;
    __syncthreads();
    if (warp == 0)
    {
        v = warp_max(lane < warps ? sh.f[lane] : NEG_INF);
        if (lane == 0) sh.f[32] = v;
    }
    __syncthreads();
    return sh.f[32];
}

// Minimum of v and sum of c over the block; every thread gets both.
__device__ void sample_min_count(int& v, int& c, SampleShared& sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) { v = min(v, __shfl_xor_sync(FULL_MASK, v, o)); c += __shfl_xor_sync(FULL_MASK, c, o); }
    __syncthreads();
    if (lane == 0) { sh.i[warp] = v; sh.c[warp] = c; }
    __syncthreads();
    if (warp == 0)
    {
        v = lane < warps ? sh.i[lane] : SAMPLE_ALL;
        c = lane < warps ? sh.c[lane] : 0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) { v = min(v, __shfl_xor_sync(FULL_MASK, v, o)); c += __shfl_xor_sync(FULL_MASK, c, o); }
        if (lane == 0) { sh.i[32] = v; sh.c[32] = c; }
    }
    __syncthreads();
    v = sh.i[32];
    c = sh.c[32];
}

// The block's first largest value and its index, by argmax_rows' rules (a NaN beats any number); every thread gets them.
__device__ void sample_argmax(float& best, int& index, SampleShared& sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
    {
        float v = __shfl_xor_sync(FULL_MASK, best, o);
        int i = __shfl_xor_sync(FULL_MASK, index, o);
        if (argmax_better(v, i, best, index)) { best = v; index = i; }
    }
    __syncthreads();
    if (lane == 0) { sh.f[warp] = best; sh.i[warp] = index; }
    __syncthreads();
    if (warp == 0)
    {
        best = lane < warps ? sh.f[lane] : NEG_INF;
        index = lane < warps ? sh.i[lane] : SAMPLE_ALL;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
        {
            float v = __shfl_xor_sync(FULL_MASK, best, o);
            int i = __shfl_xor_sync(FULL_MASK, index, o);
            if (argmax_better(v, i, best, index)) { best = v; index = i; }
        }
        if (lane == 0) { sh.f[32] = best; sh.i[32] = index; }
    }
    __syncthreads();
    best = sh.f[32];
    index = sh.i[32];
}

// Calls f(value, index) for this thread's elements of the row, in increasing index order, with SAMPLE_UNROLL loads in
// flight: a pass over a row is bound by load latency, not bandwidth.
#define SAMPLE_UNROLL 16
template <class F>
__device__ __forceinline__ void sample_each(const float* e, int width, F f)
{
    const int step = blockDim.x;
    for (int base = threadIdx.x; base < width; base += SAMPLE_UNROLL * step)
    {
        float v[SAMPLE_UNROLL];
#pragma unroll
        for (int k = 0; k < SAMPLE_UNROLL; k++) { int i = base + k * step; v[k] = i < width ? e[i] : 0.f; }
#pragma unroll
        for (int k = 0; k < SAMPLE_UNROLL; k++) { int i = base + k * step; if (i < width) f(v[k], i); }
    }
}

// Whether the element (bits b, index i) is in the prefix that ends with the element (bits pb, index pi).
__device__ __forceinline__ bool sample_upto(int b, int i, int pb, int pi) { return b > pb || (b == pb && i <= pi); }

// Sum and count of the elements in both the prefix ending at (pb, pi) and the kept prefix ending at (kb, ki).
__device__ void sample_prefix(const float* e, int width, int pb, int pi, int kb, int ki, float& sum, int& count, SampleShared& sh)
{
    float s = 0.f;
    int c = 0;
    sample_each(e, width, [&](float v, int i)
    {
        int b = __float_as_int(v);
        if (sample_upto(b, i, pb, pi) && sample_upto(b, i, kb, ki)) { s += v; c++; }
    });
    sample_sum(s, c, sh);
    sum = s;
    count = c;
}

// The smallest index >= from of a kept element whose bits are b, and how many there are.
__device__ void sample_first_of(const float* e, int width, int b, int from, int kb, int ki, int& index, int& count, SampleShared& sh)
{
    int v = SAMPLE_ALL, c = 0;
    sample_each(e, width, [&](float value, int i)
    {
        int bits = __float_as_int(value);
        if (bits == b && i >= from && sample_upto(bits, i, kb, ki)) { v = min(v, i); c++; }
    });
    sample_min_count(v, c, sh);
    index = v;
    count = c;
}

// The first kept element, in order, at which the running sum (bySum) or count reaches its target, as (vb, vi); false when
// the whole kept prefix falls short. top is the largest value's bits.
__device__ bool sample_locate(const float* e, int width, int top, int kb, int ki, bool bySum, float sumTarget, int countTarget,
    int& vb, int& vi, SampleShared& sh)
{
    float s;
    int c;
    sample_prefix(e, width, kb, ki, kb, ki, s, c, sh);
    if (!(bySum ? s >= sumTarget : c >= countTarget)) return false;
    // The largest bits lo such that the elements of bits >= lo reach the target: every kept element has bits >= kb, so
    // lo = kb qualifies, and hi is past the largest value.
    int lo = kb, hi = top + 1;
    while (hi - lo > 1)
    {
        int mid = lo + (hi - lo) / 2;
        sample_prefix(e, width, mid, SAMPLE_ALL, kb, ki, s, c, sh);
        if (bySum ? s >= sumTarget : c >= countTarget) lo = mid; else hi = mid;
    }
    int first, ties;
    sample_first_of(e, width, lo, 0, kb, ki, first, ties, sh);
    if (ties > 1)
    {
        // Equal values in index order: the smallest index at which the prefix reaches the target, then the first
        // element of value lo from there (the prefix only grows at such elements).
        int il = -1, ih = width - 1;
        while (ih - il > 1)
        {
            int mid = il + (ih - il) / 2;
            sample_prefix(e, width, lo, mid, kb, ki, s, c, sh);
            if (bySum ? s >= sumTarget : c >= countTarget) ih = mid; else il = mid;
        }
        sample_first_of(e, width, lo, ih, kb, ki, first, ties, sh);
    }
    vb = lo;
    vi = first;
    return true;
}

// A kept prefix of at most this many elements is sorted in shared memory, one key per thread of the 1024-thread block,
// and scanned in order by one thread as the host does, instead of searched by bisection.
#define SAMPLE_SMALL 1024

// Sorts the kept prefix ending at (kb, ki), of at most SAMPLE_SMALL elements, into keys[] in order: keys hold the value's
// bits above the complemented index and sort descending; unused slots hold 0, which sorts last.
__device__ void sample_sort_kept(const float* e, int width, int kb, int ki, unsigned long long* keys, int* filled)
{
    keys[threadIdx.x] = 0ull;
    if (threadIdx.x == 0) *filled = 0;
    __syncthreads();
    sample_each(e, width, [&](float v, int i)
    {
        int b = __float_as_int(v);
        if (sample_upto(b, i, kb, ki)) keys[atomicAdd(filled, 1)] = ((unsigned long long)(unsigned)b << 32) | (unsigned)~i;
    });
    __syncthreads();
    // Bitonic sort: every stage's pairs are disjoint, so each thread compares and swaps its own pair.
    for (int k = 2; k <= SAMPLE_SMALL; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1)
        {
            int t = threadIdx.x, partner = t ^ j;
            if (partner > t)
            {
                unsigned long long a = keys[t], b = keys[partner];
                if ((t & k) == 0 ? a < b : a > b) { keys[t] = b; keys[partner] = a; }
            }
            __syncthreads();
        }
}

// Thresholds on e (bit patterns of 2^-1, 2^-2, 2^-3, 2^-5, 2^-7, 2^-10, 2^-14, 2^-20) that one pass measures at once.
#define SAMPLE_LADDER 8
__constant__ int sample_ladder_bits[SAMPLE_LADDER] =
    { 0x3f000000, 0x3e800000, 0x3e000000, 0x3d000000, 0x3c000000, 0x3a800000, 0x38800000, 0x35800000 };

// Among the kept prefix's elements of e >= each threshold, the largest such set of at most SAMPLE_SMALL elements: its
// threshold's bits (-1 when none qualifies), sum and count.
__device__ void sample_ladder(const float* e, int width, int kb, int ki, int& bits, float& sum, int& count, SampleShared& sh)
{
    float s[SAMPLE_LADDER];
    int c[SAMPLE_LADDER];
#pragma unroll
    for (int l = 0; l < SAMPLE_LADDER; l++) { s[l] = 0.f; c[l] = 0; }
    sample_each(e, width, [&](float v, int i)
    {
        int b = __float_as_int(v);
        if (!sample_upto(b, i, kb, ki)) return;
#pragma unroll
        for (int l = 0; l < SAMPLE_LADDER; l++)
            if (b >= sample_ladder_bits[l]) { s[l] += v; c[l]++; }
    });
    bits = -1;
    sum = 0.f;
    count = 0;
#pragma unroll
    for (int l = 0; l < SAMPLE_LADDER; l++)
    {
        sample_sum(s[l], c[l], sh);
        if (c[l] <= SAMPLE_SMALL) { bits = sample_ladder_bits[l]; sum = s[l]; count = c[l]; }
    }
}

__device__ __forceinline__ double sample_weight(unsigned long long key) { return __int_as_float((int)(key >> 32)); }

extern "C" __global__ void __launch_bounds__(1024) sample_rows(float* logits, int width, const float* params,
    const int* penaltyOffsets, const int* penaltyTokens, const int* penaltyCounts, const int* banOffsets, const int* banTokens,
    int* ids, float* logProbs)
{
    __shared__ SampleShared sh;
    __shared__ unsigned long long keys[SAMPLE_SMALL];
    __shared__ int filled;
    const int row = blockIdx.x;
    float* x = logits + (long long)row * width;
    const float* p = params + 8 * row;
    const float temperature = p[0], topP = p[2], repetition = p[3], presence = p[4], frequency = p[5], uniform = p[6];
    const int topK = __float_as_int(p[1]), flags = __float_as_int(p[7]);

    // Penalties, rounded step by step as the host does (no fused multiply-add); a row lists each token once, so the
    // thread that reads a token is the only one that writes it.
    for (int j = penaltyOffsets[row] + threadIdx.x; j < penaltyOffsets[row + 1]; j += blockDim.x)
    {
        int t = penaltyTokens[j], c = penaltyCounts[j];
        if (t < 0 || t >= width) continue;
        float v = x[t];
        v = v > 0.f ? __fdiv_rn(v, repetition) : __fmul_rn(v, repetition);
        if (c > 0) v = __fsub_rn(v, __fadd_rn(presence, __fmul_rn(frequency, (float)c)));
        x[t] = v;
    }
    __syncthreads();
    for (int j = banOffsets[row] + threadIdx.x; j < banOffsets[row + 1]; j += blockDim.x)
    {
        int t = banTokens[j];
        if (t >= 0 && t < width) x[t] = NEG_INF;
    }
    __syncthreads();

    if (flags & SAMPLE_GREEDY)
    {
        float best = NEG_INF;
        int index = SAMPLE_ALL;
        for (int i = threadIdx.x; i < width; i += blockDim.x)
        {
            float v = x[i];
            if (argmax_better(v, i, best, index)) { best = v; index = i; }
        }
        sample_argmax(best, index, sh);
        float lp = 0.f;
        if (flags & SAMPLE_LOGPROB)
        {
            // logit - logsumexp about the largest logit (NaN when it is NaN or -inf, as on the host).
            float s = 0.f;
            int unused = 0;
            for (int i = threadIdx.x; i < width; i += blockDim.x) s += expf(x[i] - best);
            sample_sum(s, unused, sh);
            lp = best - (best + logf(s));
        }
        if (threadIdx.x == 0) { ids[row] = min(index, width - 1); logProbs[row] = lp; }
        return;
    }

    float m = NEG_INF;
    for (int i = threadIdx.x; i < width; i += blockDim.x) m = fmaxf(m, __fdiv_rn(x[i], temperature));
    m = sample_max(m, sh);
    // Each thread rewrites only the elements it read, so no barrier is needed between the two loops' accesses.
    float total = 0.f, largest = 0.f;
    for (int i = threadIdx.x; i < width; i += blockDim.x)
    {
        float e = expf(__fdiv_rn(x[i], temperature) - m);
        x[i] = e;
        total += e;
        largest = fmaxf(largest, e);
    }
    int count = 0;
    sample_sum(total, count, sh);
    const int top = __float_as_int(sample_max(largest, sh));

    // The kept prefix, as its last element (kb, ki); at first every element. A peaked row's largest few (a ladder set:
    // e >= a threshold, at most SAMPLE_SMALL of them) often hold the top-k, the top-p cut or the pick: then they are
    // sorted and scanned below instead of searched by bisection over the whole row.
    int kb = 0, ki = SAMPLE_ALL, vb, vi, bits, fewCount;
    float few;
    int limit = width;  // how many of the sorted candidates the scan may keep (top-k)
    if (topK > 0 && topK < width)
    {
        sample_ladder(x, width, kb, ki, bits, few, fewCount, sh);
        if (bits >= 0 && fewCount >= topK) { kb = bits; limit = topK; }
        else if (sample_locate(x, width, top, kb, ki, false, 0.f, topK, vb, vi, sh)) { kb = vb; ki = vi; }
    }
    float kept;
    sample_prefix(x, width, kb, ki, kb, ki, kept, count, sh);
    // Top-p on too many candidates to sort: among the largest few when they reach the mass, else by bisection, where a
    // failed search (rounding) keeps them all.
    bool cutTopP = false;
    if (count > SAMPLE_SMALL && topP < 1.f)
    {
        sample_ladder(x, width, kb, ki, bits, few, fewCount, sh);
        if (bits >= 0 && few >= topP * total)
        {
            kb = bits;
            ki = SAMPLE_ALL;
            sample_prefix(x, width, kb, ki, kb, ki, kept, count, sh);
        }
        else if (sample_locate(x, width, top, kb, ki, true, topP * total, 0, vb, vi, sh))
        {
            kb = vb;
            ki = vi;
            cutTopP = true;
            sample_prefix(x, width, kb, ki, kb, ki, kept, count, sh);
        }
    }
    // Still too many: the pick lies among the largest few when they reach r (then `kept` stays the whole kept sum).
    bool partial = false;
    if (count > SAMPLE_SMALL)
    {
        sample_ladder(x, width, kb, ki, bits, few, fewCount, sh);
        partial = bits >= 0 && few >= uniform * kept;
    }
    if (count <= SAMPLE_SMALL || partial)
    {
        // A ladder set is itself a prefix of the kept one (it holds fewer elements, so its threshold is above kb).
        if (partial) { kb = bits; ki = SAMPLE_ALL; count = fewCount; }
        sample_sort_kept(x, width, kb, ki, keys, &filled);
        if (threadIdx.x != 0) return;
        // The host's scan: top-k, the top-p cut (unless made above), then the pick, summing in double.
        int n = min(count, limit);
        if (topP < 1.f && !cutTopP && !partial)
        {
            double mass = (double)topP * total, cumulative = 0;
            for (int j = 0; j < n; j++)
            {
                cumulative += sample_weight(keys[j]);
                if (cumulative >= mass) { n = j + 1; break; }
            }
        }
        double sum = 0;
        if (partial) sum = kept;
        else for (int j = 0; j < n; j++) sum += sample_weight(keys[j]);
        double r = (double)uniform * sum, running = 0;
        int chosen = n > 0 ? n - 1 : 0;
        for (int j = 0; j < n; j++)
        {
            running += sample_weight(keys[j]);
            if (running >= r) { chosen = j; break; }
        }
        unsigned index = ~(unsigned)keys[chosen];
        ids[row] = index < (unsigned)width ? (int)index : width - 1;
        logProbs[row] = (flags & SAMPLE_LOGPROB) ? (float)log(sample_weight(keys[chosen]) / sum) : 0.f;
        return;
    }
    // Many candidates: the pick by bisection. The kept prefix sums to exactly `kept` in sample_locate too, and
    // uniform <= 1, so the target is always reached (the fallback serves rows with NaN).
    if (!sample_locate(x, width, top, kb, ki, true, uniform * kept, 0, vb, vi, sh)) vi = ki;
    if (threadIdx.x == 0)
    {
        int id = min(vi, width - 1);
        ids[row] = id;
        logProbs[row] = (flags & SAMPLE_LOGPROB) ? logf(__fdiv_rn(x[id], kept)) : 0.f;
    }
}
