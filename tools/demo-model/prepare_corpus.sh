#!/usr/bin/env bash
# Builds the demo-model training corpus from public-domain text shipped in Debian packages:
#   bible-kjv-text  King James Version (1611, public domain), decoded with the `bible` program of bible-kjv
#   fortunes-zh     classical Chinese poetry (Tang 300, Song 100) and classical sayings/verses (pre-modern only)
# Output (git-ignored, travels to the GPU machine):
#   .device/demo/corpus_en.txt  one KJV chapter per document, one verse per line, verse numbers stripped
#   .device/demo/corpus_zh.txt  one poem/passage per document, attribution as last line, upsampled (repeated)
# Documents are separated by one blank line. Usage: tools/demo-model/prepare_corpus.sh [outdir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/.device/demo}"
SCRATCH="$(mktemp -d /tmp/demo-corpus.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$OUT"
cd "$SCRATCH"
apt-get download bible-kjv-text bible-kjv fortunes-zh >/dev/null 2>&1 || {
  echo "apt-get download failed; run 'apt-get update' first" >&2; exit 1; }
for f in *.deb; do dpkg -x "$f" x; done
ls -1 *.deb
# bible.data is a compressed random-access format; the package's own reader prints every verse
# as "Ge1:1 In the beginning ..." with -f (pretty-printing off).
x/usr/bin/bible -f -p "$SCRATCH/x/usr/lib" gen1:1-rev22:21 </dev/null >kjv_raw.txt
FORT="$SCRATCH/x/usr/share/games/fortunes"
python3 - "$SCRATCH/kjv_raw.txt" "$FORT" "$OUT" <<'PY'
import sys, re, unicodedata, hashlib, os
kjv_path, fort, out = sys.argv[1:4]

def nfc(s): return unicodedata.normalize("NFC", s)

# ---------- English: KJV, one document per chapter ----------
chapters, cur, key = [], [], None
n_verses = 0
for line in open(kjv_path, encoding="latin-1"):
    line = line.rstrip("\n")
    if not line.strip():
        continue
    m = re.match(r"^([1-3]?[A-Za-z]+)(\d+):(\d+)\s+(.*)$", line)
    if not m:
        raise SystemExit(f"unexpected KJV line: {line[:80]!r}")
    book_ch = (m.group(1), m.group(2))
    text = re.sub(r"\s+", " ", m.group(4)).strip()
    if book_ch != key and cur:
        chapters.append("\n".join(cur)); cur = []
    key = book_ch
    cur.append(nfc(text)); n_verses += 1
if cur: chapters.append("\n".join(cur))
seen, en_docs = set(), []
for d in chapters:
    h = hashlib.sha1(d.encode()).hexdigest()
    if h not in seen:
        seen.add(h); en_docs.append(d)
assert n_verses == 31102, n_verses
assert len(en_docs) == 1189, len(en_docs)

# ---------- Chinese ----------
ANSI = re.compile(r"\x1b\[[0-9;]*m")
def read_entries(name):
    t = ANSI.sub("", open(os.path.join(fort, name), encoding="utf-8").read())
    return [e.strip("\n") for e in re.split(r"\n%\n", t) if e.strip()]

def clean_zh_line(l):
    l = l.replace("\u3000", " ").replace("\xa0", " ").strip()
    l = re.sub(r"\s+", "", l) if re.search(r"[\u4e00-\u9fff]", l) else re.sub(r"\s+", " ", l)
    return nfc(l)

def body_lines(lines):
    return [c for c in (clean_zh_line(l) for l in lines) if c]

CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
OK_BODY = re.compile(rf"^[{CJK}\u3000-\u303f\uff00-\uffef\u2014\u2026\u00b7\u2018\u2019\u201c\u201d\u30fb\n ]+$")
def ok_body(b):
    return bool(re.search(rf"[{CJK}]", b)) and bool(OK_BODY.match(b))

zh = []  # (body, attribution)
# Tang 300: "《title》" / "作者：name" / body
for e in read_entries("tang300"):
    ls = e.split("\n")
    title = re.sub(r"[《》]", "", ls[0]).strip()
    author = re.sub(r"^作者[：:]", "", ls[1]).strip()
    zh.append(("\n".join(body_lines(ls[2:])), f"——{author}《{title}》"))
# Song 100: "题目:《title》..." / "作者:name（dates）" / body (with sub-headings and blank lines)
for e in read_entries("song100"):
    ls = e.split("\n")
    title = re.sub(r"^题目[：:]", "", ls[0]).strip()
    title = re.sub(r"[《》]", "", title)
    author = re.sub(r"^作者[：:]", "", ls[1]).strip()
    author = re.sub(r"（.*?）|\(.*?\)", "", author).strip()
    zh.append(("\n".join(body_lines(ls[2:])), f"——{author}《{title}》"))
# General collection: keep only pre-modern (public-domain) classical texts.  Entries whose body has
# Latin letters/digits/other scripts (Debian docs, technical tips, translations) are dropped, as are
# entries without attribution and those attributed to 20th/21st-century authors or modern works.
MODERN = ["钱钟书", "赫拉利", "斯托曼", "RMS", "吴军", "Debian", "老舍", "毛泽东", "巴金", "冰心", "朱自清",
          "余光中", "李彦宏", "王健林", "言峰绮礼", "Iskandar", "胡志明", "网吧", "陈毅", "钢之炼金术师",
          "Raymond", "Torvalds", "Hoare", "Russel", "Santayana", "Kay", "张元"]
drop = {"latin_or_symbols": 0, "no_attribution": 0, "modern": 0}
for e in read_entries("chinese"):
    ls = e.split("\n")
    att = [l for l in ls if re.match(r"^\s*--", l)]
    body = "\n".join(body_lines([l for l in ls if not re.match(r"^\s*--", l)]))
    if not ok_body(body): drop["latin_or_symbols"] += 1; continue
    if not att: drop["no_attribution"] += 1; continue
    src = re.sub(r"^\s*--\s*", "", att[-1]).strip()
    if not src: drop["no_attribution"] += 1; continue
    if any(m in src for m in MODERN) or re.search(r"[A-Za-z]", src) or "年，" in src and "鲁迅" not in src:
        drop["modern"] += 1; continue
    src = re.sub(r"^一九[一二三]\S*年，", "", src)
    zh.append((body, "——" + clean_zh_line(src)))

seen, zh_docs = set(), []
for body, att in zh:
    if not body or not ok_body(body): continue
    k = re.sub(rf"[^{CJK}]", "", body)
    if len(k) < 4 or k in seen: continue
    seen.add(k); zh_docs.append(body + "\n" + att)

en_bytes = sum(len(d.encode()) + 2 for d in en_docs)
zh_bytes = sum(len(d.encode()) + 2 for d in zh_docs)
# Upsample the Chinese so it is about 40% of the English bytes (~a third of the training tokens).
k = max(1, min(8, round(0.4 * en_bytes / zh_bytes)))
with open(os.path.join(out, "corpus_en.txt"), "w", encoding="utf-8") as f:
    f.write("\n\n".join(en_docs) + "\n")
with open(os.path.join(out, "corpus_zh.txt"), "w", encoding="utf-8") as f:
    f.write("\n\n".join(zh_docs * k) + "\n")
print(f"english: {len(en_docs)} chapters, {n_verses} verses, {en_bytes/1e6:.2f} MB")
print(f"chinese: {len(zh_docs)} unique documents, {sum(len(d) for d in zh_docs)} chars, "
      f"{zh_bytes/1e6:.2f} MB, upsampled x{k}; dropped from the general collection: {drop}")
PY
ls -l "$OUT"/corpus_*.txt
