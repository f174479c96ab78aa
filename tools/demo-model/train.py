"""Trains Turbine's bundled demo model: a ~11M-parameter Llama on public-domain English (KJV) and classical
Chinese poetry, with its own byte-level BPE tokenizer, then writes the greedy reference Turbine is tested against.

    tools/demo-model/prepare_corpus.sh          # here: writes .device/demo/corpus_{en,zh}.txt
    PYTHONUNBUFFERED=1 python3 tools/demo-model/train.py --corpus .device/demo --out /tmp/demo --minutes 6

Needs torch, transformers (5.x), tokenizers and safetensors; a CUDA GPU for training (the reference and the
samples run on the CPU in float32). Writes under --out an ordinary Hugging Face checkpoint:
  config.json, generation_config.json, model.safetensors (bf16, tied embeddings)
  tokenizer.json, tokenizer_config.json (with a chat template)
  reference.json   prompts, prompt ids, transformers' 32-token greedy continuations with per-step top-2 margins,
                   validation losses, training summary and sampled outputs
"""
import argparse, hashlib, json, math, os, random, sys, time

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>"]
BOS, EOS, PAD = SPECIALS[0], SPECIALS[1], SPECIALS[2]
# Llama-3 / tiktoken-style split (GPT-2 family): contractions, letter runs with one leading non-letter,
# numbers of up to 3 digits, punctuation runs, newlines, whitespace.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|eos|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
PROMPTS = ["In the beginning", "And the LORD said unto Moses", "床前明月光", "春眠不觉晓"]
SAMPLE_PROMPTS = PROMPTS + ["Blessed are the", "白日依山尽"]
CHAT_SAMPLES = ["床前明月光，疑是地上霜。", "And God said, Let there be light."]
GREEDY_TOKENS = 32
VOCAB_SIZE = 8192
MODEL = dict(hidden_size=384, intermediate_size=768, num_hidden_layers=6, num_attention_heads=6,
             num_key_value_heads=2, head_dim=64, max_position_embeddings=1024, rms_norm_eps=1e-5,
             tie_word_embeddings=True, hidden_act="silu", initializer_range=0.02)


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------------- data
def read_docs(path):
    text = open(path, encoding="utf-8").read()
    return [d.strip("\n") for d in text.split("\n\n") if d.strip()]


def is_val(doc, percent):
    """Held-out split by content hash: every copy of an upsampled document lands on the same side."""
    return int(hashlib.sha1(doc.encode("utf-8")).hexdigest()[:8], 16) % 100 < percent


def render_chat(messages, add_generation_prompt=False):
    """The chat template of tokenizer_config.json, in Python (used for training examples and samples)."""
    s = BOS
    for m in messages:
        s += f"<|{m['role']}|>\n{m['content']}{EOS}\n"
    if add_generation_prompt:
        s += "<|assistant|>\n"
    return s


def chat_example(doc):
    """A document as a one-turn chat: the user gives the first line, the assistant continues."""
    lines = doc.split("\n")
    if len(lines) < 3:
        return None
    return render_chat([{"role": "user", "content": lines[0]},
                        {"role": "assistant", "content": "\n".join(lines[1:7])}])


def split_corpus(corpus_dir, val_percent, chat_fraction, seed):
    rng = random.Random(seed)
    out = {"train": [], "val_en": [], "val_zh": []}
    counts = {}
    for lang in ("en", "zh"):
        docs = read_docs(os.path.join(corpus_dir, f"corpus_{lang}.txt"))
        train = [d for d in docs if not is_val(d, val_percent)]
        val = sorted(set(d for d in docs if is_val(d, val_percent)))  # unique held-out documents
        out["train"].extend(BOS + d + EOS for d in train)
        chats = [c for c in (chat_example(d) for d in train if rng.random() < chat_fraction) if c]
        out["train"].extend(chats)
        out["val_" + lang] = [BOS + d + EOS for d in val]
        counts[lang] = dict(docs=len(docs), train_docs=len(train), val_unique_docs=len(val), chat_examples=len(chats))
    rng.shuffle(out["train"])
    return out, counts


