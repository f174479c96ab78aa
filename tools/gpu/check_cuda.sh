#!/usr/bin/env bash
# Correctness and speed of the CUDA backend on the GPU machine. Run from the repository root there:
#   tools/gpu/check_cuda.sh fixtures        operations on random inputs, and tiny fixtures against transformers (greedy ids, last logits)
#   tools/gpu/check_cuda.sh all             + random Llama-3-8B-shaped bf16 checkpoint (TOKENS=256 teacher positions):
#                                           accuracy of every precision option, throughput, TTFT, profile; then the
#                                           qwen stage
#   tools/gpu/check_cuda.sh speed           as all, with the default options' accuracy only, plus throughput with fusion off
#   tools/gpu/check_cuda.sh qwen            only a random Qwen2-7B-shaped bf16 checkpoint (q/k/v biases) and the default
#                                           options' accuracy on it, batch 1 and 64 (no ops, fixtures or Llama)
#   tools/gpu/check_cuda.sh cli             `turbine run --device cuda` against `--device cpu` on the fixtures; needs
#                                           .cuda-pack/turbine.tar.xz (pack.sh src/Turbine.Cli/Turbine.Cli.csproj turbine)
# Checkpoints: tools/gpu/make_checkpoint.py llama3-8b /tmp/llama8b, qwen2-7b /tmp/qwen7b (each made when missing or
# made for another TOKENS; kept for the next call on a warm machine).
# Needs the self-contained bench published here first (no .NET on the GPU machine):
#   ../shared/device/pack.sh bench/Turbine.Bench.Cuda/Turbine.Bench.Cuda.csproj bench; cp .device/bench.tar.xz .cuda-pack/
# and the call carrying .cuda-pack. Logs go to $OUT (or /tmp/cuda-check).
set -uo pipefail
stage=${1:-fixtures}
case $stage in
    fixtures|all|speed|qwen|cli) ;;
    *) echo "usage: tools/gpu/check_cuda.sh [fixtures|all|speed|qwen|cli]" >&2; exit 2 ;;
esac
out=${OUT:-/tmp/cuda-check}
mkdir -p "$out" /tmp/tb
if [ "$stage" = cli ]; then
    mkdir -p /tmp/tc && tar xJf .cuda-pack/turbine.tar.xz -C /tmp/tc || exit 1
    {
    status=0
    for m in tests/fixtures/models/*/; do
        for d in cpu cuda auto; do
            TURBINE_CUDA_CACHE=/tmp/turbine-kernels /tmp/tc/turbine run --device $d --model "$m" --input_text "In the beginning" \
                --input_text "无锡有什么好吃的" --max_output_len 24 --ignore_eos --json > "/tmp/tc/$d.json" 2>&1 || status=1
        done
        same=$(cmp -s <(grep -o '"output_ids":[^]]*' /tmp/tc/cpu.json) <(grep -o '"output_ids":[^]]*' /tmp/tc/cuda.json) && echo same || echo DIFFERENT)
        auto=$(cmp -s <(grep -o '"output_ids":[^]]*' /tmp/tc/cpu.json) <(grep -o '"output_ids":[^]]*' /tmp/tc/auto.json) && echo same || echo DIFFERENT)
        [ "$same" = same ] || status=1
        echo "$(basename "$m"): cuda ids vs cpu: $same; auto vs cpu: $auto"
        cat /tmp/tc/cuda.json
    done
    exit $status
    } 2>&1 | tee "$out/cli.log"
    exit
fi
tar xJf "${PACK:-.cuda-pack/bench.tar.xz}" -C /tmp/tb || exit 1
bench=/tmp/tb/Turbine.Bench.Cuda
export TURBINE_CUDA_CACHE=/tmp/turbine-kernels
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
status=0
if [ "$stage" != qwen ]; then
    fixtures=(tests/fixtures/models/*/)
    echo "== every operation on random inputs, CUDA against the CPU backend =="
    $bench ops 2>&1 | tee "$out/ops.log" || status=1
    echo "== fixtures (default options) =="
    $bench fixtures "${fixtures[@]}" 2>&1 | tee "$out/fixtures.log" || status=1
    if [ "$stage" != speed ]; then
        echo "== fixtures, graphs off; float32 KV cache; f16 GEMMs and KV cache; bf16 KV cache and single bf16 GEMM activations =="
        TURBINE_CUDA_GRAPHS=0 $bench fixtures "${fixtures[@]}" 2>&1 | sed 's/^/graphs-off /' | tee "$out/fixtures-variants.log"
        TURBINE_CUDA_KV=f32 $bench fixtures "${fixtures[@]}" 2>&1 | sed 's/^/kv-f32 /' | tee -a "$out/fixtures-variants.log"
        TURBINE_CUDA_KV=f16 TURBINE_CUDA_GEMM=f16 $bench fixtures "${fixtures[@]}" 2>&1 | sed 's/^/f16 /' | tee -a "$out/fixtures-variants.log"
        TURBINE_CUDA_KV=bf16 TURBINE_CUDA_GEMM=single $bench fixtures "${fixtures[@]}" 2>&1 | sed 's/^/bf16 /' | tee -a "$out/fixtures-variants.log"
    fi
fi
[ "$stage" = fixtures ] && exit $status

