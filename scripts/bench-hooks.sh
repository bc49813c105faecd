#!/usr/bin/env bash
# In-process hook overhead (not a test): cold compile vs cache load, per-call cost, every example hook.
exec bash "$(dirname "$0")/bench.sh" --hooks-only
