"""Prints the inv_freq and attention scaling of transformers' own rotary embedding modules for a few YaRN and
partial-rotary configs: the numbers Turbine's RotaryEmbedding tests hard-code. Runs where transformers is:

    python3 tools/reference/print_rope.py

One JSON line per case: the rope parameters as transformers normalised them, inv_freq (float32 written as
double) and attention_scaling, or the error transformers raised.
"""
import json

from transformers import LlamaConfig, Qwen2Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

SMALL = dict(hidden_size=256, num_attention_heads=8)  # head_dim 32
TINY = dict(hidden_size=64, num_attention_heads=4)  # head_dim 16, as the tiny fixtures
QWEN = (Qwen2Config, Qwen2RotaryEmbedding)
LLAMA = (LlamaConfig, LlamaRotaryEmbedding)

CASES = [
    # Qwen2.5's long-context recipe: the original context equals max_position_embeddings.
    ("qwen2.5", QWEN, dict(SMALL, rope_theta=1e6, max_position_embeddings=32768, rope_scaling=dict(
        type="yarn", factor=4.0, original_max_position_embeddings=32768))),
    # DeepSeek-style: max_position_embeddings already scaled; mscale / mscale_all_dim give the attention factor.
    ("deepseek", LLAMA, dict(SMALL, rope_theta=10000.0, max_position_embeddings=163840, rope_scaling=dict(
        rope_type="yarn", factor=40.0, original_max_position_embeddings=4096, mscale=1.0, mscale_all_dim=0.8))),
    ("tiny, original 16", LLAMA, dict(TINY, rope_theta=10000.0, max_position_embeddings=64, rope_scaling=dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=16))),
    ("explicit", LLAMA, dict(TINY, rope_theta=10000.0, max_position_embeddings=256, rope_scaling=dict(
        rope_type="yarn", factor=8.0, beta_fast=16, beta_slow=2, attention_factor=1.25, truncate=False))),
    ("partial yarn", LLAMA, dict(TINY, max_position_embeddings=256, partial_rotary_factor=0.5, rope_scaling=dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=64))),
    ("partial default", LLAMA, dict(TINY, partial_rotary_factor=0.5)),
]

for name, (config_class, embedding_class), kwargs in CASES:
    try:
        config = config_class(**kwargs)
        embedding = embedding_class(config=config)
        print(json.dumps({"case": name, "rope_parameters": getattr(config, "rope_parameters", None),
                          "max_position_embeddings": config.max_position_embeddings,
                          "inv_freq": [float(v) for v in embedding.inv_freq],
                          "attention_scaling": float(embedding.attention_scaling)}, default=str))
    except Exception as e:  # a config transformers rejects is a result too
        print(json.dumps({"case": name, "error": repr(e)}))
