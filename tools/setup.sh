#!/usr/bin/env bash
# Make sure a Vulkan adapter exists. On a machine without a GPU driver this installs Mesa's
# software Vulkan driver (lavapipe, Debian/Ubuntu package mesa-vulkan-drivers, ~16 MB).
# Sourced by tools/run.sh and tools/test.sh; safe to run again (it installs nothing twice).
set -euo pipefail

have_vulkan() {
    # The loader plus at least one installable client driver (ICD) manifest.
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || return 1
    ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json >/dev/null 2>&1
}

if [ "$(uname -s)" = "Linux" ] && ! have_vulkan; then
    echo "setup: no Vulkan driver found; installing Mesa's software Vulkan (lavapipe)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
    else
        echo "setup: apt-get not found; install your distribution's Vulkan loader and Mesa Vulkan drivers" >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

# lavapipe's window-system code complains without a runtime dir; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi
