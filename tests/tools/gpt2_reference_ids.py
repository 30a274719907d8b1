#!/usr/bin/env python3
"""Reference GPT-2 token ids from Hugging Face `tokenizers`, for tests/gpt2_reference_test.cpp.

    gpt2_reference_ids.py --tokenizer DIR --out DIR FILE...

Each FILE is read as bytes, decoded as UTF-8 and encoded as one whole text (the C++ test encodes each
file whole too, so both sides cut documents the same way). Writes to --out:
    unicode_sweep.txt  a generated text of every code point in several contexts, encoded like FILEs
    NNN.u32        the ids of the NNN-th file, little-endian uint32
    strings.json   [{"text": ..., "ids": [...]}] for the hard strings below
    reference.json {"tokenizers_version", "files": [{"source", "ids", "tokens"}], "strings"}
reference.json is written last and removed first, so the C++ test never reads a half-made or stale set.
Exits 77 (ctest's SKIP_RETURN_CODE) when the `tokenizers` package is not installed.
"""

import argparse
import array
import json
import os
import sys

SKIP = 77

# Strings where a tokenizer most easily goes wrong: the pattern's Unicode classes (letters, numbers,
# whitespace beyond ASCII), its lookahead (whitespace runs before text), contractions (case-sensitive
# in GPT-2), and byte-level BPE of multi-byte characters.
HARD_STRINGS = [
    "Hello world",
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "a  b   c    d",
    "trailing spaces   ",
    "   leading spaces",
    "tabs\tand\t\ttabs",
    "mixed \t \n whitespace \r\n runs\n \n",
    "line\r\nbreaks\rold mac",
    "I'm sure you'll see it's what we'd've done, they're here, we've won.",
    "CAPS CONTRACTIONS: I'M, YOU'LL, IT'S, WE'D, THEY'RE",
    "'s 't 're 've 'm 'll 'd",
    "don't' ''s '''",
    "\u2019s curly apostrophe isn\u2019t a contraction",
    "numbers 0 7 42 1234567890 3.14159 -12 1,000,000 1e10 0x1F",
    "\u0661\u0662\u0663 Arabic-Indic digits, \u00bd fraction, \u2163 roman numeral",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber \u00c5ngstr\u00f6m",
    "e\u0301 combining acute, n\u0303",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \ud55c\uad6d\uc5b4",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947",
    "emoji \U0001F600\U0001F389 \U0001F44D\U0001F3FD family \U0001F468\u200D\U0001F469\u200D\U0001F467 "
    "flag \U0001F1EF\U0001F1F5",
    "math \u2211 \u222b \u221e \u2264 \u2260 \u00b1 \u00d7 \u00f7",
    "symbols !!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) ___ +++ === ~~~ ```",
    "url https://example.com/path?q=1&r=two#frag and email a.b@c.org",
    "code: for (int i = 0; i < n; ++i) { x[i] = y[i] * 2; }",
    "nbsp\u00a0between, ideographic\u3000space, thin\u2009space, em\u2003space",
    "line\u2028separator paragraph\u2029separator next\u0085line",
    "mongolian\u180evowel \u180e separator, \u0085 \u0085x, \u2028 \u2028y, \u00a0 \u00a0z",
    "info\u001cseparators\u001d \u001e\u001f x \u000b\u000c vertical tab and form feed",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "soft\u00adhyphen and \u00a0\u00a0 two nbsp",
    "control \x00 nul \x01 \x1f \x7f del",
    "\u00ff\u0100\u0101 Latin-1 edge and Latin Extended-A",
    "<|endoftext|> is text here",
    "a" * 300,
    " " * 300 + "x",
    "ab" * 150,
    "\U00010348 Gothic hwair, \U0001D11E musical G clef",
]


def unicode_sweep() -> str:
    """Every code point from U+0020 to U+2FFFF and the tag/variation-selector block, each repeated, after
    a space, before a digit and at a line start: where the pattern's Unicode classes (\\s, \\p{L},
    \\p{N}) in PCRE2 and in the reference could disagree, some piece boundary here moves."""
    code_points = [cp for cp in range(0x20, 0x30000) if not 0xD800 <= cp <= 0xDFFF]
    code_points += range(0xE0000, 0xE0200)
    return "".join(f"{c}{c} {c}1\n" for c in map(chr, code_points))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="directory with vocab.json and merges.txt")
    parser.add_argument("--out", required=True, help="directory for the reference ids")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "reference.json")
    if os.path.exists(manifest_path):
        os.remove(manifest_path)

    try:
        import tokenizers
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        print("skipped: the Python package `tokenizers` is not installed", file=sys.stderr)
        return SKIP

    # GPT-2 exactly: no normalizer, byte-level pre-tokenizer with GPT-2's regex and no prefix space,
    # BPE over vocab.json/merges.txt, no special tokens (the C++ side encodes "<|endoftext|>" as text).
    bpe = models.BPE.from_file(os.path.join(args.tokenizer, "vocab.json"),
                               os.path.join(args.tokenizer, "merges.txt"))
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()

    def encode(text):
        return tokenizer.encode(text, add_special_tokens=False).ids

    check = encode("Hello world")
    if check != [15496, 995]:
        print(f"reference tokenizer is not GPT-2: 'Hello world' -> {check}", file=sys.stderr)
        return 1

    sources = list(args.files)
    sweep_path = os.path.join(args.out, "unicode_sweep.txt")
    with open(sweep_path, "w", encoding="utf-8", newline="") as f:
        f.write(unicode_sweep())
    sources.append(sweep_path)

    texts = []
    for source in sources:
        with open(source, "rb") as f:
            texts.append(f.read().decode("utf-8"))
    # encode_batch_fast (tokenizers >= 0.20) skips offset tracking, which costs most of the time on
    # multi-megabyte texts; the ids are the same.
    encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = encode_batch(texts, add_special_tokens=False)

    files = []
    for index, (source, encoding) in enumerate(zip(sources, encodings)):
        ids = array.array("I", encoding.ids)
        assert ids.itemsize == 4
        if sys.byteorder != "little":
            ids.byteswap()
        name = f"{index:03d}.u32"
        with open(os.path.join(args.out, name), "wb") as f:
            ids.tofile(f)
        files.append({"source": os.path.abspath(source), "ids": name, "tokens": len(ids)})

    strings = [{"text": text, "ids": encode(text)} for text in HARD_STRINGS]
    with open(os.path.join(args.out, "strings.json"), "w", encoding="utf-8") as f:
        json.dump(strings, f, ensure_ascii=True)

    manifest = {"tokenizers_version": tokenizers.__version__, "files": files,
                "strings": "strings.json"}
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
