#!/usr/bin/env bash
# Builds the harness and runs it for each kernel variant (MW KSUB pairs as arguments; default: the set
# below), each in its own process under a timeout so that a hung variant cannot stop the others.
# usage (on the GPU machine, from the repository root): tools/gpu/gemm_sm90/run.sh [OUT_DIR] [variant...]
set -u
cd "$(dirname "$0")"
out=${1:-/tmp}
shift || true
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("1 2 trace" "1 1" "2 1")
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v harness.cu -o /tmp/gemm_harness -lcublas -lcuda 2>&1 \
    | grep -E "error|warning|Compiling entry|registers|spill" | sed 's/ptxas info    : //' | paste - - - 2>/dev/null | head -40
[ -x /tmp/gemm_harness ] || exit 1
/tmp/gemm_harness facts
for v in "${variants[@]}"; do
    timeout 60 /tmp/gemm_harness $v 2>&1 | tee -a "$out/gemm.log"
    echo "exit ${PIPESTATUS[0]} for variant $v" | tee -a "$out/gemm.log"
done
