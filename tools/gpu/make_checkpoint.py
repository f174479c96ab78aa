"""Writes a random Llama-3-8B- or Qwen2-7B-shaped bf16 checkpoint and transformers' float32 logits on its weights.

usage: python3 make_checkpoint.py SHAPE OUT_DIR [TOKENS]
SHAPE is one of
  llama3-8b  LlamaForCausalLM: hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128256,
             rope_theta left at transformers' default (config and seeds unchanged since the first 8B results)
  qwen2-7b   Qwen2ForCausalLM as Qwen2-7B: hidden 3584, 28 layers, 28 heads, 4 KV heads, intermediate 18944,
             vocab 152064, rope_theta 1e6, q/k/v biases. transformers initialises biases to zero, which would leave
             the backend's bias path untested, so every bias is redrawn from normal(0, 0.02) (continuing the seed-0
             stream of the init).
Writes OUT_DIR/{config.json, *.safetensors}, OUT_DIR/ids.i32 (TOKENS random ids below the vocabulary size, default 128)
and OUT_DIR/ref_logits.f32 (TOKENS x vocab, float32: the bf16 weights upcast to float32, run in float32 without TF32).
For qwen2-7b it also prints how far the reference moves with the biases zeroed, i.e. what a backend that ignored them
would score in compare_teacher.py.
"""
import os
import sys
import time

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # ids below 128000: Llama 3's regular tokens (the last 256 ids are special).
    "llama3-8b": (lambda: LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                                      num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                                      max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                      bos_token_id=1, eos_token_id=2),
                  LlamaForCausalLM, 128000),
    # ids below 151643: Qwen2's regular tokens (151643 on are special ids and padding rows of the 152064-row embedding).
    "qwen2-7b": (lambda: Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                     max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                     tie_word_embeddings=False, use_sliding_window=False, bos_token_id=151643,
                                     eos_token_id=151643),
                 Qwen2ForCausalLM, 151643),
}

if len(sys.argv) < 3 or sys.argv[1] not in SHAPES:
    sys.exit(f"usage: python3 make_checkpoint.py {{{'|'.join(SHAPES)}}} OUT_DIR [TOKENS]")
shape, out = sys.argv[1], sys.argv[2]
tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 128
make_config, model_class, id_limit = SHAPES[shape]
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
t0 = time.time()
cfg = make_config()
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = model_class(cfg)
torch.set_default_dtype(torch.float32)
model.eval()
# Llama has no biases, so this draws nothing there and leaves its weights as they always were.
biases = [p for name, p in model.named_parameters() if name.endswith(".bias")]
with torch.no_grad():
    for p in biases:
        p.normal_(0.0, 0.02)
if shape == "qwen2-7b":
    assert len(biases) == 3 * cfg.num_hidden_layers, f"expected q/k/v biases in every layer, found {len(biases)} biases"
t1 = time.time()
model.save_pretrained(out)
t2 = time.time()
size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
print(f"{shape}: init {t1 - t0:.1f} s ({len(biases)} biases redrawn), save_pretrained {t2 - t1:.1f} s, "
      f"{size / 1e9:.2f} GB in {out}", flush=True)

g = torch.Generator().manual_seed(1)
ids = torch.randint(100, id_limit, (tokens,), generator=g, dtype=torch.int64)
ids.numpy().astype(np.int32).tofile(os.path.join(out, "ids.i32"))
# .float() converts parameter by parameter in place (param.data is replaced), so the bf16 copy is freed as it goes and
# the peak is the float32 model (32 GB for llama3-8b, 30.5 GB for qwen2-7b) plus one tensor; empty_cache hands the
# freed bf16 blocks back before the forward. Neither changes the values: bf16 -> float32 is exact.
model = model.float()
torch.cuda.empty_cache()
with torch.no_grad():
    logits = model(ids[None].cuda()).logits[0].float().cpu().numpy()
logits.astype(np.float32).tofile(os.path.join(out, "ref_logits.f32"))
print(f"float32 reference logits {logits.shape} in {time.time() - t2:.1f} s, "
      f"peak GPU memory {torch.cuda.max_memory_allocated() / 1e9:.1f} GB", flush=True)

if biases:
    # Not written anywhere: the same forward with the biases zeroed, scored as compare_teacher.py scores the backend.
    with torch.no_grad():
        for p in biases:
            p.zero_()
        nobias = model(ids[None].cuda()).logits[0].float().cpu().numpy()
    ref, got = logits.astype(np.float64), nobias.astype(np.float64)
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    caught = rel[-1] >= 2e-2 or agree < 0.99
    print(f"without the biases: last-position rel L2 {rel[-1]:.3e} (mean {rel.mean():.3e}), argmax agreement "
          f"{agree * 100:.2f}%: a backend ignoring them would {'FAIL' if caught else 'still PASS'} compare_teacher.py",
          flush=True)
    if not caught:
        print("WARNING: the biases are too small for the teacher check to catch a backend that drops them", flush=True)
