"""Writes a randomly initialised Llama-3-8B-shaped bf16 checkpoint and transformers' float32 logits on its weights.

usage: python3 make_llama8b.py OUT_DIR [TOKENS]
Writes OUT_DIR/{config.json, *.safetensors}, OUT_DIR/ids.i32 (TOKENS random ids) and OUT_DIR/ref_logits.f32
(TOKENS x vocab, float32: the bf16 weights upcast to float32, run in float32 without TF32).
"""
import os
import sys
import time

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 128
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
t0 = time.time()
cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg)
torch.set_default_dtype(torch.float32)
model.eval()
t1 = time.time()
model.save_pretrained(out)
t2 = time.time()
size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
print(f"init {t1 - t0:.1f} s, save_pretrained {t2 - t1:.1f} s, {size / 1e9:.2f} GB in {out}", flush=True)

g = torch.Generator().manual_seed(1)
ids = torch.randint(100, 128000, (tokens,), generator=g, dtype=torch.int64)
ids.numpy().astype(np.int32).tofile(os.path.join(out, "ids.i32"))
model = model.float()
with torch.no_grad():
    logits = model(ids[None].cuda()).logits[0].float().cpu().numpy()
logits.astype(np.float32).tofile(os.path.join(out, "ref_logits.f32"))
print(f"float32 reference logits {logits.shape} in {time.time() - t2:.1f} s", flush=True)
