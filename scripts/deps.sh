# deps.sh — sourced by demo.sh and test.sh: make sure Debian packages exist.
# Usage: need_packages PKG...   (installs with apt-get when root, otherwise
# prints the exact command and exits).
need_packages() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
            { echo "apt-get install failed:$missing" >&2; exit 1; }
    else
        echo "Missing Debian packages. Install them with:" >&2
        echo "  sudo apt-get install -y$missing" >&2
        exit 1
    fi
}

# Usage: need_pip MODULE PACKAGE — a PyPI package for Debian's /usr/bin/python3
# (dev-only test peers; Debian's Python is externally managed, hence
# --break-system-packages).
need_pip() {
    /usr/bin/python3 -c "import $1" 2>/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "Installing $2 from PyPI for /usr/bin/python3"
        # shellcheck disable=SC2086 # $2 may name several pinned packages
        /usr/bin/python3 -m pip install -q --break-system-packages ${PIP_FLAGS:-} $2 ||
            { echo "pip install $2 failed" >&2; exit 1; }
    else
        echo "Missing Python package $2. Install it with:" >&2
        echo "  sudo /usr/bin/python3 -m pip install --break-system-packages $2" >&2
        exit 1
    fi
}

# libtorch-dev: the network backend (CPU libtorch 1.13); meson finds it
# through CMake. libgloo-dev: the headers of Gloo, torch.distributed's CPU
# backend, for multi-process training.
BUILD_PACKAGES="gcc g++ meson ninja-build pkg-config cmake libgdal-dev libproj-dev libgeos-dev
                gdal-bin libtorch-dev libgloo-dev"
# Test peers: GDAL's Python bindings and numpy; torch + torchvision for the
# network; the pure-Python packages segmentation-models-pytorch needs;
# python3-qgis for the headless QGIS test (tests/qgis/check_qgis.py).
TEST_PACKAGES="check python3-gdal python3-numpy python3-pip python3-torch python3-torchvision
               python3-tqdm python3-filelock python3-packaging python3-yaml python3-requests
               python3-pil python3-typing-extensions python3-fsspec python3-sklearn python3-qgis"
# segmentation-models-pytorch and safetensors from PyPI, without their
# dependencies (which would pull a second, PyPI torch): Debian's torch 1.13
# serves. Versions known to work with it.
SMP_PIP="segmentation-models-pytorch==0.6.0 timm==1.0.31 huggingface_hub==0.36.2 safetensors==0.8.0"
# The libFuzzer targets (scripts/fuzz.sh): clang, its runtime libraries
# (libclang_rt.fuzzer and the sanitizers; libclang-rt-dev is Debian's
# unversioned name, libclang-rt-14-dev on Debian 12) and llvm-symbolizer
# (llvm) for symbolised stack traces. The fuzz build needs neither libtorch
# nor Check.
FUZZ_PACKAGES="clang libclang-rt-dev llvm meson ninja-build pkg-config libgdal-dev libproj-dev
               libgeos-dev"
