#!/usr/bin/env bash
# Native unit tests of hook.js under Node's own test runner (no toolchain needed: node:test is built in).
set -euo pipefail
cd "$(dirname "$0")"
node --import ./test/register.mjs --test-reporter=spec --test test/*.test.js
