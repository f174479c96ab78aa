#!/usr/bin/env bash
# Correctness and speed of the CUDA backend on the GPU machine. Run from the repository root there:
#   tools/gpu/check_cuda.sh fixtures        operations on random inputs, and tiny fixtures against transformers (greedy ids, last logits)
#   tools/gpu/check_cuda.sh all             + random Llama-3-8B-shaped bf16 checkpoint (TOKENS=256 teacher positions):
#                                           accuracy of every precision option, throughput, TTFT, profile
#   tools/gpu/check_cuda.sh speed           as all, with the default options' accuracy only, plus throughput with fusion off
#   tools/gpu/check_cuda.sh cli             `turbine run --device cuda` against `--device cpu` on the fixtures; needs
#                                           .cuda-pack/turbine.tar.xz (pack.sh src/Turbine.Cli/Turbine.Cli.csproj turbine)
# Needs the self-contained bench published here first (no .NET on the GPU machine):
#   ../shared/device/pack.sh bench/Turbine.Bench.Cuda/Turbine.Bench.Cuda.csproj bench; cp .device/bench.tar.xz .cuda-pack/
# and the call carrying .cuda-pack. Logs go to $OUT (or /tmp/cuda-check).
set -uo pipefail
stage=${1:-fixtures}
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
fixtures=$(ls -d tests/fixtures/models/*/)
echo "== every operation on random inputs, CUDA against the CPU backend =="
$bench ops 2>&1 | tee "$out/ops.log" || status=1
echo "== fixtures (default options) =="
$bench fixtures $fixtures 2>&1 | tee "$out/fixtures.log" || status=1
if [ "$stage" != speed ]; then
    echo "== fixtures, graphs off; f16 GEMMs and KV cache; bf16 KV cache and single bf16 GEMM activations =="
    TURBINE_CUDA_GRAPHS=0 $bench fixtures $fixtures 2>&1 | sed 's/^/graphs-off /' | tee "$out/fixtures-variants.log"
    TURBINE_CUDA_KV=f16 TURBINE_CUDA_GEMM=f16 $bench fixtures $fixtures 2>&1 | sed 's/^/f16 /' | tee -a "$out/fixtures-variants.log"
    TURBINE_CUDA_KV=bf16 TURBINE_CUDA_GEMM=single $bench fixtures $fixtures 2>&1 | sed 's/^/bf16 /' | tee -a "$out/fixtures-variants.log"
fi
[ "$stage" = fixtures ] && exit $status

model=/tmp/llama8b
tokens=${TOKENS:-256}
start=$(date +%s)
if [ ! -f $model/ref_logits.f32 ] || [ "$(stat -c %s $model/ids.i32)" != $((tokens * 4)) ]; then
    PYTHONUNBUFFERED=1 python3 tools/gpu/make_llama8b.py $model $tokens 2>&1 | tee "$out/make8b.log" || exit 1
fi
echo "checkpoint + reference: $(( $(date +%s) - start )) s"
# Teacher-forced accuracy against transformers float32: prefill of all positions in one step, then decode steps of
# B identical sequences (B 64: the GEMM path; decode steps from the third on replay a CUDA graph).
teacher() {  # label, batch, env...
    local label=$1 batch=$2; shift 2
    echo "== 8B teacher-forced accuracy: $label, decode batch $batch =="
    env "$@" $bench teacher --model $model --ids $model/ids.i32 --out /tmp/t8b --batch $batch 2>&1 | tee -a "$out/teacher.log"
    python3 tools/gpu/compare_teacher.py $model /tmp/t8b > /tmp/t8b.txt 2>&1
    local rc=$?
    sed "s/^/$label b$batch: /" /tmp/t8b.txt | tee -a "$out/teacher.log"
    rm -f /tmp/t8b*.f32
    return $rc
}
teacher default 1 TURBINE_CUDA_GRAPHS=1 || status=1
teacher default 64 TURBINE_CUDA_GRAPHS=1 || status=1
if [ "$stage" != speed ]; then
    teacher graphs-off 64 TURBINE_CUDA_GRAPHS=0
    teacher gemm-f16 64 TURBINE_CUDA_GEMM=f16
    teacher kv-f16 64 TURBINE_CUDA_KV=f16
    teacher gemm-f16+kv-f16 64 TURBINE_CUDA_GEMM=f16 TURBINE_CUDA_KV=f16
    teacher gemm-single 64 TURBINE_CUDA_GEMM=single
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
exit $status
