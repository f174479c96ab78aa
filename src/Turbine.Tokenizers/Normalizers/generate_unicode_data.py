"""Writes UnicodeNormalization.bin, the tables UnicodeNormalization.cs reads, from Python's unicodedata.

.NET's string.Normalize is a no-op under InvariantGlobalization (Turbine's setting), so NFC/NFD/NFKC/NFKD need
their own tables. Run: python3 generate_unicode_data.py (writes next to this script).

Layout (little-endian int32 unless noted): version string length + UTF-8 bytes;
combining classes: count, then (code point, class byte) pairs;
full canonical decompositions: count, then (code point, length byte, code points);
full compatibility decompositions: same layout;
primary compositions: count, then (first, second, composite) triples.
Hangul syllables are left out: the code handles them algorithmically.
"""
import os, struct, sys, unicodedata

def hangul(cp):
    return 0xAC00 <= cp <= 0xD7A3

def main():
    out = bytearray()
    version = unicodedata.unidata_version.encode()
    out += struct.pack("<i", len(version)) + version
    ccc = [(cp, unicodedata.combining(chr(cp))) for cp in range(0x110000) if unicodedata.combining(chr(cp))]
    out += struct.pack("<i", len(ccc))
    for cp, c in ccc:
        out += struct.pack("<iB", cp, c)
    for form in ("NFD", "NFKD"):
        rows = []
        for cp in range(0x110000):
            if hangul(cp) or 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            d = unicodedata.normalize(form, ch)
            if d != ch:
                rows.append((cp, [ord(x) for x in d]))
        out += struct.pack("<i", len(rows))
        for cp, d in rows:
            out += struct.pack("<iB", cp, len(d)) + b"".join(struct.pack("<i", x) for x in d)
    comps = []
    for cp in range(0x110000):
        if hangul(cp) or 0xD800 <= cp <= 0xDFFF:
            continue
        raw = unicodedata.decomposition(chr(cp))
        if not raw or raw.startswith("<"):
            continue
        parts = [int(x, 16) for x in raw.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            comps.append((parts[0], parts[1], cp))
    out += struct.pack("<i", len(comps))
    for a, b, c in comps:
        out += struct.pack("<iii", a, b, c)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "UnicodeNormalization.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"{path}: {len(out)} bytes, {len(ccc)} classes, {len(comps)} compositions", file=sys.stderr)

main()
