#!/usr/bin/env bash
# One-time (and idempotent) set-up of a fresh Debian 12 / Ubuntu machine for isoflop:
#   1. the Debian packages the build, the tests and the plots need (skipped when all are present),
#   2. a project-local Python virtual environment .venv with torch==2.11.0 from PyPI (the LibTorch that
#      worker/ links) and the reference tokenizer used by the tests (skipped when already right),
#   3. configure and build into build/ (incremental: fast when nothing changed),
#   4. the smoke sweep's corpus: real English text from Debian's `fortunes` package (about 2.5 MB),
#      tokenized byte-level into data/smoke/ (skipped when its manifest exists).
# Re-running it when everything is in place takes a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TORCH_VERSION="2.11.0"
BUILD_DIR="${ISOFLOP_BUILD_DIR:-$ROOT/build}"
say() { printf '[setup] %s\n' "$*"; }

# --- 1. Debian packages ---------------------------------------------------------------------------
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libyaml-cpp-dev libsqlite3-dev sqlite3 libmuparser-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libboost-dev libboost-system-dev libcli11-dev libeigen3-dev libceres-dev libssl-dev libpcre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev
  gnuplot-nox
  fortunes
  python3 python3-venv python3-pip
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# --- 2. Python virtual environment with LibTorch ---------------------------------------------------
PY="$ROOT/.venv/bin/python"
if ! "$PY" -c "import torch, tokenizers, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  say "creating .venv with torch==$TORCH_VERSION (a large download the first time)"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install -q --upgrade pip
  "$ROOT/.venv/bin/pip" install -q "torch==$TORCH_VERSION" tokenizers
else
  say ".venv: torch $TORCH_VERSION present"
fi

# --- 3. Configure and build -------------------------------------------------------------------------
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  say "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
say "building (2 cores: the first build of the LibTorch worker takes several minutes)"
cmake --build "$BUILD_DIR" -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
test -x "$BUILD_DIR/coordinator/isoflop" || { echo "[setup] build failed" >&2; exit 1; }

# --- 4. The smoke corpus -----------------------------------------------------------------------------
if [ ! -f "$ROOT/data/smoke/manifest.json" ]; then
  say "preparing data/smoke from Debian's fortunes (byte-level tokens)"
  mapfile -t texts < <(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' ! -name 'ascii-art' | sort)
  rm -rf "$ROOT/data/smoke"
  "$BUILD_DIR/coordinator/isoflop" data prepare --tokenizer bytes --out "$ROOT/data/smoke" "${texts[@]}"
fi
say "done: $BUILD_DIR/coordinator/isoflop"
