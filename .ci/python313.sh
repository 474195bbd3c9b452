#!/usr/bin/env bash
# Print the path of a working Python 3.13 interpreter (stdout: the path only; progress on stderr).
#
#   1. `python3.13` from PATH, if it runs and has the modules pip and our packages need;
#   2. else the one this script built before, cached in $SCPRINT_PY313_PREFIX
#      (default ${XDG_CACHE_HOME:-~/.cache}/scprint-ci/python3.13.5);
#   3. else CPython 3.13.5 built from Debian's source tarball (the sha256 below checked), taken from
#      the Debian archive the system's own apt configuration names (or $SCPRINT_DEBIAN_MIRROR), for
#      machines that reach a Debian archive but not python.org. Plain build (no PGO/LTO),
#      `make altinstall` into the cache.
#
# Use:  export PATH="$(dirname "$(bash .ci/python313.sh)"):$PATH"   then   nox -s tests-py313
# The cache folder's bin/ holds only python3.13, pip3.13, ... (altinstall): it never shadows python3.
set -euo pipefail

VERSION=3.13.5
TARBALL=python3.13_${VERSION}.orig.tar.xz
POOL_PATH=pool/main/p/python3.13/${TARBALL}
SHA256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
PREFIX=${SCPRINT_PY313_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/scprint-ci/python${VERSION}}
# Debian packages whose headers the interpreter needs (ssl for pip, the compressors, ctypes for numba).
BUILD_DEPS=(build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev)

log() { echo "python313: $*" >&2; }

# The Debian archive to download from: $SCPRINT_DEBIAN_MIRROR, else the first archive (not the
# security one) in the system's apt sources (deb822 `URIs:` lines or one-line `deb URI suite`).
debian_mirror() {
    if [[ -n ${SCPRINT_DEBIAN_MIRROR:-} ]]; then
        echo "${SCPRINT_DEBIAN_MIRROR%/}"
        return 0
    fi
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
    local uri
    uri=$(cat "${files[@]}" 2>/dev/null \
        | sed -nE -e 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' \
            -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
        | grep -E '/debian/?$' | head -n 1)
    if [[ -z $uri ]]; then
        log "no Debian archive found in the apt sources; set SCPRINT_DEBIAN_MIRROR to one" \
            "(the folder holding pool/ and dists/)"
        return 1
    fi
    echo "${uri%/}"
}

# Succeeds when $1 is a Python 3.13 with the standard modules the sessions rely on.
usable() {
    "$1" -c 'import sys, ssl, zlib, bz2, lzma, sqlite3, ctypes, venv, ensurepip
assert sys.version_info[:2] == (3, 13), sys.version' >/dev/null 2>&1
}

if found=$(command -v python3.13) && usable "$found"; then
    "$found" -c 'import sys; print(sys.executable)'
    exit 0
fi
if usable "$PREFIX/bin/python3.13"; then
    echo "$PREFIX/bin/python3.13"
    exit 0
fi

if [[ -e $PREFIX && ! -e $PREFIX/.built-by-scprint-ci ]]; then
    log "$PREFIX exists but was not built by this script; remove it or set SCPRINT_PY313_PREFIX elsewhere"
    exit 1
fi

missing=()
if command -v dpkg-query >/dev/null; then
    for package in "${BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
fi
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing build dependencies: ${missing[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        log "cannot build Python $VERSION: missing Debian packages ${missing[*]};" \
            "run: sudo apt-get install ${missing[*]}"
        exit 1
    fi
fi

mirror=$(debian_mirror)
URL="$mirror/$POOL_PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
log "no Python 3.13 found; downloading $URL"
curl --fail --silent --show-error --location --retry 3 --output "$work/$TARBALL" "$URL"
if ! echo "$SHA256  $work/$TARBALL" | sha256sum --check --quiet - >&2; then
    log "checksum mismatch for $URL: expected sha256 $SHA256, got $(sha256sum "$work/$TARBALL" | cut -d' ' -f1)"
    exit 1
fi
tar -xJf "$work/$TARBALL" -C "$work"
source_dir="$work/Python-$VERSION"
log "building CPython $VERSION with $(nproc) jobs (log: $work/build.log, shown on failure)"
# Installed into a staging folder first and moved into place at the end, so an interrupted build
# never leaves a half-installed interpreter in the cache.
if ! (
    cd "$source_dir" \
        && ./configure --prefix="$PREFIX" --with-ensurepip=install --disable-test-modules \
        && make -j"$(nproc)" \
        && make altinstall DESTDIR="$work/stage"
) >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    log "building CPython $VERSION failed (see the lines above)"
    exit 1
fi
if ! usable "$work/stage$PREFIX/bin/python3.13"; then
    "$work/stage$PREFIX/bin/python3.13" -c 'import ssl, zlib, bz2, lzma, sqlite3, ctypes' >&2 || true
    log "the built interpreter lacks a standard module (see above); are the headers of ${BUILD_DEPS[*]} installed?"
    exit 1
fi
touch "$work/stage$PREFIX/.built-by-scprint-ci"
rm -rf "$PREFIX"
mkdir -p "$(dirname "$PREFIX")"
mv "$work/stage$PREFIX" "$PREFIX"
log "built CPython $VERSION into $PREFIX in $((SECONDS - start)) s"
echo "$PREFIX/bin/python3.13"