# ------------------------------------------------------------------------------------------ tokenizer
def train_tokenizer(corpus_dir, out_dir):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    docs = read_docs(os.path.join(corpus_dir, "corpus_en.txt")) + read_docs(os.path.join(corpus_dir, "corpus_zh.txt"))
    tok.train_from_iterator(docs, trainer, length=len(docs))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    assert [ids[s] for s in SPECIALS] == list(range(len(SPECIALS))), ids
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, ids[BOS])])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "add_bos_token": True, "add_eos_token": False,
        "model_max_length": MODEL["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    log(f"tokenizer: {tok.get_vocab_size()} entries; specials {ids}")
    return Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))


def check_hf_tokenizer(out_dir, tok):
    """Cross-check transformers' view of the saved tokenizer files (informational, never fatal)."""
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(out_dir)
        for p in PROMPTS:
            a, b = hf(p, add_special_tokens=True)["input_ids"], tok.encode(p, add_special_tokens=True).ids
            log(f"  AutoTokenizer {'matches' if a == b else 'DIFFERS'} for {p!r}: {a}" + ("" if a == b else f" vs {b}"))
        msgs = [{"role": "user", "content": "床前明月光"}]
        rendered = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        log(f"  chat template renders {rendered!r}; python render {'matches' if rendered == render_chat(msgs, True) else 'DIFFERS'}")
    except Exception as e:  # noqa: BLE001
        log(f"  AutoTokenizer check failed: {type(e).__name__}: {e}")


# ------------------------------------------------------------------------------------------- training
def encode_stream(tok, docs):
    import torch
    ids = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


def windows(stream, seq):
    n = (len(stream) - 1) // seq
    if n == 0:
        return None
    x = stream[: n * seq + 1]
    return torch_stack_windows(x, n, seq)


def torch_stack_windows(x, n, seq):
    import torch
    return torch.stack([x[i * seq: i * seq + seq + 1] for i in range(n)])


def evaluate(model, val_sets, device):
    import torch
    import torch.nn.functional as F
    was_training = model.training
    model.eval()
    res = {}
    tot_loss, tot_n = 0.0, 0
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for name, w in val_sets.items():
            loss_sum, n = 0.0, 0
            for i in range(0, len(w), 16):
                b = w[i: i + 16].to(device)
                logits = model(input_ids=b[:, :-1]).logits
                l = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum")
                loss_sum += float(l); n += b[:, 1:].numel()
            res[name] = loss_sum / n
            tot_loss += loss_sum; tot_n += n
    res["all"] = tot_loss / tot_n
    model.train(was_training)
    return res


