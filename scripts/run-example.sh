#!/usr/bin/env bash
# Builds Forklift and the example plugins (release), then runs the server in the foreground
# with the shipped conf.d: pool "www" on 127.0.0.1:9000 serving /hello and /echo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release
exec .build/release/forklift run --conf conf.d "$@"
