#!/usr/bin/env bash
# `msrkit rank` on the example user: a table, then JSON for scripts, then the top 3 ids read from the JSON.
# OUT (default: a new temporary folder) receives ranking.json.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-$(mktemp -d)}
msrkit rank history.json --top-k 5
msrkit rank history.json --json > "$OUT/ranking.json"   # the same request again: answered from the cache
python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print([x['item_id'] for x in r['ranking'][:3]], r['usage'])" "$OUT/ranking.json"
