"""Lightning's side of progress: phases drawn by the trainer's progress bar, and quieter defaults.

:func:`progress_display` turns the trainer's progress-bar callback into a
:class:`~read_lightning.core.progress.Display`: a task in the live Rich progress of a
``RichProgressBar`` (or a Rich progress of its own columns while that is not running), or one of
Lightning's ``Tqdm`` bars under a ``TQDMProgressBar``. Without a terminal, or with the progress
bar disabled, it returns None and the phase logs lines instead (see ``core.progress``)::

    from read_lightning.core import progress
    from read_lightning.training.progress import progress_display

    with progress.phase("probes", total=n, unit="items", display=progress_display(trainer)):
        ...  # progress.advance(k) in the batch loops

:func:`quiet_default_callbacks` gives ``read-train`` the trainer's default progress bar, model
summary and checkpointing without their noise: no ``v_num`` in the bar, no FLOPs column and
"Total FLOPs: 0" when Lightning counted none, and one resumable checkpoint (``last.ckpt``)
instead of a best-by-step copy beside it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    Callback,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    RichProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

from read_lightning.core.progress import Display, Phase

__all__ = ["progress_display", "quiet_default_callbacks"]


def _label(phase: Phase) -> str:
    """The bar's description: the phase, its unit, tokens/s and any info text."""
    parts = [f"{phase.name} ({phase.unit})"]
    if phase.tokens:
        parts.append(f"{phase.token_rate:.0f} tok/s")
    if phase.info:
        parts.append(phase.info)
    return " · ".join(parts)


class _RichDisplay:
    """A phase as a task of a Rich progress: the trainer's live one, or one with its columns."""

    def __init__(self, bar: Any, trainer: L.Trainer | None) -> None:
        from lightning.pytorch.callbacks.progress.rich_progress import CustomProgress
        from rich import get_console

        live = getattr(bar, "progress", None)
        self._shared = live is not None and not getattr(bar, "_progress_stopped", True)
        if self._shared:
            self._progress = live
        else:
            columns = bar.configure_columns(trainer)
            self._progress = CustomProgress(*columns, console=get_console(), auto_refresh=True)
            self._progress.start()
        self._task: Any = None

    def update(self, phase: Phase) -> None:
        total = phase.total if phase.total is not None else math.inf
        if self._task is None:
            self._task = self._progress.add_task(_label(phase), total=total)
        self._progress.update(self._task, completed=phase.done, description=_label(phase))

    def close(self, phase: Phase) -> None:
        if self._shared:
            if self._task is not None:
                self._progress.remove_task(self._task)
        else:
            self.update(phase)
            self._progress.stop()


class _TqdmDisplay:
    """A phase as one of Lightning's ``Tqdm`` bars, under the training bar while it runs."""

    def __init__(self, bar: Any) -> None:
        self._position = 2 * getattr(bar, "process_position", 0) + (1 if bar is not None else 0)
        self._tqdm: Tqdm | None = None

    def update(self, phase: Phase) -> None:
        if self._tqdm is None:
            self._tqdm = Tqdm(desc=phase.name, total=phase.total, unit=phase.unit, position=self._position,
                              leave=self._position == 0, dynamic_ncols=True, file=sys.stdout, smoothing=0)
        self._tqdm.n = phase.done
        postfix = [f"{phase.token_rate:.0f} tok/s"] if phase.tokens else []
        self._tqdm.set_postfix_str(", ".join([*postfix, *([phase.info] if phase.info else [])]), refresh=False)
        self._tqdm.refresh()

    def close(self, phase: Phase) -> None:
        if self._tqdm is not None:
            self.update(phase)
            self._tqdm.close()