def train(args, tok, data, counts):
    import torch
    import torch.nn.functional as F
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    device = "cuda"
    torch.manual_seed(args.seed); torch.cuda.manual_seed_all(args.seed); random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    t0 = time.time()
    train_ids = encode_stream(tok, data["train"]).to(device)
    val_sets = {}
    for lang in ("en", "zh"):
        w = windows(encode_stream(tok, data["val_" + lang]), args.seq)
        if w is not None:
            val_sets[lang] = w
    log(f"tokens: train {len(train_ids):,}, val " + ", ".join(f"{k} {v.numel():,}" for k, v in val_sets.items())
        + f" ({time.time() - t0:.1f}s to encode)")

    vocab = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=vocab, bos_token_id=0, eos_token_id=1, pad_token_id=2,
                      attention_dropout=args.dropout, **MODEL)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg).to(device)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "embeddings not tied"
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters ({n_params * 2 / 1e6:.1f} MB in bf16), config {MODEL}, vocab {vocab}")

    # Residual dropout on each MLP's output (training only; not part of the saved model).
    def mlp_dropout(module, inputs, output):
        return F.dropout(output, p=args.dropout, training=module.training)
    hooks = [layer.mlp.register_forward_hook(mlp_dropout) for layer in model.model.layers] if args.dropout > 0 else []

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    budget = args.minutes * 60.0
    def lr_at(step, frac):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = min(1.0, max(0.0, frac))
        return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator(device=device); gen.manual_seed(args.seed)
    offs = torch.arange(args.seq + 1, device=device)
    n_start = len(train_ids) - args.seq - 1
    def batch():
        starts = torch.randint(0, n_start, (args.batch,), device=device, generator=gen)
        b = train_ids[starts[:, None] + offs]
        return b[:, :-1], b[:, 1:]

    step_fn_model = model
    if args.compile:
        step_fn_model = torch.compile(model)

    def train_step(m, x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = m(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    model.train()
    history, best = [], None
    start = time.time()
    last_eval, step, tokens = start, 0, 0
    compiled_ok = args.compile
    while True:
        elapsed = time.time() - start
        frac = step / args.steps if args.steps else elapsed / budget
        if (args.steps and step >= args.steps) or elapsed >= budget:  # --minutes caps a --steps run too
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, frac)
        x, y = batch()
        try:
            loss = train_step(step_fn_model, x, y)
        except Exception as e:  # noqa: BLE001
            if step_fn_model is model:
                raise
            log(f"torch.compile failed at step {step} ({type(e).__name__}: {str(e)[:300]}); continuing eager")
            opt.zero_grad(set_to_none=True)
            step_fn_model, compiled_ok = model, False
            loss = train_step(model, x, y)
        step += 1; tokens += x.numel()
        if step == 1 or step % 100 == 0:
            torch.cuda.synchronize()
            el = time.time() - start
            log(f"step {step:6d}  loss {float(loss.detach()):.4f}  lr {opt.param_groups[0]['lr']:.2e}  "
                f"{tokens / max(el, 1e-9) / 1e6:.2f}M tok/s  {el:6.1f}s")
        if (step % args.eval_every == 0) if args.eval_every else (time.time() - last_eval >= args.eval_seconds):
            v = evaluate(model, val_sets, device)
            last_eval = time.time()
            history.append({"step": step, "seconds": round(last_eval - start, 1), "train_loss": round(float(loss.detach()), 4),
                            **{f"val_{k}": round(val, 4) for k, val in v.items()}})
            improved = best is None or v["all"] < best["val"]["all"]
            if improved:
                best = {"step": step, "val": v, "state": {k: t.detach().clone() for k, t in model.state_dict().items()}}
            log(f"eval step {step}: val " + " ".join(f"{k} {val:.4f}" for k, val in v.items())
                + ("  (best)" if improved else ""))
    torch.cuda.synchronize()
    train_seconds = time.time() - start
    final = evaluate(model, val_sets, device)
    history.append({"step": step, "seconds": round(train_seconds, 1), "train_loss": round(float(loss.detach()), 4),
                    **{f"val_{k}": round(val, 4) for k, val in final.items()}})
    log(f"trained {step} steps, {tokens:,} tokens in {train_seconds:.0f}s; final val "
        + " ".join(f"{k} {val:.4f}" for k, val in final.items()))
    if best is None or final["all"] <= best["val"]["all"]:
        best = {"step": step, "val": final, "state": None}
    else:
        model.load_state_dict(best["state"])
        log(f"keeping the checkpoint with the best validation loss: step {best['step']}, val {best['val']['all']:.4f}")
    for h in hooks:
        h.remove()

    model.config.attention_dropout = 0.0
    model = model.to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2)
    model.save_pretrained(args.out)
    summary = {
        "parameters": n_params, "vocab_size": vocab, "steps": step, "train_seconds": round(train_seconds, 1),
        "tokens_seen": tokens, "train_tokens": len(train_ids), "batch": args.batch, "seq": args.seq,
        "lr": args.lr, "warmup": args.warmup, "min_lr_ratio": args.min_lr_ratio, "weight_decay": args.weight_decay,
        "dropout": args.dropout, "seed": args.seed, "torch_compile": compiled_ok,
        "saved_step": best["step"], "saved_val_loss": {k: round(v, 4) for k, v in best["val"].items()},
        "final_step_val_loss": {k: round(v, 4) for k, v in final.items()},
        "gpu": torch.cuda.get_device_name(0), "corpus": counts, "history": history,
    }
    return summary


# ------------------------------------------------------------------------------------------ reference
def step_logits(model, ids, cache, pos):
    import torch
    out = model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([list(range(pos, pos + len(ids)))]),
                past_key_values=cache, use_cache=True)
    return out.logits[0, -1].float()


