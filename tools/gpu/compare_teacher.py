"""Compares the CUDA backend's teacher-forced logits with transformers' float32 ones.

usage: python3 compare_teacher.py MODEL_DIR PREFIX
Reads MODEL_DIR/ref_logits.f32 and PREFIX.prefill.f32 / PREFIX.decode.f32 (tokens x vocab float32 each).
Exits 1 unless the last-position relative L2 is under 2e-2 and argmax agrees at >= 99% of positions.
"""
import json
import os
import sys

import numpy as np

model, prefix = sys.argv[1], sys.argv[2]
vocab = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
ref = np.fromfile(os.path.join(model, "ref_logits.f32"), dtype=np.float32).reshape(-1, vocab).astype(np.float64)
ok = True
for path in ("prefill", "decode"):
    got = np.fromfile(f"{prefix}.{path}.f32", dtype=np.float32).reshape(-1, vocab).astype(np.float64)
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    srt = np.sort(ref, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    passed = rel[-1] < 2e-2 and agree >= 0.99
    ok &= passed
    print(f"{'PASS' if passed else 'FAIL'} {path:8s} last-position rel L2 {rel[-1]:.3e}  mean {rel.mean():.3e}  max {rel.max():.3e}  "
          f"argmax agreement {agree * 100:.2f}% of {len(rel)}  (reference top-2 margin median {np.median(margin):.3f}, min {margin.min():.4f})")
sys.exit(0 if ok else 1)
