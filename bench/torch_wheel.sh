#!/bin/sh
# torch_wheel.sh — build gseg's libtorch shim (src/infer/net.cpp) against the
# newest `torch` wheel on PyPI (libtorch 2.x, CUDA-enabled Linux wheel)
# instead of Debian's libtorch-dev 1.13, to prove that the code builds on
# libtorch 2.x and that the --device cuda branch (GSEG_TORCH_CUDA) compiles
# and links. Prints a summary; exits non-zero if anything failed.
#
#   sh bench/torch_wheel.sh
#
# Steps
#   1. pip download --no-deps torch (CPython 3.11, manylinux x86_64) into the
#      cache; unzip its torch/ package (headers, lib/, share/cmake/Torch).
#   2. CUDA build dir: -Dtorch=enabled -Dtorch_prefix=<wheel>/torch
#      -Dtorch_cuda=enabled; meson compile (library, tools, tests); checks that
#      net.cpp was compiled with GSEG_TORCH_CUDA, that libgseg.so references
#      torch::cuda::device_count (the CUDA branch) and has libtorch_cuda.so as
#      NEEDED.
#      Linking *executables* against libtorch_cuda.so needs every library it
#      depends on. The wheel expects NVIDIA's pip packages; the CUDA toolkit
#      installed here provides most of them, but not cuFile, cuSPARSELt and
#      NVSHMEM, and its NCCL is older than the wheel's. With
#      TORCH_CUDA_LIBS=pip (default) those few packages, at the versions pinned
#      in the wheel's metadata, are downloaded (~0.6 GB) and passed as
#      -Wl,-rpath-link (link) and LD_LIBRARY_PATH (run). With
#      TORCH_CUDA_LIBS=none nothing is downloaded and executables are linked
#      with -Wl,--allow-shlib-undefined instead: that proves the link of
#      libgseg itself only, and the CUDA build's tests are not run.
#      On a machine without an NVIDIA GPU/driver the CUDA build's check_net
#      exercises the CUDA branch up to torch::cuda::device_count() == 0
#      ("no CUDA device is visible"); no kernel runs on a GPU.
#   3. CPU build dir: same libtorch with -Dtorch_cuda=disabled; libgseg must
#      not need any CUDA library; runs `meson test check_net check_safetensors`
#      on libtorch 2.x (CPU) with no CUDA library path set.
#
# Environment
#   TORCH_WHEEL_DIR   cache folder (bench/work/torch-wheel)
#   TORCH_SPEC        pip requirement (torch), e.g. "torch==2.15.0"
#   TORCH_CUDA_LIBS   pip | none (pip), see above
#   TORCH_TESTS       tests to run ("check_net check_safetensors")
set -eu
cd "$(dirname "$0")/.."
src=$PWD
py=/usr/bin/python3
cache=${TORCH_WHEEL_DIR:-bench/work/torch-wheel}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
spec=${TORCH_SPEC:-torch}
cuda_libs=${TORCH_CUDA_LIBS:-pip}
tests=${TORCH_TESTS:-"check_net check_safetensors"}
log=$cache/logs
mkdir -p "$log" "$cache/dl"
# Wheels for CPython 3.11 on glibc x86_64, whatever this interpreter is.
pipflags="--only-binary=:all: --implementation cp --python-version 3.11
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_34_x86_64 --platform manylinux_2_18_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --disable-pip-version-check -d $cache/dl"
pipdl="$py -m pip download --no-deps $pipflags"

