#!/usr/bin/env bash
# Correctness and speed of the CUDA backend on the GPU machine. Run from the repository root there:
#   tools/gpu/check_cuda.sh fixtures        operations on random inputs, and tiny fixtures against transformers (greedy ids, last logits)
#   tools/gpu/check_cuda.sh all             + random Llama-3-8B-shaped bf16 checkpoint: accuracy, throughput, TTFT, profile
#   tools/gpu/check_cuda.sh speed           as all, without the bf16 KV / bf16 GEMM variants, and throughput and profile
#                                           with fused linears off too (TURBINE_CUDA_FUSE=0), for comparison
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
    echo "== fixtures, bf16 KV cache and bf16 GEMM activations =="
    TURBINE_CUDA_KV=bf16 TURBINE_CUDA_GEMM=bf16 $bench fixtures $fixtures 2>&1 | tee "$out/fixtures-bf16.log"
fi
[ "$stage" = fixtures ] && exit $status

model=/tmp/llama8b
start=$(date +%s)
PYTHONUNBUFFERED=1 python3 tools/gpu/make_llama8b.py $model 128 2>&1 | tee "$out/make8b.log" || exit 1
echo "checkpoint + reference: $(( $(date +%s) - start )) s"
echo "== 8B teacher-forced accuracy (default: float32 KV, split GEMM activations) =="
$bench teacher --model $model --ids $model/ids.i32 --out /tmp/t8b 2>&1 | tee "$out/teacher.log"
python3 tools/gpu/compare_teacher.py $model /tmp/t8b 2>&1 | tee -a "$out/teacher.log" || status=1
if [ "$stage" != speed ]; then
echo "== 8B teacher-forced accuracy, bf16 GEMM activations =="
TURBINE_CUDA_GEMM=bf16 $bench teacher --model $model --ids $model/ids.i32 --out /tmp/t8b16 2>&1 | tee -a "$out/teacher.log"
python3 tools/gpu/compare_teacher.py $model /tmp/t8b16 2>&1 | tee -a "$out/teacher.log"
echo "== 8B teacher-forced accuracy, bf16 KV cache =="
TURBINE_CUDA_KV=bf16 $bench teacher --model $model --ids $model/ids.i32 --out /tmp/t8bkv 2>&1 | tee -a "$out/teacher.log"
python3 tools/gpu/compare_teacher.py $model /tmp/t8bkv 2>&1 | tee -a "$out/teacher.log"
fi
rm -f /tmp/t8b*.f32
echo "== 8B throughput =="
$bench perf --model $model --batch 1 2>&1 | tee "$out/perf.log"
$bench perf --model $model --batch 64 --ttft 2048 2>&1 | tee -a "$out/perf.log"
if [ "$stage" = speed ]; then
    TURBINE_CUDA_FUSE=0 $bench perf --model $model --batch 1 2>&1 | sed 's/^/unfused /' | tee -a "$out/perf.log"
    TURBINE_CUDA_FUSE=0 $bench perf --model $model --batch 64 2>&1 | sed 's/^/unfused /' | tee -a "$out/perf.log"
else
    TURBINE_CUDA_GEMM=bf16 $bench perf --model $model --batch 1 --output 8 --ttft 2048 2>&1 | sed 's/^/bf16-gemm /' | tee -a "$out/perf.log"
fi
echo "== 8B decode step profile =="
$bench profile --model $model --batch 1 --context 192 2>&1 | tee "$out/profile.log"
$bench profile --model $model --batch 64 --context 192 2>&1 | tee -a "$out/profile.log"
if [ "$stage" = speed ]; then
    TURBINE_CUDA_FUSE=0 $bench profile --model $model --batch 1 --context 192 2>&1 | sed 's/^/unfused /' | tee -a "$out/profile.log"
    TURBINE_CUDA_FUSE=0 $bench profile --model $model --batch 64 --context 192 2>&1 | sed 's/^/unfused /' | tee -a "$out/profile.log"
else
    TURBINE_CUDA_KV=bf16 $bench profile --model $model --batch 64 --context 192 2>&1 | sed 's/^/bf16-kv /' | tee -a "$out/profile.log"
fi
exit $status
