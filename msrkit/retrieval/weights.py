"""The blend's weights and knobs, and how they were chosen: frozen records, stored in the index manifest.

The defaults were chosen on leave-one-out *validation* splits (each user's second-to-last
item as the target, never a test target) of MovieLens-100k, Amazon Beauty and Amazon Sports:
the candidate with the best mean relative validation NDCG@10 over the three won, and it also
wins when chosen from any two with the third held out. ``msrkit index build --tune``
(:mod:`.tune`) moves them on a user's own data; on data too small to tell, they stay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["BlendWeights", "DEFAULT_BLEND", "TRANSITION_BUILD_KNOBS", "TuneResult", "TuneStep", "changed_knobs"]

#: knobs read when the transitions are built (changing one rebuilds them); the rest are read per query
TRANSITION_BUILD_KNOBS = ("t_window", "t_gap_power", "t_max_row")


@dataclass(frozen=True)
class BlendWeights:
    """Weights of the max-normalised components and the knobs of each (see :mod:`.components`).

    ``transitions``, ``users``, ``text``, ``popularity``: the weights of T, S, X and P.
    T is built with ``t_window`` (pairs up to this many positions apart), ``t_gap_power``
    (a pair ``g`` apart weighs ``g ** -t_gap_power``) and ``t_max_row`` (entries kept per
    source item, ``None``: all), and read from the last ``t_recent`` items with decay
    ``t_decay ** r`` and row normalisation ``rowsum ** t_alpha``. S searches the ``u_k``
    most similar users with the distinct items of the last ``u_recent`` positions (``None``:
    all), weighted ``u_decay ** r``, and reads ``u_window`` positions after each shared
    item (weight ``g ** -u_gap_power``) and before it (times ``u_backward``). X reads the
    words of the last ``x_recent`` items with decay ``x_decay ** r``. ``long`` weighs L, a cosine item
    co-occurrence within ``l_window`` positions on either side (``l_max_row`` entries kept per
    item, :mod:`.cooccurrence`), read from the last ``l_recent`` items with decay ``l_decay ** r``
    (long histories: older items still vote).
    """

    transitions: float = 1.0
    users: float = 1.0
    text: float = 0.25
    popularity: float = 0.0
    t_window: int = 10
    t_gap_power: float = 0.5
    t_max_row: int | None = 1000
    t_recent: int = 5
    t_decay: float = 0.5
    t_alpha: float = 0.75
    u_k: int = 200
    u_recent: int | None = 30
    u_decay: float = 0.9
    u_window: int = 10
    u_gap_power: float = 0.0
    u_backward: float = 0.25
    x_recent: int = 5
    x_decay: float = 0.7
    long: float = 0.0
    l_window: int = 50
    l_max_row: int = 100
    l_recent: int = 200
    l_decay: float = 0.95

    def __post_init__(self) -> None:
        for name in ("transitions", "users", "text", "popularity", "t_gap_power", "t_decay", "t_alpha",
                     "u_decay", "u_gap_power", "u_backward", "x_decay", "long", "l_decay"):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        for name in ("t_window", "t_recent", "u_window", "x_recent", "l_window", "l_max_row", "l_recent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")
        if self.t_window > 63:
            raise ValueError(f"t_window must be <= 63, not {self.t_window}")
        for name in ("t_max_row", "u_recent"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, not {value!r}")
        if self.u_k < 0:
            raise ValueError(f"u_k must be >= 0, not {self.u_k}")

    def build_knobs(self) -> tuple[Any, ...]:
        """The knobs the transitions are built with (equal tuples: the same transitions)."""
        return tuple(getattr(self, k) for k in TRANSITION_BUILD_KNOBS)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BlendWeights:
        """The weights stored in a manifest; unknown names are a ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown blend knobs: {', '.join(unknown)}")
        return replace(DEFAULT_BLEND, **values)


DEFAULT_BLEND = BlendWeights()


def changed_knobs(weights: BlendWeights, base: BlendWeights = DEFAULT_BLEND) -> dict[str, Any]:
    """The knobs of ``weights`` that differ from ``base``."""
    a, b = asdict(weights), asdict(base)
    return {k: v for k, v in a.items() if b[k] != v}


@dataclass(frozen=True)
class TuneStep:
    """One row of the validation table: a kept move (or the start), and the validation metrics after it."""

    #: the knob moved (``"start"``: the starting weights) and its new value
    knob: str
    value: Any
    #: validation HR@10 and NDCG@10 after the move
    hr: float
    ndcg: float
    #: the mean paired NDCG@10 gain over the weights before it, its standard error, users gaining less losing
    gain: float = 0.0
    se: float = 0.0
    net_users: int = 0


@dataclass(frozen=True)
class TuneResult:
    """What tuning chose and how: the weights, the validation table, the cost."""

    weights: BlendWeights
    start: BlendWeights
    steps: tuple[TuneStep, ...]
    users: int
    evaluations: int
    seconds: float
    #: ``"full"`` (``--tune``) or ``"auto"`` (the quick self-selection of :mod:`.select`)
    mode: str = "full"
    #: why this search, in words (the data statistics that chose its knobs)
    why: tuple[str, ...] = ()
    #: the data statistics it read (:func:`.select.data_stats`)
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> dict[str, Any]:
        """The knobs tuning moved away from where it started."""
        return changed_knobs(self.weights, self.start)

    def table(self) -> str:
        """The validation table: the start and every kept move, with the metrics after it (Markdown)."""
        what = "self-selected (quick search)" if self.mode == "auto" else "tuned"
        lines = [*self.why, f"{what} on {self.users} validation users (each user's last indexed interaction): "
                 f"{self.evaluations} evaluations in {self.seconds:.1f} s",
                 "", "| step | HR@10 | NDCG@10 | gain | SE | users + minus - |",
                 "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for s in self.steps:
            name = "start" if s.knob == "start" else f"{s.knob} = {s.value}"
            extra = f"{s.gain:+.4f} | {s.se:.4f} | {s.net_users:+d}" if s.knob != "start" else "- | - | -"
            lines.append(f"| {name} | {s.hr:.4f} | {s.ndcg:.4f} | {extra} |")
        if len(self.steps) == 1:
            lines.append("\nno move beat the noise: the starting weights stay")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the index manifest stores it)."""
        out = asdict(self)
        out["steps"] = [asdict(s) for s in self.steps]
        out["changed"] = self.changed  # for a reader of the manifest; derived again on loading
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        return cls(
            weights=BlendWeights.from_dict(data["weights"]), start=BlendWeights.from_dict(data["start"]),
            steps=tuple(TuneStep(**s) for s in data["steps"]), users=int(data["users"]),
            evaluations=int(data["evaluations"]), seconds=float(data["seconds"]), mode=str(data.get("mode", "full")),
            why=tuple(data.get("why", ())), stats=dict(data.get("stats", {})),
        )  # fmt: skip
