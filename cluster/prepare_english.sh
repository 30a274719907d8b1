#!/usr/bin/env bash
# Prepares data/english: GPT-2 BPE token shards of real English prose for the example sweeps
# (sweeps/gpu-ladder.yaml, pgpt.yaml, skipless.yaml, structured_ffn.yaml): ../shared/data/corpus (Brown,
# Austen, Shakespeare; 2.7M tokens) plus the GNU Collaborative International Dictionary of English
# (Debian's dict-gcide: 40 MB of 1913 Webster definitions and quotations; 11M tokens). Citation tags
# such as "[1913 Webster]" are dropped. Idempotent: an existing data/english is kept.
#   cluster/prepare_english.sh      (needs network for apt-get download, and a built isoflop CLI)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${ISOFLOP_SHARED_DIR:-$ROOT/../shared}"
ISOFLOP="${ISOFLOP_BUILD_DIR:-$ROOT/build}/coordinator/isoflop"
OUT_DIR="$ROOT/data/english"
[ -d "$OUT_DIR" ] && exit 0

text="$(mktemp -d)"
trap 'rm -rf "$text"' EXIT
echo "== fetching Debian's dict-gcide"
(cd "$text" && apt-get download -q dict-gcide 2>&1 | { grep -v '^W: Download' || true; })
dpkg-deb --fsys-tarfile "$text"/dict-gcide_*.deb | tar -xO ./usr/share/dictd/gcide.dict.dz |
  gzip -dc | sed -E '/^[[:space:]]*\[[^]]*\][[:space:]]*$/d; s/^[[:space:]]+//' >"$text/gcide.txt"
echo "== tokenizing $SHARED/data/corpus and gcide (GPT-2 BPE) into data/english"
"$ISOFLOP" data prepare --tokenizer gpt2 --gpt2-dir "$SHARED/data/tokenizer/gpt2" \
  --out "$OUT_DIR" "$SHARED/data/corpus" "$text/gcide.txt" 2>&1 | tr '\r' '\n' | tail -1
