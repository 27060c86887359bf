#!/usr/bin/env bash
# Installs the Prometheus server (Debian's package) for the collector's integration tests.
#
# Does nothing when `prometheus` is already on PATH. Otherwise, as root, runs
# `apt-get update -qq` (only when apt has no package list for it yet) and
# `apt-get install -y --no-install-recommends prometheus`. Never fails the run: without
# root or apt, it says so and the integration tests that need the binary skip, naming it.
# On a systemd host the package also enables a service on :9090; the tests never use it
# (they start their own binary on a free loopback port) and this script leaves it alone.
set -u

if command -v prometheus >/dev/null 2>&1; then
    echo "install-prometheus: $(command -v prometheus) already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-prometheus: prometheus not found and not root; integration tests needing it will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus: prometheus not found and no apt-get; integration tests needing it will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show prometheus >/dev/null 2>&1; then
    echo "install-prometheus: apt-get update -qq"
    apt-get update -qq || echo "install-prometheus: apt-get update failed"
fi
echo "install-prometheus: apt-get install -y --no-install-recommends prometheus"
if apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    echo "install-prometheus: installed $(command -v prometheus)"
else
    echo "install-prometheus: install failed; integration tests needing prometheus will skip"
fi
exit 0
