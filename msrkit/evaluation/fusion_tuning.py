"""The fusion weight chosen on validation cases, so a model that does not help costs nothing.

One run ranks every validation case with the model alone (fusion weight 1,
shown as the pipeline shows them); each candidate's model rank and retrieval
rank are in the ranking's ``diagnostics``, so every weight of the grid is
scored from that one run without another call (:func:`msrkit.ranking.fusion.fuse`,
the same fusion inference uses). The best mean NDCG@10 wins; ties go to the
smaller weight, so a model no better than retrieval gets 0, and at 0 the
pipeline skips the LLM stage (no calls). With an adapter the weight is written
into its ``manifest.json``, which ``rank --adapter`` then uses unless
``fusion_weight`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings, settings_from
from ..data import History, Ranking
from ..errors import InputError
from ..ranking.fusion import fuse
from ..ranking.result import Scored
from .metrics import ndcg_at_k

__all__ = ["FusionTuning", "GRID", "choose_weight", "fused_ndcg", "store_weight", "tune_fusion", "weight_table"]

GRID = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass(frozen=True)
class FusionTuning:
    """Mean NDCG@10 per weight, the chosen weight, and how many cases decided it."""

    table: list[tuple[float, float]]
    weight: float
    cases: int

    def markdown(self) -> str:
        rows = "\n".join(f"| {w:.1f} | {v:.4f} |{' chosen' if w == self.weight else ''}" for w, v in self.table)
        return f"| fusion weight | NDCG@10 |\n|---:|---:|\n{rows}\n\n{self.cases} validation cases"


def fused_ndcg(ranking: Ranking, target: str, weight: float, *, k: int = 10) -> float:
    """NDCG@k of ``target`` after fusing the ranking's model and retrieval ranks with ``weight``."""
    ids = [r.item_id for r in ranking.ranking]
    ranks = ranking.diagnostics.get("ranks", {})
    if target not in ids:
        return 0.0
    if not all("llm" in ranks.get(i, {}) and "retrieval" in ranks.get(i, {}) for i in ids):
        return ndcg_at_k(1 + ids.index(target), k)
    llm = Scored.from_scores([-float(ranks[i]["llm"]) for i in ids], "listwise")
    retrieval = Scored.from_scores([-float(ranks[i]["retrieval"]) for i in ids], "retrieval")
    order = fuse(llm, retrieval, weight=weight).order
    return ndcg_at_k(1 + [ids[i] for i in order].index(target), k)


def weight_table(rankings: Sequence[Ranking], targets: Sequence[str],
                 grid: Sequence[float] = GRID) -> list[tuple[float, float]]:  # fmt: skip
    """Mean NDCG@10 at each weight of ``grid``."""
    if not rankings:
        raise InputError("fusion tuning needs at least one validation case")
    return [(w, sum(fused_ndcg(r, t, w) for r, t in zip(rankings, targets, strict=True)) / len(rankings)) for w in grid]


def choose_weight(table: Sequence[tuple[float, float]]) -> float:
    """The weight with the best mean NDCG@10; ties go to the smaller weight (a model no better than retrieval: 0)."""
    best = max(v for _, v in table)
    return min(w for w, v in table if v >= best - 1e-12)


def tune_fusion(
    cases: Sequence[History],
    *,
    settings: Settings,
    rank: Callable[[Settings], Callable[[History], Ranking]],
    grid: Sequence[float] = GRID,
) -> FusionTuning:
    """Choose the fusion weight on ``cases`` (see the module docstring).

    ``rank(settings)`` returns the function that ranks one case with those
    settings (a :class:`~msrkit.recommender.Recommender`'s ``rank``), so the
    caller decides how the index and catalog are built.
    """
    solo = settings_from(settings, fusion_weight=1.0)
    rank_one = rank(solo)
    targets = [str(c.target) for c in cases]
    rankings = [rank_one(c.model_copy(update={"target": None})) for c in cases]
    table = weight_table(rankings, targets, grid)
    return FusionTuning(table, choose_weight(table), len(cases))


def store_weight(adapter_dir: Path, weight: float) -> None:
    """Write ``weight`` into the adapter's manifest (atomically)."""
    from ..training.adapter import read_manifest, write_manifest

    manifest = read_manifest(adapter_dir)
    write_manifest(adapter_dir, manifest.model_copy(update={"fusion_weight": weight}))
