#!/usr/bin/env bash
# Install what the benchmarks need outside the venv: the wrk load generator (Debian/Ubuntu packages).
# Usage: benchmarks/setup.sh   (as root, or with sudo available)
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    echo "wrk is already installed: $(command -v wrk)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install wrk with your package manager (brew install wrk, dnf install wrk)" >&2
    echo "or build it from https://github.com/wg/wrk, then run the benchmarks again." >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

# The package lists may be stale or missing (fresh containers): update them only when the install fails.
if ! $sudo apt-get install -y wrk; then
    $sudo apt-get update
    $sudo apt-get install -y wrk
fi
echo "wrk installed: $(command -v wrk)"
