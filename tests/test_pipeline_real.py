"""The pipeline on real data with the real embedded model: summaries made for one user serve another.

MovieLens-100k (from the recbole wheel) and SmolLM2-135M through llama.cpp in
process. The model is tiny: these tests check what flows where (keywords the
model made reach another user's collaborative context; reasons stay sentences),
never the quality of what it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msrkit.recommender import Recommender, Stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def movielens() -> Any:
    datasets = pytest.importorskip("msrkit.datasets")
    try:
        datasets.movielens_100k_dir()
    except Exception as exc:  # noqa: BLE001 - any reason the data is missing skips, saying why
        pytest.skip(str(exc))
    from msrkit.retrieval import build

    catalog, interactions = datasets.load_movielens_100k()
    return catalog, interactions, build(interactions, catalog=catalog)


def test_keywords_made_for_one_user_appear_in_another_users_collaborative_context(
    embedded_model: Path, movielens: Any, tmp_path: Path
) -> None:
    catalog, interactions, index = movielens
    from msrkit.retrieval import query

    second = [r.item_id for r in interactions if r.user_id == "1"][:5]
    taken_next = [item for _, item in query(index, second, exclude_user="1", context_k=2).next_items]
    assert taken_next, "user 1 has similar users who took something next"
    options: dict[str, Any] = dict(
        catalog=catalog, index=index, cache=tmp_path, max_history=3, explain=False,
        stages=Stages(preference_summary=False), collaborative_k=2, backend_options={"n_ctx": 2048, "n_threads": 1},
    )  # fmt: skip
    other = [next(i for i in catalog if i not in taken_next and i not in second)]  # not a next item
    with Recommender("llamacpp/default", **options) as rec:
        before = rec.rank({"user_id": "1", "history": second, "candidates": other})
        titles = [catalog[i].title for i in taken_next]
        assert before.collaborative_context == titles  # nothing summarized yet: titles
        # another user whose candidates are exactly those items: ranking them summarizes them
        first = rec.rank({"user_id": "x", "history": [second[0]], "candidates": taken_next})
        assert sorted(first.item_ids()) == sorted(taken_next)
        after = rec.rank({"user_id": "1", "history": second, "candidates": other})
    keywords = [", ".join(k for k in rec.store.get(catalog[i]).keywords) for i in taken_next]  # type: ignore[union-attr]
    assert after.collaborative_context == list(dict.fromkeys(keywords))  # the context lists a text once
    assert after.collaborative_context != titles
    assert all(r.reason.endswith(".") and "LLM #" not in r.reason for r in after.ranking)
