#!/usr/bin/env bash
# Builds everything (the binary, the plugins, the test fixtures) and runs every test:
# unit tests and integration tests that start the real forklift, cgi-fcgi and the front ends
# (nginx, Apache httpd, lighttpd).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --tests
swift build --build-tests
swift test --skip-build "$@"
