#!/usr/bin/env bash
# Installs the Debian packages Forklift needs, only those missing.
#   scripts/install-deps.sh            building and running: libfcgi, pkg-config
#   scripts/install-deps.sh --tests    also what the tests talk to: cgi-fcgi, nginx, curl, and
#                                      prometheus_client (PyPI), whose parser checks the OpenMetrics page
set -euo pipefail

packages=(libfcgi-dev pkg-config)
if [[ "${1:-}" == "--tests" ]]; then
    packages+=(libfcgi-bin nginx-light curl)
fi

if [[ "${1:-}" == "--tests" ]] && ! python3 -c "import prometheus_client" 2>/dev/null; then
    echo "installing: prometheus_client (pip)" >&2
    python3 -m pip install --quiet prometheus_client >&2
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
# nginx's postinst would start a system nginx on port 80; the tests start their own.
RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
