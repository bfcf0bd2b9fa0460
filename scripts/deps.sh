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

BUILD_PACKAGES="gcc g++ meson ninja-build pkg-config libgdal-dev libproj-dev gdal-bin"
TEST_PACKAGES="check python3-gdal python3-numpy"