def greedy(model, ids, n):
    """Prefill then one token at a time through a DynamicCache, recording each step's top-2 margin."""
    import torch
    from transformers import DynamicCache
    cache = DynamicCache()
    last = step_logits(model, ids, cache, 0)
    tokens, margins = [], []
    for i in range(n):
        top2 = torch.topk(last, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        tokens.append(int(top2.indices[0]))
        if i + 1 < n:
            last = step_logits(model, [tokens[-1]], cache, len(ids) + i)
    return tokens, margins


def sample(model, ids, n, temperature, gen, stop=None):
    import torch
    from transformers import DynamicCache
    cache = DynamicCache()
    last = step_logits(model, ids, cache, 0)
    out = []
    for i in range(n):
        probs = torch.softmax(last / temperature, dim=-1)
        t = int(torch.multinomial(probs, 1, generator=gen))
        if stop is not None and t == stop:
            break
        out.append(t)
        last = step_logits(model, [t], cache, len(ids) + i)
    return out


def reference(args, tok, summary):
    import torch
    import transformers
    from transformers import LlamaForCausalLM
    try:
        model = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        model = LlamaForCausalLM.from_pretrained(args.out, torch_dtype=torch.float32, attn_implementation="eager")
    model = model.to("cpu").eval()
    p = next(model.parameters())
    assert p.dtype == torch.float32, p.dtype
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ref = {
        "model": "turbine-demo", "transformers": transformers.__version__, "torch": torch.__version__,
        "storage_dtype": "bfloat16", "reference_dtype": "float32", "attn_implementation": "eager", "device": "cpu",
        "greedy_tokens": GREEDY_TOKENS,
        "notes": "prompt_ids = tokenizer(prompt, add_special_tokens=True) (BOS first); greedy_ids are 32 argmax "
                 "tokens after a prefill of prompt_ids then one token at a time with a DynamicCache, not stopped at "
                 "EOS; margins[i] = top-1 minus top-2 logit at step i; min_margin = min(margins).",
        "cases": [],
    }
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=True).ids
            toks, margins = greedy(model, ids, GREEDY_TOKENS)
            text = tok.decode(toks, skip_special_tokens=False)
            ref["cases"].append({"prompt": prompt, "prompt_ids": ids, "greedy_ids": toks, "greedy_text": text,
                                 "margins": [round(m, 5) for m in margins], "min_margin": min(margins)})
            log(f"greedy {prompt!r} -> {text!r} (min margin {min(margins):.3f})")
        gen = torch.Generator().manual_seed(args.seed)
        samples = []
        for prompt in SAMPLE_PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=True).ids
            out = sample(model, ids, 64, 0.8, gen)
            samples.append({"prompt": prompt, "completion": tok.decode(out, skip_special_tokens=False)})
        for user in CHAT_SAMPLES:
            text = render_chat([{"role": "user", "content": user}], add_generation_prompt=True)
            ids = tok.encode(text, add_special_tokens=False).ids
            out = sample(model, ids, 64, 0.8, gen, stop=1)
            samples.append({"chat_user": user, "completion": tok.decode(out, skip_special_tokens=False)})
        for s in samples:
            log(f"sample {s.get('prompt', s.get('chat_user'))!r} -> {s['completion']!r}")
    ref["validation_loss"] = summary["saved_val_loss"]
    ref["samples"] = {"temperature": 0.8, "seed": args.seed, "max_new_tokens": 64, "outputs": samples}
    ref["training"] = summary
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=6.0, help="training time budget (time-based cosine schedule)")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count instead of a time budget")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--val-percent", type=int, default=4)
    ap.add_argument("--chat-fraction", type=float, default=0.1)
    ap.add_argument("--eval-seconds", type=float, default=15.0)
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (instead of every --eval-seconds)")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    args = ap.parse_args()
    t0 = time.time()
    import torch, transformers, tokenizers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
        f"cuda {torch.cuda.is_available()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}")
    os.makedirs(args.out, exist_ok=True)
    tok = train_tokenizer(args.corpus, args.out)
    log(f"tokenizer trained in {time.time() - t0:.1f}s")
    check_hf_tokenizer(args.out, tok)
    data, counts = split_corpus(args.corpus, args.val_percent, args.chat_fraction, args.seed)
    log(f"corpus: {counts}")
    summary = train(args, tok, data, counts)
    reference(args, tok, summary)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    log(f"files: {sizes}; total {sum(sizes.values()) / 1e6:.2f} MB; wall {time.time() - t0:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