fails=""
fail() { fails="$fails
  - $*"; echo "FAIL: $*" >&2; }
say() { printf '\n== %s\n' "$*"; }

# Wheel path from pip's output ("Saved X" or "File was already downloaded X").
saved() { sed -n 's/^ *Saved \(.*\.whl\)$/\1/p; s/^ *File was already downloaded \(.*\.whl\)$/\1/p'; }

# ---- 1. the torch wheel --------------------------------------------------
say "downloading $spec (PyPI, cp311 manylinux x86_64)"
$pipdl "$spec" >"$log/pip-torch.log" 2>&1 || { cat "$log/pip-torch.log"; exit 1; }
whl=$(saved <"$log/pip-torch.log" | grep '/torch-\|^\./torch-\|^torch-' | tail -1)
case $whl in /*) ;; *) whl=$cache/dl/$(basename "$whl") ;; esac
[ -f "$whl" ] || { echo "no torch wheel in pip's output (see $log/pip-torch.log)" >&2; exit 1; }
name=$(basename "$whl" .whl)
root=$cache/$name
if [ ! -f "$root/.unpacked" ]; then
    say "unpacking torch/ from $(basename "$whl") ($(du -h "$whl" | cut -f1))"
    rm -rf "$root"
    unzip -q "$whl" 'torch/*' '*.dist-info/*' -d "$root"
    touch "$root/.unpacked"
fi
T=$root/torch
tver=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$T/version.py")
tcuda=$(sed -n "s/^cuda: .* = '\(.*\)'/\1/p" "$T/version.py")
meta=$(ls "$root"/torch-*.dist-info/METADATA)
# The C++ ABI the wheel was built with (std::__cxx11 symbols = new ABI).
if nm -D --defined-only "$T/lib/libc10.so" | grep -q '__cxx11'; then abi=1; else abi=0; fi
echo "torch $tver (CUDA ${tcuda:-none}), _GLIBCXX_USE_CXX11_ABI=$abi, $T"
[ "$abi" = 1 ] || fail "wheel uses the old C++ ABI (0): the CMake package's TORCH_CXX_FLAGS must carry -D_GLIBCXX_USE_CXX11_ABI=0"
has_cuda=no
[ -f "$T/lib/libtorch_cuda.so" ] && has_cuda=yes

# ---- CUDA runtime libraries the local toolkit lacks ------------------------
nvdirs=""
if [ "$has_cuda" = yes ] && [ "$cuda_libs" = pip ]; then
    # Pins from the wheel's metadata: NCCL, cuSPARSELt, NVSHMEM directly,
    # cuFile through cuda-toolkit[cufile] (pip resolves its pin).
    reqs=$(sed -n 's/^Requires-Dist: \(nvidia-\(nccl\|cusparselt\|nvshmem\)-[^ ;]*\).*/\1/p' "$meta")
    ctk=$(sed -n 's/^Requires-Dist: cuda-toolkit\[[^]]*\]\([^ ;]*\).*/cuda-toolkit[cufile]\1/p' "$meta")
    say "NVIDIA libraries for linking/running libtorch_cuda: $(echo $reqs) $ctk"
    # shellcheck disable=SC2086
    $pipdl $reqs >"$log/pip-nvidia.log" 2>&1 || { cat "$log/pip-nvidia.log"; exit 1; }
    if [ -n "$ctk" ]; then
        # With dependencies: the extra pulls in nvidia-cufile only.
        # shellcheck disable=SC2086
        $py -m pip download $pipflags "$ctk" >>"$log/pip-nvidia.log" 2>&1 ||
            { cat "$log/pip-nvidia.log"; exit 1; }
    fi
    nv=$cache/nvidia
    for w in $(saved <"$log/pip-nvidia.log" | sort -u); do
        case $w in /*) ;; *) w=$cache/dl/$(basename "$w") ;; esac
        case $(basename "$w") in nvidia_*) ;; *) continue ;; esac
        m=$nv/.$(basename "$w" .whl)
        [ -f "$m" ] || { unzip -q -o "$w" 'nvidia/*' -d "$nv" && touch "$m"; }
    done
    nvdirs=$(find "$nv" -name 'lib*.so*' -printf '%h\n' | sort -u | tr '\n' ':' | sed 's/:$//')
fi
if [ "$has_cuda" = yes ]; then
    unres=$(LD_LIBRARY_PATH=$nvdirs ldd -r "$T/lib/libtorch_cuda.so" 2>&1 |
            grep -c 'not found\|undefined symbol' || true)
    echo "libtorch_cuda.so: $unres missing libraries/unresolved symbols" \
         "(${nvdirs:+with the pip NVIDIA libraries, }local CUDA: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
fi

setup() { # build-dir, extra meson options...
    b=$1; shift
    if [ -f "$b/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$b" "$src" "$@"
    else
        meson setup "$b" "$src" "$@"
    fi
}
# Runs the tests; sets $tres to "N ok, M failed" (or the reason they did not run).
run_tests() { # build-dir, log-name
    set +e
    # shellcheck disable=SC2086
    meson test -C "$1" --print-errorlogs $tests >"$log/$2" 2>&1
    rc=$?
    set -e
    ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log/$2" | tail -1)
    bad=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$log/$2" | tail -1)
    to=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$log/$2" | tail -1)
    tres="${ok:-0} ok, ${bad:-?} failed${to:+, $to timed out} (exit $rc)"
    grep -E '^ *[0-9]+/[0-9]+ ' "$log/$2" || true
    [ "$rc" = 0 ]
}

# ---- 2. CUDA build -----------------------------------------------------------
bc=$cache/build-cuda
linkmode="n/a"
cuda_built=no cuda_linked=no cuda_tests="not run"
if [ "$has_cuda" = yes ]; then
    say "CUDA build: $bc"
    if [ -n "$nvdirs" ]; then
        la="-Wl,-rpath-link,$nvdirs"
        linkmode="-Wl,-rpath-link to the pip NVIDIA libraries (all symbols resolved)"
    else
        la="-Wl,--allow-shlib-undefined"
        linkmode="-Wl,--allow-shlib-undefined (libtorch_cuda's own dependencies not checked)"
    fi
    if setup "$bc" -Dtorch=enabled -Dtorch_prefix="$T" -Dtorch_cuda=enabled \
           -Dc_link_args="$la" -Dcpp_link_args="$la" >"$log/setup-cuda.log" 2>&1 &&
       meson compile -C "$bc" >"$log/compile-cuda.log" 2>&1; then
        cuda_built=yes
        grep -i 'warning' "$log/compile-cuda.log" | grep -v 'Consider using the built-in' || true
        lib=$bc/src/libgseg.so
        defd=no; grep 'infer/net.cpp' "$bc/compile_commands.json" | grep -q 'DGSEG_TORCH_CUDA' && defd=yes
        needed=no; readelf -d "$lib" | grep -q 'NEEDED.*libtorch_cuda\.so' && needed=yes
        ref=no; nm -DC "$lib" | grep -q ' U torch::cuda::device_count()' && ref=yes
        echo "net.cpp compiled with -DGSEG_TORCH_CUDA: $defd; libgseg.so NEEDED libtorch_cuda.so: $needed;" \
             "references torch::cuda::device_count(): $ref"
        if [ "$defd$needed$ref" = yesyesyes ]; then cuda_linked=yes
        else fail "CUDA build: the --device cuda branch is not compiled in or libtorch_cuda not linked"; fi
        if [ -n "$nvdirs" ]; then
            say "CUDA build: meson test $tests (CPU; CUDA libraries loaded)"
            ldp_saved=${LD_LIBRARY_PATH-}
            export LD_LIBRARY_PATH="$nvdirs${ldp_saved:+:$ldp_saved}"
            if run_tests "$bc" test-cuda.log
            then cuda_tests=$tres
            else cuda_tests=$tres; fail "CUDA build tests: $tres (see $log/test-cuda.log)"; fi
            if [ -n "$ldp_saved" ]; then LD_LIBRARY_PATH=$ldp_saved; else unset LD_LIBRARY_PATH; fi
        else
            cuda_tests="not run (TORCH_CUDA_LIBS=none: linked with --allow-shlib-undefined)"
        fi
    else
        tail -30 "$log/setup-cuda.log" "$log/compile-cuda.log" 2>/dev/null | grep -v '^\[' >&2 || true
        fail "CUDA build failed (see $log/setup-cuda.log, $log/compile-cuda.log)"
    fi
else
    fail "the wheel has no libtorch_cuda.so: not a CUDA wheel"
fi

# ---- 3. CPU build ------------------------------------------------------------
bp=$cache/build-cpu
cpu_built=no cpu_tests="not run" cpu_needs=""
say "CPU build (-Dtorch_cuda=disabled): $bp"
if setup "$bp" -Dtorch=enabled -Dtorch_prefix="$T" -Dtorch_cuda=disabled >"$log/setup-cpu.log" 2>&1 &&
   meson compile -C "$bp" >"$log/compile-cpu.log" 2>&1; then
    cpu_built=yes
    cpu_needs=$(readelf -d "$bp/src/libgseg.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    echo "libgseg.so NEEDED: $cpu_needs"
    # No CUDA library path: libtorch_cpu must load on its own.
    unset LD_LIBRARY_PATH
    missing=$(ldd "$bp/src/libgseg.so" | grep 'not found' || true)
    if [ -n "$missing" ]; then fail "CPU build: libgseg.so cannot load: $missing"
    else
        say "CPU build: meson test $tests"
        if run_tests "$bp" test-cpu.log
        then cpu_tests=$tres
        else cpu_tests=$tres; fail "CPU build tests: $tres (see $log/test-cpu.log)"; fi
    fi
else
    tail -30 "$log/setup-cpu.log" "$log/compile-cpu.log" 2>/dev/null | grep -v '^\[' >&2 || true
    fail "CPU build failed (see $log/setup-cpu.log, $log/compile-cpu.log)"
fi

# ---- summary -----------------------------------------------------------------
cat <<EOF

== Summary: gseg against the PyPI torch wheel
torch:            $tver (CUDA ${tcuda:-none}; $(basename "$whl"); C++11 ABI $abi)
libtorch:         $T
CUDA build:       built: $cuda_built; CUDA branch compiled and linked: $cuda_linked ($bc)
                  link of executables: $linkmode
  tests:          $cuda_tests
CPU build:        built: $cpu_built ($bp)
  libgseg needs:  $cpu_needs
  tests:          $cpu_tests
Not exercised:    GPU kernels (no CUDA device here, or not checked): the CUDA
                  build only proves compile, link, load and device detection.
logs:             $log
EOF
if [ -n "$fails" ]; then
    echo "FAILED:$fails"
    exit 1
fi
echo "RESULT: all passed"