tokens=${TOKENS:-256}
checkpoint() {  # shape, directory, log: makes the checkpoint and its reference unless there for this TOKENS
    local shape=$1 dir=$2 log=$3 start
    start=$(date +%s)
    if [ ! -f "$dir/ref_logits.f32" ] || [ "$(stat -c %s "$dir/ids.i32")" != $((tokens * 4)) ]; then
        rm -rf "$dir"
        PYTHONUNBUFFERED=1 python3 tools/gpu/make_checkpoint.py "$shape" "$dir" "$tokens" 2>&1 | tee "$out/$log" || return 1
    fi
    echo "$shape checkpoint + reference: $(( $(date +%s) - start )) s"
}
# Teacher-forced accuracy against transformers float32: prefill of all positions in one step, then decode steps of
# B identical sequences (B 64: the GEMM path; decode steps from the third on replay a CUDA graph).
teacher() {  # model directory, label, batch, env...
    local dir=$1 label=$2 batch=$3; shift 3
    echo "== teacher-forced accuracy ($dir): $label, decode batch $batch =="
    env "$@" $bench teacher --model "$dir" --ids "$dir/ids.i32" --out /tmp/teacher --batch "$batch" 2>&1 | tee -a "$out/teacher.log"
    python3 tools/gpu/compare_teacher.py "$dir" /tmp/teacher > /tmp/teacher.txt 2>&1
    local rc=$?
    sed "s/^/$label b$batch: /" /tmp/teacher.txt | tee -a "$out/teacher.log"
    rm -f /tmp/teacher*.f32
    return $rc
}

if [ "$stage" != qwen ]; then
    model=/tmp/llama8b
    checkpoint llama3-8b $model make8b.log || exit 1
    teacher $model default 1 TURBINE_CUDA_GRAPHS=1 || status=1
    teacher $model default 64 TURBINE_CUDA_GRAPHS=1 || status=1
    # The 256-token prefill is under Fp8LoMinRows (512): lowered, it takes the fp8 lo GEMMs a longer prompt step takes.
    teacher $model fp8-prefill 64 TURBINE_CUDA_FP8_ROWS=256 || status=1
    if [ "$stage" != speed ]; then
        teacher $model graphs-off 64 TURBINE_CUDA_GRAPHS=0
        teacher $model gemm-split 64 TURBINE_CUDA_GEMM=split
        teacher $model gemm-f16 64 TURBINE_CUDA_GEMM=f16
        teacher $model kv-f32 64 TURBINE_CUDA_KV=f32
        teacher $model kv-f16 64 TURBINE_CUDA_KV=f16
        teacher $model gemm-f16+kv-f16 64 TURBINE_CUDA_GEMM=f16 TURBINE_CUDA_KV=f16
        teacher $model gemm-single 64 TURBINE_CUDA_GEMM=single
    fi
    echo "== 8B throughput (128 in / 128 out) =="
    perf() {  # label, env..., -- bench args
        local label=$1; shift
        local envs=()
        while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
        env "${envs[@]}" $bench perf --model $model "$@" 2>&1 | sed "s/^/$label /" | tee -a "$out/perf.log"
    }
    perf default TURBINE_CUDA_GRAPHS=1 -- --batch 1
    perf default TURBINE_CUDA_GRAPHS=1 -- --batch 64 --ttft 2048
    perf gemm-split TURBINE_CUDA_GEMM=split -- --batch 64 --ttft 2048
    perf graphs-off TURBINE_CUDA_GRAPHS=0 -- --batch 1
    perf pdl-off TURBINE_CUDA_PDL=0 -- --batch 1
    perf gemm-f16 TURBINE_CUDA_GEMM=f16 -- --batch 1
    perf gemm-f16 TURBINE_CUDA_GEMM=f16 -- --batch 64 --ttft 2048
    perf gemm-f16+kv-f16 TURBINE_CUDA_GEMM=f16 TURBINE_CUDA_KV=f16 -- --batch 64
    if [ "$stage" = speed ]; then
        perf unfused TURBINE_CUDA_FUSE=0 -- --batch 1
    fi
    echo "== 8B decode step profile (context 192) =="
    $bench profile --model $model --batch 1 --context 192 2>&1 | tee "$out/profile.log"
    $bench profile --model $model --batch 64 --context 192 2>&1 | tee -a "$out/profile.log"
    TURBINE_CUDA_GEMM=f16 $bench profile --model $model --batch 64 --context 192 2>&1 | sed 's/^/gemm-f16 /' | tee -a "$out/profile.log"
fi

# Qwen2-7B (q/k/v biases, 28 heads over 4 KV heads, rope_theta 1e6, vocab 152064): default options' accuracy, last so
# that the Llama part above is not held up by its checkpoint. Disk: /tmp/llama8b (16 GB) and /tmp/qwen7b (15 GB) fit
# together on the 64 GB disk, so both are kept (a warm machine reuses them on the next call, saving a few minutes each);
# only if under 20 GB are free here is /tmp/llama8b, which nothing below needs, removed first.
qwen=/tmp/qwen7b
if [ ! -f $qwen/ref_logits.f32 ] && [ -d /tmp/llama8b ] && [ "$(df --output=avail -B1G /tmp | tail -1)" -lt 20 ]; then
    echo "under 20 GB free in /tmp: removing /tmp/llama8b to make room for $qwen"
    rm -rf /tmp/llama8b
fi
if checkpoint qwen2-7b $qwen make-qwen7b.log; then
    teacher $qwen "qwen2-7b default" 1 TURBINE_CUDA_GRAPHS=1 || status=1
    teacher $qwen "qwen2-7b default" 64 TURBINE_CUDA_GRAPHS=1 || status=1
    teacher $qwen "qwen2-7b fp8-prefill" 64 TURBINE_CUDA_FP8_ROWS=256 || status=1
else
    status=1
fi
exit $status
