#!/usr/bin/env bash
# Regenerate the whole corpus (models/corpus/*.u2ct.gz + manifest.json). ~10 min, root.
set -euo pipefail
D="$(dirname "$0")"
for w in redis memcached postgres torch numpy_cg sqlite stress xz; do bash "$D/$w.sh"; done
deno run -A "$D/manifest.ts"
