"""Writes texts.json, the strings whose token ids the tokenizer tests compare with Hugging Face `tokenizers`:
hand-picked edge cases plus paragraphs of the seed documents (mostly Chinese).
    python3 tools/reference/make_texts.py SEEDS_DIR OUT.json
"""
import json, os, sys

CASES = [
    "", " ", "  ", "\n", "\n\n\n", "\t", " \t \n ", "a", "Hello, world!", " Hello", "Hello  world   !",
    "The quick brown fox jumps over the lazy dog.", "I'm don't we'll they've she'd it's", "HELLO hello HeLLo",
    "1234567890 3.14159 1,000,000 2026-11-22", "你好", "你好，世界！", "无锡有什么好吃的", "What is machine learning?",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。", "大模型推理服务 Triton + TensorRT-LLM 部署 ChatGLM3-6B",
    "日本語のテキストも少し。한국어도 조금.", "Ünïcödé café naïve résumé", "e\u0301 versus \u00e9",
    "emoji 😀🎉👍🏽 👨‍👩‍👧‍👦 🇨🇳", "😀", "🤖🚀", "\u200b zero width", "tab\tseparated\tvalues",
    "def f(x):\n    return x * 2  # double\n\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }", "curl -X POST localhost:8000/v2/models/ensemble/generate -d '{\"text_input\": \"你好\", \"max_tokens\": 200}'",
    "    leading spaces", "trailing spaces    ", "many          spaces", "line1\r\nline2\rline3",
    "<s>", "</s>", "<s> hello </s>", "text<s>inside", "<unk>", "<|begin_of_text|>Hello<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>", "<think>\n\n</think>\n\n", "<|im_start|> spaced <|im_end|>", "<|not_a_special_token|>",
    "▁underscore▁like▁sentencepiece", "ﬁ ligature ﬂ and full-width ＡＢＣ１２３", "x" * 300, "中" * 100,
    "👍" * 20, "\u0000 nul and \u007f del", "ab\ud7ffcd", "mixed中文English混合text测试123",
]


def main():
    seeds, out = sys.argv[1], sys.argv[2]
    texts = list(CASES)
    for name in sorted(os.listdir(seeds)):
        body = open(os.path.join(seeds, name), encoding="utf-8").read()
        paras = [p for p in body.split("\n\n") if p.strip()]
        step = max(1, len(paras) // 12)
        texts.extend(p[:1500] for p in paras[::step])
    json.dump(texts, open(out, "w", encoding="utf-8"), ensure_ascii=False, indent=0)
    print(len(texts), "texts")


if __name__ == "__main__":
    main()
