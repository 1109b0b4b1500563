#!/usr/bin/env bash
# Builds Forklift and the example plugins (release), then runs the server in the foreground
# with the shipped conf.d: pool "www" on 127.0.0.1:9000 serving /hello and /echo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release
# The example pool names no user (conf.d/10-www.toml): started as root, as on a fresh
# machine, its workers run as root, which forklift allows only when told (PHP-FPM's -R).
# A production pool sets user = "..." instead.
root=()
[[ $(id -u) -eq 0 ]] && root=(--allow-to-run-as-root)
exec .build/release/forklift run --conf conf.d ${root[@]+"${root[@]}"} "$@"
