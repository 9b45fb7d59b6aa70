#!/usr/bin/env bash
# A prompt experiment on real data: the shipped listwise prompt against a terser variant,
# side by side with bootstrap intervals, on MovieLens-100k (pip install --no-deps recbole).
#   LIMIT       cases to evaluate (default 20)
#   MAX_HISTORY history items kept per case (default 10: keeps item-summary calls down)
#   WORK        folder for the data and the report (default ./ml-100k)
set -euo pipefail
cd "$(dirname "$0")"
LIMIT=${LIMIT:-20}
MAX_HISTORY=${MAX_HISTORY:-10}
WORK=${WORK:-ml-100k}
msrkit data movielens --out "$WORK" --max-history "$MAX_HISTORY"
msrkit eval "$WORK/cases.jsonl" --catalog "$WORK/items.jsonl" --interactions "$WORK/interactions.jsonl" \
  --prompts ../prompts --prompts prompt_variants/terse --limit "$LIMIT" --out "$WORK/eval-prompts"
