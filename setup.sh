#!/usr/bin/env bash
# Installs what heaven needs from Debian's packages (only what is missing),
# then configures and builds heaven into build/. Safe to run again: a second
# run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  cmake ninja-build g++ pkg-config ccache git ca-certificates
  libcaf-dev libsimdjson-dev libcurl4-openssl-dev libssh2-1-dev
  libboost-test-dev libboost-dev libssl-dev libsqlite3-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libpugixml-dev
  python3-botocore python3-jwt
  openssh-server openssh-client capistrano fabric ansible-core
  nghttp2-server openssl
  ruby-ed25519 ruby-bcrypt-pbkdf bundler
  libsystemd-dev systemd libgoogle-perftools-dev
  clang-16 libclang-rt-16-dev llvm-16 clang-format-14
  prometheus
  postgresql libpq-dev
  chromium chromium-driver python3-selenium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: these Debian packages are missing: ${missing[*]}" >&2
      echo "setup: run this script as root, or install sudo, so it can apt-get install them" >&2
      exit 1
    fi
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ccache: paths relative to the clone, so a fresh clone elsewhere (CI's)
# reuses what an earlier build compiled.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
# The fuzz targets (tests/fuzz/): clang with libFuzzer and the sanitizers,
# in a tree of their own; the test suite runs them briefly, tools/fuzz long.
cmake -S . -B build/fuzz -G Ninja -DHEAVEN_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
cmake --build build/fuzz -j "$(nproc)"
