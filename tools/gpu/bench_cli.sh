#!/usr/bin/env bash
# `turbine bench` and `turbine serve` on the GPU machine, with the published CLI (no .NET there):
#   ../shared/device/pack.sh src/Turbine.Cli/Turbine.Cli.csproj turbine; mkdir -p .cuda-pack; cp .device/turbine.tar.xz .cuda-pack/
# then a device call carrying .cuda-pack (and nothing else in it: the tarball and the tree must fit in 64 MiB), from the
# repository root there:
#   tools/gpu/bench_cli.sh            serve on the GPU, sweep (batch 1, 64 and the largest that fits), IFB vs static
# Uses the random Llama-3-8B-shaped checkpoint of `tools/gpu/make_checkpoint.py llama3-8b` in /tmp/llama8b (made when missing).
# Logs go to $OUT (or /tmp/cli-bench).
set -uo pipefail
out=${OUT:-/tmp/cli-bench}
mkdir -p "$out" /tmp/tc
tar xJf .cuda-pack/turbine.tar.xz -C /tmp/tc || exit 1
turbine=/tmp/tc/turbine
export TURBINE_CUDA_CACHE=/tmp/turbine-kernels TURBINE_HOME=$PWD
model=/tmp/llama8b
[ -f $model/config.json ] || PYTHONUNBUFFERED=1 python3 tools/gpu/make_checkpoint.py llama3-8b $model 16 > "$out/make8b.log" 2>&1 || exit 1
status=0
run() { echo "\$ $*" | tee -a "$out/bench.log"; "$@" 2>&1 | grep -v '^\s*$' | tee -a "$out/bench.log"; return ${PIPESTATUS[0]}; }

echo "== serve on the GPU: the bundled demo model, the seeds' requests, then SIGTERM =="
$turbine serve --device cuda --http-port 8000 > "$out/serve.log" 2>&1 &
server=$!
# A fresh machine compiles the kernels first (NVRTC, cached after): allow for it and say how long it took.
started=$(date +%s)
for _ in $(seq 600); do curl -sf localhost:8000/v2/health/ready > /dev/null && break; sleep 0.5; done
echo "serve ready after $(( $(date +%s) - started )) s" | tee "$out/serve-ready.log"
{
for text in "你好" "床前明月光" "In the beginning"; do
    curl -s -X POST localhost:8000/v2/models/ensemble/generate -d "{\"text_input\": \"$text\", \"max_tokens\": 24, \"bad_words\": \"\", \"stop_words\": \"\"}"; echo
done
curl -s -X POST localhost:8000/v2/models/ensemble/generate_stream -d '{"text_input": "In the beginning", "max_tokens": 8, "stream": true}' | head -c 400; echo
curl -s localhost:8000/v1/completions -H 'Content-Type: application/json' -d '{"model": "ensemble", "prompt": "In the beginning", "max_tokens": 16, "temperature": 0.8, "top_p": 0.9, "seed": 7}'; echo
curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d '{"model": "ensemble", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 16}'; echo
curl -s localhost:8002/metrics | grep -E '^nv_gpu|^nv_inference_request_success\{model="ensemble"' | head -6
} 2>&1 | tee "$out/serve-requests.log"
kill -TERM $server
stopped=$(date +%s)
for _ in $(seq 80); do kill -0 $server 2> /dev/null || break; sleep 0.5; done
if kill -0 $server 2> /dev/null; then
    echo "serve did not exit within 40 s of SIGTERM; its threads:" | tee -a "$out/serve.log"
    for t in /proc/$server/task/*; do echo "$(cat $t/comm) $(awk '{print $3}' $t/stat) $(cat $t/wchan)"; done | sort | uniq -c | tee -a "$out/serve.log"
    kill -9 $server
    status=1
else
    echo "serve exited $(( $(date +%s) - stopped )) s after SIGTERM" | tee -a "$out/serve.log"
fi
wait $server 2> /dev/null

echo "== gptSessionBenchmark-style sweep: 128 in / 128 out, batch 1, 64 and the largest batch whose KV fits =="
run $turbine bench sweep --device cuda --model $model --batch-sizes 1,64 --input-lens 128 --output-lens 128 --max-num-tokens 8192 || status=1
# F24 K/V (the default): 192 KiB a token for this shape, 48 MiB a 256-token sequence. The default fp8lo GEMMs keep an
# e4m3 copy of the weights too (23 GB in all), leaving about 50 GB, of which the KV cache takes 0.9: about 890
# sequences fit, so 832 is the largest batch run. (With float32 K/V and 16 GB of weights 768 fit and 896 did not; with
# f16 K/V and f16 GEMMs 1024 do.)
run $turbine bench sweep --device cuda --model $model --batch-sizes 832 --input-lens 128 --output-lens 128 --max-num-tokens 8192 || status=1
run env TURBINE_CUDA_GEMM=f16 TURBINE_CUDA_KV=f16 $turbine bench sweep --device cuda --model $model --batch-sizes 64,1024 --input-lens 128 --output-lens 128 --max-num-tokens 8192 || status=1

echo "== gptManagerBenchmark-style: token-norm-dist workload, in-flight batching against static batching =="
run $turbine bench dataset token-norm-dist --num-requests 512 --input-mean 128 --input-stdev 32 --output-mean 128 --output-stdev 64 \
    --model $model --seed 1 --output /tmp/tnd.json || status=1
# static-emulated: a static batch starts full (256 of the queued requests) instead of with whichever requests reached
# the executor first.
for mode in ifb static-emulated; do
    run $turbine bench run --device cuda --model $model --dataset /tmp/tnd.json --mode $mode --max-batch-size 256 --max-num-tokens 8192 \
        --kv-cache-free-gpu-mem-fraction 0.9 || status=1
done

exit $status
