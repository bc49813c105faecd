#!/usr/bin/env bash
# Native unit tests: the Hook methods called directly, no runtime (the fixtures test the built component).
set -euo pipefail
cd "$(dirname "$0")"
cargo test
