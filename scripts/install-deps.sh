#!/usr/bin/env bash
# Installs the Debian packages Forklift needs, only those missing.
#   scripts/install-deps.sh            building and running: libfcgi, pkg-config
#   scripts/install-deps.sh --tests    also what the tests talk to: cgi-fcgi, curl, gdb, the front ends
#                                      (nginx, Apache httpd, lighttpd) and prometheus_client (PyPI),
#                                      whose parser checks the OpenMetrics page
set -euo pipefail

packages=(libfcgi-dev pkg-config)
# Web servers whose packages would start (and enable) a system daemon on port 80.
daemons=()
if [[ "${1:-}" == "--tests" ]]; then
    # systemd: systemd-socket-activate and systemd-analyze; iproute2: the network namespaces of
    # MultiInstanceTests (both in Debian's base system, listed for machines without them).
    packages+=(libfcgi-bin curl gdb systemd iproute2)
    daemons+=(nginx-light:nginx apache2:apache2 lighttpd:lighttpd)
fi

if [[ "${1:-}" == "--tests" ]] && ! python3 -c "import prometheus_client" 2>/dev/null; then
    echo "installing: prometheus_client (pip)" >&2
    python3 -m pip install --quiet prometheus_client >&2
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
services=()
for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
done
for entry in ${daemons[@]+"${daemons[@]}"}; do
    installed "${entry%%:*}" && continue
    missing+=("${entry%%:*}")
    services+=("${entry##*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq

# The postinst scripts of nginx, apache2 and lighttpd start their system service on port 80
# (through invoke-rc.d, or deb-systemd-invoke under systemd, which ignores RUNLEVEL). The
# tests start their own front ends on free loopback ports: while installing, a policy-rc.d
# answering 101 ("action forbidden") keeps the services from starting, unless the machine
# already has one (a container's usually does).
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ${#services[@]} -gt 0 && ! -e $policy ]]; then
    own_policy=$policy
    trap '$sudo rm -f "$own_policy"' EXIT
    printf '#!/bin/sh\n# scripts/install-deps.sh: no daemon starts while it installs\nexit 101\n' | $sudo tee $policy >/dev/null
    $sudo chmod 755 $policy
fi
RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

# ...nor at the next boot: the services were only installed for the tests.
for service in ${services[@]+"${services[@]}"}; do
    if command -v systemctl >/dev/null; then $sudo systemctl disable --quiet "$service" 2>/dev/null || true; fi
    $sudo update-rc.d "$service" disable >/dev/null 2>&1 || true
done
