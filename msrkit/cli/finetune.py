"""``msrkit finetune``: train a LoRA adapter on the user's own cases (extra ``msrkit[train]``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import guard, setup_logging
from .options import ConfigOpt, DataOptions, JsonOpt, PromptsOpt, QuietOpt, VerboseOpt, option_groups, settings

__all__ = ["finetune_cmd"]

TaskOpt = Annotated[str, typer.Option("--task", help="rank | pointwise | keywords | mix")]


RANK_ANSWER_HELP = "rank: answer with the target's label alone (pick), or the target then the rest by evidence (list)"


@option_groups
def finetune_cmd(
    cases_path: Annotated[Path, typer.Argument(help="cases.jsonl (or items.jsonl for --task keywords)")],
    *,
    out: Annotated[Path, typer.Option("--out", help="The adapter folder to write (peft/, adapter.gguf, manifest)")],
    data: DataOptions,
    task: TaskOpt = "rank",
    base: Annotated[str, typer.Option("--base", help="llamacpp/default | PATH.gguf | HF model folder")] = (
        "llamacpp/default"
    ),
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the examples.")] = 1.0,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, help="LoRA rank r.")] = 16,
    learning_rate: Annotated[float, typer.Option("--lr", min=1e-7, help="AdamW learning rate.")] = 5e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    eval_every: Annotated[int, typer.Option("--eval-every", min=1, help="Validate every N steps.")] = 50,
    validation: Annotated[float, typer.Option("--validation", min=0.0, max=0.9, help="Share of users held out.")] = (
        0.1
    ),
    rank_answer: Annotated[str, typer.Option("--rank-answer", help=RANK_ANSWER_HELP)] = "pick",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.")] = False,
    prompts: PromptsOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the ranking model (or the keyword summarizer) on your cases; serve it with --adapter OUT.

    Examples are the very requests `msrkit rank` sends (same prompts, same retrieval candidates, an index
    that never sees a case's target), shown in a seeded random order. Ctrl-C keeps the last checkpoint:
    run again with --resume. Needs: pip install 'msrkit[train]'.
    """
    setup_logging(verbose, quiet)

    def run() -> None:
        from ..errors import ConfigError
        from ..training import TrainConfig
        from ..training.base import require_train_extra

        if task not in ("rank", "pointwise", "keywords", "mix"):
            raise ConfigError(f"--task must be rank, pointwise, keywords or mix, not {task!r}")
        if rank_answer not in ("pick", "list"):
            raise ConfigError(f"--rank-answer must be pick or list, not {rank_answer!r}")
        require_train_extra()
        s = settings(data, config=config, prompts=prompts)
        cfg = TrainConfig(task=task, max_steps=max_steps, epochs=epochs, lora_rank=lora_rank,  # type: ignore[arg-type]
                          lora_alpha=2.0 * lora_rank, learning_rate=learning_rate, batch_size=batch_size,
                          eval_every=eval_every, device=device, seed=seed, resume=resume,  # type: ignore[arg-type]
                          rank_answer=rank_answer)  # type: ignore[arg-type]  # fmt: skip
        result = _train(cases_path, out=out, s=s, cfg=cfg, base=base, validation=validation, quiet=quiet)
        _report(result, json_out=json_out)

    guard(run)


def _train(cases_path: Path, *, out: Path, s: Any, cfg: Any, base: str, validation: float, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .. import training

    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
               TextColumn("{task.fields[rate]:.0f} tok/s"), TextColumn("loss {task.fields[loss]:.3f}"),
               TextColumn("{task.fields[val]}"), TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=quiet) as bars:
        bar = bars.add_task(f"finetune {cfg.task}", total=None, rate=0.0, loss=float("nan"), val="")

        def on_progress(p: Any) -> None:
            val = bars.tasks[0].fields["val"]
            if p.validation is not None:
                val = f"val {p.validation['metric']:.4f}"
                console.print(f"step {p.step}: validation {val[4:]} (loss {p.validation['loss']:.4f})")
            elif not console.is_terminal and not quiet and p.step % max(1, p.total // 20) == 0:
                # a log file sees no live bar: a line every 5 % of the run instead
                console.print(f"step {p.step}/{p.total}: loss {p.loss:.4f}, {p.tokens_per_second:.0f} tok/s")
            bars.update(bar, completed=p.step, total=p.total, rate=p.tokens_per_second, loss=p.loss, val=val)

        fn = training.finetune_keywords if cfg.task == "keywords" else training.finetune
        return fn(cases_path, out=out, catalog=s.catalog, interactions=s.interactions, base=base, config=cfg,
                  settings=s, validation_fraction=validation, on_progress=on_progress)  # fmt: skip


def _report(result: Any, *, json_out: bool) -> None:
    t = result.train
    if json_out:
        typer.echo(json.dumps(result.manifest, indent=1))
        return
    best = next((p for p in t.validation if p["step"] == t.best_step), None)
    where = f"best validation {best['metric']} {best['value']:.4f} at step {t.best_step}" if best else "no validation"
    typer.echo(
        f"{result.examples} examples ({result.validation_examples} validation), {t.steps} steps, {t.tokens} tokens, "
        f"{t.seconds / 60:.1f} min ({t.tokens_per_second:.0f} tok/s, {t.device}, peak {t.peak_rss_mb:.0f} MB); "
        f"{where}; {t.stopped}\n-> {result.out} (peft/, adapter.gguf, manifest.json): msrkit rank ... --adapter "
        f"{result.out}"
    )
