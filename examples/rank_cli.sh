#!/usr/bin/env bash
# `msrkit rank` on the example user: a table, then JSON for scripts, then only the top 3 ids with jq-free Python.
set -euo pipefail
cd "$(dirname "$0")"
msrkit rank history.json --top-k 5
msrkit rank history.json --json > ranking.json
python3 -c "import json; print([r['item_id'] for r in json.load(open('ranking.json'))['ranking'][:3]])"
