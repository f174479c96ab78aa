"""Makes the reference data Turbine's tests compare against, with Hugging Face `tokenizers` and
`transformers`. Runs on the GPU machine (nothing here needs the GPU itself; it is where those packages are).

    python3 tools/reference/make_references.py --inputs DIR --out DIR [--models NAME ...]

--models makes only the named tiny models (and no tokenizer references), for which DIR needs only corpus.txt.
DIR (inputs) holds: tokenizers/<name>/tokenizer.json (the three real vocabularies), texts.json (the strings to
tokenize) and corpus.txt (text to train the tiny fixtures' tokenizer on). Writes under --out:
  tokenizers/<name>.json   ids and decoded text of every string, as `tokenizers` gives them
  models/<name>/           tiny random-weight checkpoints with reference.json (prompts, last-position logits,
                           24-token greedy continuations by transformers in float32); for a model with RoPE
                           scaling it also prints how far the same weights without the scaling are from the
                           reference, to show that the scaling matters at the prompts' lengths
"""
import argparse, json, os, shutil, sys, traceback

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

GREEDY_TOKENS = 24
PROMPTS = [
    "无锡有什么好吃的",
    "What is machine learning?",
    "Triton 推理服务器 supports in-flight batching and a paged KV cache for large language models.",
]


def tokenizer_references(inputs, out):
    texts = json.load(open(os.path.join(inputs, "texts.json"), encoding="utf-8"))
    os.makedirs(os.path.join(out, "tokenizers"), exist_ok=True)
    for name in sorted(os.listdir(os.path.join(inputs, "tokenizers"))):
        tok = Tokenizer.from_file(os.path.join(inputs, "tokenizers", name, "tokenizer.json"))
        cases = []
        for text in texts:
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text,
                "ids": plain,
                "ids_with_special": special,
                "decoded": tok.decode(special, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(special, skip_special_tokens=True),
            })
        with open(os.path.join(out, "tokenizers", name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer": name, "cases": cases}, f, ensure_ascii=False, indent=0)
        print(f"tokenizer {name}: {len(cases)} cases")


def train_tiny_tokenizer(inputs, out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([os.path.join(inputs, "corpus.txt")], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                   "add_bos_token": True, "model_max_length": 256}, f, indent=2)
    return tok


def randomize(model, std):
    # HF initialises biases to zero and norm weights to one; tests must see both applied, so perturb them.
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif "norm" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def greedy(model, ids):
    """Prefill then one token at a time through the KV cache, as generate() does, recording each margin."""
    from transformers import DynamicCache
    cache = DynamicCache()
    x = torch.tensor([ids])
    out = model(input_ids=x, past_key_values=cache, use_cache=True)
    last = out.logits[0, -1].float()
    prompt_logits = last.clone()
    tokens, margins = [], []
    for step in range(GREEDY_TOKENS):
        top2 = torch.topk(last, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        nxt = int(top2.indices[0])
        tokens.append(nxt)
        if step + 1 == GREEDY_TOKENS:
            break
        pos = torch.tensor([[len(ids) + step]])
        out = model(input_ids=torch.tensor([[nxt]]), position_ids=pos, past_key_values=cache, use_cache=True)
        last = out.logits[0, -1].float()
    return prompt_logits, tokens, margins


def unscaled_difference(model, cfg_cls, model_cls, config, tok):
    """The same weights with default RoPE: relative L2 of each prompt's last logits and greedy ids that differ."""
    plain_cfg = cfg_cls(**{k: v for k, v in config.items() if k != "rope_scaling"})
    plain_cfg._attn_implementation = "eager"
    plain = model_cls(plain_cfg).eval()
    plain.load_state_dict(model.state_dict())
    parts = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok.encode(prompt).ids
            scaled_logits, scaled_tokens, _ = greedy(model, ids)
            plain_logits, plain_tokens, _ = greedy(plain, ids)
            rel = float(torch.linalg.norm(plain_logits - scaled_logits) / torch.linalg.norm(scaled_logits))
            differ = sum(a != b for a, b in zip(plain_tokens, scaled_tokens))
            parts.append(f"{len(ids)} prompt tokens: rel L2 {rel:.4f}, greedy ids differing {differ}/{GREEDY_TOKENS}")
    return "without rope scaling: " + "; ".join(parts)


def tiny_models(inputs, out, names=None):
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM
    tok_dir = os.path.join(out, "models", "_tokenizer")
    tok = train_tiny_tokenizer(inputs, tok_dir)
    common = dict(vocab_size=1024, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=0, eos_token_id=1, pad_token_id=2, rms_norm_eps=1e-5)
    specs = [
        ("llama-gqa", LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=False, rope_theta=10000.0), torch.float32, None),
        ("llama3-tied-bf16", LlamaConfig, LlamaForCausalLM,
         dict(tie_word_embeddings=True, num_key_value_heads=1, head_dim=32, rope_theta=500000.0,
              rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                original_max_position_embeddings=64)), torch.bfloat16, None),
        ("llama-linear-f16", LlamaConfig, LlamaForCausalLM,
         dict(tie_word_embeddings=False, rope_scaling=dict(rope_type="linear", factor=2.0)), torch.float16, None),
        ("llama-dynamic", LlamaConfig, LlamaForCausalLM,
         dict(tie_word_embeddings=False, max_position_embeddings=16, rope_scaling=dict(rope_type="dynamic", factor=2.0)),
         torch.float32, None),
        # An original context of 32 (below every prompt plus its continuation, 39-68 tokens) puts one frequency
        # pair inside YaRN's ramp; 128 = 4 x 32 keeps max_position_embeddings consistent with the factor.
        ("llama-yarn", LlamaConfig, LlamaForCausalLM,
         dict(tie_word_embeddings=False, max_position_embeddings=128,
              rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32)), torch.float32, None),
        ("mistral-swa", MistralConfig, MistralForCausalLM, dict(tie_word_embeddings=False, sliding_window=8), torch.float32, None),
        ("qwen2-sharded", Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True, rope_theta=1000000.0), torch.float32, "100KB"),
    ]
    if names:
        unknown = set(names) - {spec[0] for spec in specs}
        if unknown:
            raise SystemExit(f"unknown tiny models: {sorted(unknown)}")
        specs = [spec for spec in specs if spec[0] in names]
    summary = []
    for name, cfg_cls, model_cls, extra, dtype, shard in specs:
        try:
            torch.manual_seed(42)
            cfg = cfg_cls(**{**common, **extra})
            cfg._attn_implementation = "eager"
            model = model_cls(cfg).eval()
            randomize(model, 0.15)
            # Round the weights through the storage dtype so the float32 reference sees exactly what is saved.
            # Parameters only: model.to(dtype) would also round buffers such as the rotary inv_freq.
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(dtype).to(torch.float32))
            mdir = os.path.join(out, "models", name)
            os.makedirs(mdir, exist_ok=True)
            saved = model_cls(cfg).to(dtype)
            saved.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
            kwargs = {"max_shard_size": shard} if shard else {}
            saved.save_pretrained(mdir, **kwargs)
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(tok_dir, f), mdir)
            ref = {"model": name, "transformers": transformers.__version__, "torch": torch.__version__,
                   "storage_dtype": str(dtype), "cases": []}
            with torch.no_grad():
                for prompt in PROMPTS:
                    ids = tok.encode(prompt).ids
                    logits, tokens, margins = greedy(model, ids)
                    ref["cases"].append({"prompt": prompt, "prompt_ids": ids,
                                         "last_logits": [round(float(v), 7) for v in logits],
                                         "greedy_ids": tokens, "min_margin": min(margins)})
            with open(os.path.join(mdir, "reference.json"), "w") as f:
                json.dump(ref, f)
            summary.append(f"{name}: ok, files={sorted(os.listdir(mdir))}, min margins="
                           + ",".join(f"{c['min_margin']:.4f}" for c in ref["cases"]))
            if "rope_scaling" in extra:
                summary.append(f"{name}: " + unscaled_difference(model, cfg_cls, model_cls, {**common, **extra}, tok))
        except Exception:
            traceback.print_exc()
            summary.append(f"{name}: FAILED")
    shutil.rmtree(tok_dir)
    print("\n".join(summary))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", choices=["tokenizers", "models"], default=None)
    ap.add_argument("--models", nargs="+", metavar="NAME", help="make only these tiny models")
    a = ap.parse_args()
    if a.only in (None, "tokenizers") and not a.models:
        tokenizer_references(a.inputs, a.out)
    if a.only in (None, "models"):
        tiny_models(a.inputs, a.out, a.models)


if __name__ == "__main__":
    sys.exit(main())
