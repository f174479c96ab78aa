"""Batch-64 decode GEMM shapes of the 8B model on cuBLAS (through torch): separate vs stacked weights, split (128 rows)
vs plain (64 rows) bf16 activations. Weights rotate over copies larger than L2, as in decode.

usage: python3 tools/gpu/gemm_shapes.py
"""
import torch

torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
k = 4096


def bench(rows, widths, kk=k, iters=200):
    total = sum(widths) * kk * 2
    copies = max(2, (1 << 30) // total)
    ws = [[torch.randn(n, kk, device="cuda", dtype=torch.bfloat16) for n in widths] for _ in range(copies)]
    x = torch.randn(rows, kk, device="cuda", dtype=torch.bfloat16)
    # bf16 outputs (the backend writes float32): the output is under 7% of the bytes either way.
    outs = [torch.empty(rows, n, device="cuda", dtype=torch.bfloat16) for n in widths]

    def step(i):
        for w, o in zip(ws[i % copies], outs):
            torch.matmul(x, w.t(), out=o)

    for i in range(10):
        step(i)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for i in range(iters):
        step(i)
    b.record()
    torch.cuda.synchronize()
    us = a.elapsed_time(b) * 1000 / iters
    return us, total / us / 1e3


for rows in (128, 64):
    for name, widths, kk in [("q,k,v separate", [4096, 1024, 1024], k), ("qkv stacked", [6144], k),
                             ("o", [4096], k), ("gate,up separate", [14336, 14336], k), ("gate+up stacked", [28672], k),
                             ("down", [4096], 14336)]:
        us, gbs = bench(rows, widths, kk)
        print(f"| rows {rows:3d} | {name:18s} | {us:8.1f} us | {gbs:6.0f} GB/s |", flush=True)
