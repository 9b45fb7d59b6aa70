"""``msrkit eval``, ``eval-keywords`` and ``export-sft``: measure rankings and keyword prompts, export training data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import guard, setup_logging
from .options import (
    AdapterOpt,
    BackendOptions,
    CacheOptions,
    CatalogOpt,
    ConfigOpt,
    DataOptions,
    DeadlineOpt,
    GeneralOptions,
    JsonOpt,
    ModelOptions,
    PromptsOpt,
    TuneOpt,
    option_groups,
    settings,
)

__all__ = ["eval_cmd", "eval_keywords", "export_sft_cmd"]


@option_groups
def eval_cmd(
    cases_path: Annotated[Path, typer.Argument(help="cases.jsonl: history objects with a 'target'.")],
    *,
    data: DataOptions,
    tune: TuneOpt = None,
    model: ModelOptions,
    prompts: Annotated[
        list[Path] | None, typer.Option("--prompts", help="Template folder; repeat to compare prompt variants.")
    ] = None,
    rankings: Annotated[
        Path | None, typer.Option("--rankings", help="Also score rankings from another system (JSONL).")
    ] = None,
    ablations: Annotated[bool, typer.Option(help="Run retrieval / +llm / +summaries / +collaborative.")] = False,
    agent: Annotated[
        bool, typer.Option("--agent", help="Also rank with the agent (msrkit.agent), beside the fixed pipeline.")
    ] = False,
    simulate_turns: Annotated[
        int | None,
        typer.Option("--simulate-turns", min=1, help="With --agent: a simulated user over N turns (success@turn)."),
    ] = None,
    ks: Annotated[str, typer.Option("--ks", help="Cut-offs for HR@K and NDCG@K.")] = "1,5,10",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N cases.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for results, report.json/.md/.png.")] = Path("msrkit-eval"),
    fusion_weight: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="LLM weight in the fusion.")] = None,
    pointwise: Annotated[
        bool | None, typer.Option("--pointwise/--listwise", help="Score by p(yes) (AUC becomes meaningful).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Keep cases already scored in --out.")] = True,
    tune_fusion: Annotated[
        bool,
        typer.Option(
            "--tune-fusion",
            help="Choose the fusion weight on these (validation) cases; with "
            "--adapter, store it in the adapter's manifest.",
        ),
    ] = False,
    deadline: DeadlineOpt = None,
    cache: CacheOptions,
    json_out: JsonOpt = False,
    general: GeneralOptions,
) -> None:
    """Evaluate on cases: HR@K, NDCG@K, MRR (AUC with --pointwise), ablations, prompt variants, cost.

    Unset options come from msrkit.toml, then MSRKIT_* variables (see `msrkit config show`).
    The same run from Python: msrkit.evaluation.experiments.run_experiment.
    """
    quiet = general.quiet
    setup_logging(general.verbose, quiet)

    def run() -> None:
        from ..evaluation import to_json
        from ..evaluation.experiments import Experiment, run_experiment

        s = settings(model, data, cache, config=general.config, tune_index=tune, fusion_weight=fusion_weight,
                     pointwise=pointwise, deadline=deadline)  # fmt: skip
        if tune_fusion:
            _tune_fusion(cases_path, s, limit=limit, json_out=json_out)
            return
        with progress_bars(enabled=not quiet) as on_progress:
            experiment = Experiment(
                cases=cases_path, settings=s, ablations=ablations,
                prompt_dirs=list(prompts or []), rankings=rankings, ks=_cutoffs(ks), limit=limit, out=out,
                resume=resume, on_progress=on_progress, agent=agent,
            )  # fmt: skip
            result = run_experiment(experiment)
        typer.echo(to_json(result.comparison) if json_out else result.markdown)
        if agent and simulate_turns:
            from ..evaluation.agent import simulate_experiment

            simulation = simulate_experiment(experiment, turns=simulate_turns)
            typer.echo(f"\nSimulated users (success = target in the first {simulation.k} shown):\n{simulation.table()}")
        if not quiet:
            typer.echo(f"\nwritten: {', '.join(str(p) for p in result.files)}", err=True)
        for w in result.warnings:
            typer.echo(f"warning: {w}", err=True)

    guard(run)


def _tune_fusion(cases_path: Path, s: Any, *, limit: int | None, json_out: bool) -> None:
    from contextlib import ExitStack

    from ..evaluation.cases import load_index
    from ..evaluation.fusion_tuning import store_weight, tune_fusion
    from ..inputs.io import load_catalog, load_histories
    from ..recommender import Recommender

    cases = load_histories(cases_path)[:limit]
    catalog = load_catalog(s.catalog) if s.catalog else {}
    index = load_index(s, cases, catalog)
    with ExitStack() as stack:

        def ranker(settings: Any) -> Any:
            return stack.enter_context(Recommender(settings=settings, catalog=catalog, index=index)).rank

        result = tune_fusion(cases, settings=s, rank=ranker)
    if s.adapter is not None:
        store_weight(s.adapter, result.weight)
    if json_out:
        typer.echo(json.dumps({"weight": result.weight, "table": result.table, "cases": result.cases}))
    else:
        where = f"; stored in {s.adapter}/manifest.json" if s.adapter is not None else ""
        typer.echo(f"{result.markdown()}\nfusion weight {result.weight:.1f}{where}")


def _cutoffs(ks: str) -> list[int]:
    from ..errors import ConfigError

    try:
        return [int(k) for k in ks.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--ks takes comma-separated integers, got {ks!r}") from None


@contextmanager
def progress_bars(*, enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """``on_progress(name, done, total)`` drawing one bar per name on stderr (nothing when not ``enabled``)."""
    from rich.console import Console
    from rich.progress import Progress

    tasks: dict[str, Any] = {}
    with Progress(console=Console(stderr=True), disable=not enabled, transient=False) as bars:

        def on_progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        yield on_progress


@option_groups
def eval_keywords(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog); given keywords are ignored.")],
    prompts: Annotated[
        list[Path] | None, typer.Option("--prompts", help="Template folder; repeat to compare item_keywords prompts.")
    ] = None,
    *,
    backend: BackendOptions,
    adapter: AdapterOpt = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Only the first N items.")] = None,
    budget: Annotated[int, typer.Option(min=1, help="Keyword count that still counts as fully brief.")] = 5,
    distractors: Annotated[int, typer.Option(min=1, help="Other items to pick from in reconstruction.")] = 4,
    summary_batch: Annotated[
        list[int] | None,
        typer.Option("--summary-batch", min=1, help="Items per keyword call; repeat to compare (default 1)."),
    ] = None,
    best_of: Annotated[
        int, typer.Option("--best-of", min=1, help="Also score best-of-N keywords (and compare base vs --adapter).")
    ] = 1,
    skip: Annotated[int, typer.Option("--skip", min=0, help="Leave out the first N items (held-back items).")] = 0,
    cache: CacheOptions,
    json_out: JsonOpt = False,
    general: GeneralOptions,
) -> None:
    """Compare keyword-summarization prompts: brevity, information kept, reconstruction (MMSRARec's reward).

    With --adapter DIR or --best-of N: the base model against the adapter (and best-of-1 against
    best-of-N) on the same items, the mean reward with a 95 % bootstrap interval over items.
    """
    quiet = general.quiet
    setup_logging(general.verbose, quiet)
    if adapter is not None or best_of > 1:

        def lift_settings() -> Any:
            return settings(backend, cache, config=general.config, best_of_budget=budget)

        run_lift = _keyword_lift(path, lift_settings, adapter=adapter, best_of=best_of, skip=skip, limit=limit,
                                 prompts=prompts, json_out=json_out, quiet=quiet)  # fmt: skip
        guard(run_lift)
        return

    def run() -> None:
        from rich.console import Console
        from rich.progress import Progress

        from ..evaluation.keywords import compare_keyword_prompts
        from ..inputs.io import load_catalog

        items = _held_back(load_catalog(path), skip=skip, limit=limit)
        with Progress(console=Console(stderr=True), disable=quiet or json_out, transient=True) as progress:
            batches = list(summary_batch or [1])
            task = progress.add_task("summarizing", total=len(items) * max(1, len(prompts or [])) * len(batches))
            scores = compare_keyword_prompts(
                settings(backend, cache, config=general.config), items, prompt_dirs=list(prompts or []),
                budget=budget, distractors=distractors, on_item=lambda _: progress.advance(task), batches=batches,
            )  # fmt: skip
        if json_out:
            typer.echo(json.dumps(scores, indent=2))
            return
        metrics = ["keywords", "brevity", "similarity", "coverage", "grounded", "reconstruction", "reward", "llm_calls"]
        typer.echo("| prompts | " + " | ".join(metrics) + " |")
        typer.echo("|---|" + "---:|" * len(metrics))
        for name, row in scores.items():
            cells = [f"{row[m]:.3f}" if m != "llm_calls" else f"{row[m]:.0f}" for m in metrics]
            typer.echo(f"| {name} | " + " | ".join(cells) + " |")

    guard(run)


def _held_back(catalog: dict[str, Any], *, skip: int, limit: int | None) -> list[Any]:
    items = list(catalog.values())[skip:]
    return items[:limit] if limit is not None else items


def _keyword_lift(
    path: Path, load_settings: Callable[[], Any], *, adapter: Path | None, best_of: int, skip: int, limit: int | None,
    prompts: list[Path] | None, json_out: bool, quiet: bool,
) -> Any:  # fmt: skip
    def run() -> None:
        from rich.console import Console
        from rich.progress import Progress

        from ..errors import ConfigError
        from ..evaluation.keyword_lift import compare_summarizers, paired_differences
        from ..inputs.io import load_catalog

        if prompts:
            raise ConfigError("--prompts compares prompt folders, --adapter and --best-of compare summarizers: "
                              "give one or the other")  # fmt: skip

        s = load_settings()
        items = _held_back(load_catalog(path), skip=skip, limit=limit)
        rounds = (1 + (best_of > 1)) * (1 + (adapter is not None))
        with Progress(console=Console(stderr=True), disable=quiet or json_out, transient=True) as progress:
            task = progress.add_task("summarizing", total=len(items) * rounds)
            rows = compare_summarizers(s, items, adapter=adapter, best_of=best_of,
                                       reconstruction=s.best_of_reconstruction,
                                       on_item=lambda _: progress.advance(task))  # fmt: skip
        diffs = paired_differences(rows, seed=s.seed)
        if json_out:
            paired = {k: {"mean": m, "ci_low": lo, "ci_high": hi} for k, (m, lo, hi) in diffs.items()}
            typer.echo(json.dumps({**{k: r.as_dict() for k, r in rows.items()}, "paired": paired}, indent=2))
            return
        typer.echo("| summarizer | items | mean reward | 95 % CI | keywords | llm_calls |")
        typer.echo("|---|---:|---:|---|---:|---:|")
        for name, r in rows.items():
            typer.echo(f"| {name} | {len(r.rewards)} | {r.mean:.4f} | [{r.ci[0]:.4f}, {r.ci[1]:.4f}] | "
                       f"{r.keywords:.2f} | {r.llm_calls} |")  # fmt: skip
        if diffs:
            typer.echo("\n| paired difference (same items) | mean | 95 % CI |\n|---|---:|---|")
            for name, (m, lo, hi) in diffs.items():
                typer.echo(f"| {name} | {m:+.4f} | [{lo:+.4f}, {hi:+.4f}] |")

    return run


def export_sft_cmd(
    cases_path: Annotated[Path, typer.Argument(help="cases.jsonl")],
    out: Annotated[Path, typer.Option("--out", help="Chat-format JSONL to write.")],
    catalog: CatalogOpt = None,
    task: Annotated[str, typer.Option(help="listwise | yesno")] = "listwise",
    out_format: Annotated[
        str, typer.Option("--format", help="chat | openai (the same lines, checked against a hosted API's rules).")
    ] = "chat",
    prompts: PromptsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Turn cases into chat-format fine-tuning data (the papers' last stage), byte for byte what inference sends.

    The catalog and prompts folder may come from msrkit.toml. The same from Python: msrkit.evaluation.export_sft.
    """

    def run() -> None:
        from ..errors import ConfigError
        from ..evaluation import export_sft
        from ..inputs.io import load_catalog, load_histories
        from ..runtime.prompts import PromptSet

        if task not in ("listwise", "yesno"):
            raise ConfigError(f"--task must be listwise or yesno, not {task!r}")
        if out_format not in ("chat", "openai"):
            raise ConfigError(f"--format must be chat or openai, not {out_format!r}")
        s = settings(config=config, catalog=catalog, prompts=prompts)
        examples: Any = export_sft(
            load_histories(cases_path), task=task, prompts=PromptSet.load(s.prompts),  # type: ignore[arg-type]
            out=out, catalog=load_catalog(s.catalog) if s.catalog else None, format=out_format,  # type: ignore[arg-type]
        )  # fmt: skip
        typer.echo(f"{len(examples)} examples -> {out}")

    guard(run)