def progress_display(trainer: L.Trainer | None = None) -> Display | None:
    """A display drawing phases through ``trainer``'s progress bar (Rich or tqdm), or through a
    Lightning ``Tqdm`` bar when there is no trainer; None without a terminal, with the trainer's
    progress bar disabled, or off rank 0 (then the phase logs lines)."""
    if trainer is None:
        return _TqdmDisplay(None) if sys.stdout.isatty() else None
    bar = trainer.progress_bar_callback
    if bar is None or not trainer.is_global_zero or not getattr(bar, "is_enabled", False):
        return None
    if isinstance(bar, RichProgressBar):
        from rich import get_console

        return _RichDisplay(bar, trainer) if get_console().is_terminal else None
    if isinstance(bar, TQDMProgressBar):
        return _TqdmDisplay(bar) if sys.stdout.isatty() else None
    return None  # a progress bar of the user's own: leave the screen to it


def _without_version(metrics: dict[str, Any]) -> dict[str, Any]:
    # the run directory's version number: it says nothing about training
    metrics.pop("v_num", None)
    return metrics


class _RunTQDMProgressBar(TQDMProgressBar):
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return _without_version(super().get_metrics(trainer, pl_module))


class _RunModelSummary(ModelSummary):
    """The model summary without the FLOPs column and total when Lightning counted none (it
    counts only a module with an ``example_input_array``), where they would read "0"."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        base: Any = ModelSummary
        if _RICH_AVAILABLE:
            from lightning.pytorch.callbacks import RichModelSummary

            base = RichModelSummary
        if total_flops:
            base.summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                           total_flops, **summarize_kwargs)
            return
        _print_summary([c for c in summary_data if c[0] != "FLOPs"], total_parameters, trainable_parameters,
                       model_size, total_training_modes)


def _print_summary(columns: list[tuple[str, list[str]]], total: int, trainable: int, size_mb: float,
                   modes: dict[str, int]) -> None:
    from lightning.pytorch.utilities.model_summary.model_summary import (
        get_formatted_model_size,
        get_human_readable_count,
    )

    totals = [
        ("Trainable params", get_human_readable_count(int(trainable))),
        ("Non-trainable params", get_human_readable_count(int(total - trainable))),
        ("Total params", get_human_readable_count(int(total))),
        ("Total estimated model params size (MB)", get_formatted_model_size(size_mb)),
        ("Modules in train mode", str(modes.get("train", 0))),
        ("Modules in eval mode", str(modes.get("eval", 0))),
    ]
    rows = list(zip(*(values for _, values in columns)))
    if _RICH_AVAILABLE:
        from rich import get_console
        from rich.table import Table

        table = Table(header_style="bold magenta")
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left")
        for row in rows:
            table.add_row(*row)
        console = get_console()
        console.print(table)
        for label, value in totals:
            console.print(f"[bold]{label}[/]: {value}")
        return
    widths = [max([len(name), *(len(v) for v in values)]) for name, values in columns]
    lines = [" | ".join(name.ljust(w) for (name, _), w in zip(columns, widths))]
    lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    lines += [f"{value:<10} {label}" for label, value in totals]
    print("\n".join(lines))


class _RunRichProgressBar(RichProgressBar):
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return _without_version(super().get_metrics(trainer, pl_module))


def quiet_default_callbacks(trainer_config: dict[str, Any], given: list[Any]) -> list[Callback]:
    """The callbacks the Trainer would add by default, minus their noise, for those of the
    progress bar, model summary and checkpointing that ``trainer_config`` leaves enabled and
    ``given`` (the configured callbacks) does not provide.

    The default checkpoint is one resumable ``last.ckpt``, rewritten after every interval;
    Lightning's own default would also keep a best-so-far copy (``save_top_k=1``), a second
    full copy of the student and optimiser that a run with no validation metric cannot rank.
    """
    out: list[Callback] = []
    if trainer_config.get("enable_checkpointing") is not False and not any(
        isinstance(c, ModelCheckpoint) for c in given
    ):
        out.append(ModelCheckpoint(save_last=True, save_top_k=0))
    if trainer_config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
        out.append(_RunRichProgressBar() if _RICH_AVAILABLE else _RunTQDMProgressBar())
    if trainer_config.get("enable_model_summary") is not False and not any(isinstance(c, ModelSummary) for c in given):
        out.append(_RunModelSummary())
    return out
