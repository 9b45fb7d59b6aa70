"""Defaults that adapt: on two synthetic worlds the self-selection chooses differently, and wins.

- a **long-history** world: each user follows a theme (20 themes of 20 items) for 30 % of 60
  interactions, the rest random; the next item is a theme item, so only a reader of the long
  history (L) sees the theme clearly;
- a **repeat-heavy** world: users of 10 communities come back to their few home items (about a
  third of all interactions repeat) and otherwise take new items of their community, in no
  useful order: transitions say little, similar users a lot.

The validation target is each user's last indexed item (what the selection itself reads);
"wins" is measured here again, independently, by ``query`` on the validation index.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from msrkit.inputs.io import Interaction
from msrkit.retrieval import DEFAULT_BLEND, BlendWeights, CollaborativeIndex, build, choose_blend, query, with_weights
from msrkit.retrieval.select import data_stats, select_blend
from msrkit.retrieval.tune import validation_index


def long_world(seed: int = 0) -> list[Interaction]:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(300):
        theme = np.arange(20) + 20 * (u % 20)
        seq = [int(rng.choice(theme)) if rng.random() < 0.3 else int(rng.integers(400)) for _ in range(60)]
        seq += [int(rng.choice(theme)), int(rng.choice(theme))]  # the validation and the test target
        rows += [Interaction(f"u{u}", f"i{i}", float(t)) for t, i in enumerate(seq)]
    return rows


def repeat_world(seed: int = 0) -> list[Interaction]:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(600):
        community = np.arange(30) + 30 * (u % 10)
        home = rng.choice(community, size=2, replace=False)
        seq = [int(rng.choice(home)) if rng.random() < 0.4 else int(rng.choice(community))
               for _ in range(int(rng.integers(8, 14)))]  # fmt: skip
        rows += [Interaction(f"u{u}", f"i{i}", float(t)) for t, i in enumerate(seq)]
    return rows


def validation_ndcg(idx: CollaborativeIndex, weights: BlendWeights, *, exclude_seen: bool = True) -> float:
    """Mean NDCG@10 of each user's last indexed item, from an index without it."""
    vidx, targets = validation_index(idx)
    vidx = with_weights(vidx, weights)
    total = 0.0
    for u, target in enumerate(targets.tolist()):
        seen = [vidx.item_ids[i] for i in vidx.seq_items[vidx.seq_ptr[u] : vidx.seq_ptr[u + 1]].tolist()]
        hood = query(vidx, seen, n=10, exclude_seen=exclude_seen, exclude_user=vidx.user_ids[u], context_k=0,
                     support=False)  # fmt: skip
        top = [i for i, _ in hood.candidates]
        if target >= 0 and idx.item_ids[target] in top:
            total += 1.0 / np.log2(top.index(idx.item_ids[target]) + 2)
    return total / len(targets)


def test_the_worlds_differ_where_the_selection_looks() -> None:
    long, rep = data_stats(build(long_world())), data_stats(build(repeat_world()))
    assert long["mean_length"] > 20 > rep["mean_length"]
    assert rep["repeat_rate"] > 0.2 > long["repeat_rate"] - 0.1


def test_self_selection_chooses_differently_on_each_world_and_wins_there() -> None:
    chosen = {}
    for name, rows in (("long", long_world()), ("repeat", repeat_world())):
        idx = choose_blend(build(rows), "auto")
        assert idx.tuning is not None and idx.tuning.mode == "auto"
        chosen[name] = idx.tuning.changed
        base, mine = validation_ndcg(idx, DEFAULT_BLEND), validation_ndcg(idx, idx.weights)
        assert mine > base, (name, chosen[name], base, mine)  # the same validation users the selection read
        print(name, chosen[name], f"validation NDCG@10 {base:.4f} -> {mine:.4f}")
        assert any("mean history" in line for line in idx.tuning.why)  # index info says why
    assert chosen["long"].get("long", 0) > 0 and "long" not in chosen["repeat"]
    assert chosen["long"] != chosen["repeat"]


def test_too_little_data_keeps_the_defaults_and_says_so() -> None:
    idx = choose_blend(build(repeat_world()[:300]), "auto")
    assert idx.tuning is not None and idx.weights == DEFAULT_BLEND and idx.tuning.evaluations == 0
    assert "too few to tell" in idx.tuning.table()


def test_repeats_allowed_find_the_targets_a_user_had_before() -> None:
    idx = build(repeat_world())
    vidx, targets = validation_index(idx)
    repeats = sum(
        1
        for u, t in enumerate(targets.tolist())
        if t in set(vidx.seq_items[vidx.seq_ptr[u] : vidx.seq_ptr[u + 1]].tolist())
    )
    assert repeats > 100  # the world is repeat-heavy: many targets are items the user had
    exclude, allow = validation_ndcg(idx, DEFAULT_BLEND), validation_ndcg(idx, DEFAULT_BLEND, exclude_seen=False)
    assert allow > exclude * 1.2, (exclude, allow)
    chosen = select_blend(idx, start=replace(DEFAULT_BLEND), exclude_seen=False)
    assert validation_ndcg(idx, chosen.weights, exclude_seen=False) >= allow


def test_the_repeats_setting_reaches_generated_candidates() -> None:
    from msrkit.data import Item
    from msrkit.recommender import Recommender

    rows = repeat_world()
    idx = build(rows)
    catalog = {i: Item(item_id=i) for i in idx.item_ids}
    history = [r.item_id for r in rows if r.user_id == "u3"]
    past = {}
    for mode in ("exclude", "allow"):
        with Recommender("none", catalog=catalog, index=idx, cache=False, repeats=mode, n_candidates=10) as rec:
            ranked = rec.rank({"user_id": "u3", "history": history}).ranking
        past[mode] = [r.item_id for r in ranked if r.item_id in history]
    assert not past["exclude"] and past["allow"]  # the user's home items come back, scored like the rest
