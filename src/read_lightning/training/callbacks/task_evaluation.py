"""``TaskEvaluationCallback``: the real task utility on the card's dev split at coarse checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from read_lightning.core import progress
from read_lightning.core.checks import check_number
from read_lightning.core.run_summary import TASK
from read_lightning.training.callbacks.shared import (
    TimedEvaluation,
    evaluation_student,
    teacher_cache,
    teacher_source,
)
from read_lightning.training.progress import progress_display

__all__ = ["TaskEvaluationCallback"]

log = logging.getLogger(__name__)


class TaskEvaluationCallback(TimedEvaluation):
    """Evaluates the real task utility on the task card's dev split at coarse checkpoints.

    Args:
        task_card: a card path or the name of a packaged example task (``arith_word``); under
            ``read-train fit`` the config's ``task.card`` fills it when it is left out.
        every_n_epochs: the spacing of development checkpoints, in intervals.
        limit, batch_size: dev rows scored (default all) and the scoring batch size.
        references: ``"gold"`` scores the card's own metric against its answers; ``"teacher"``
            scores fidelity to the teacher's greedy answers (generated once and cached, as the
            probes do), which is the utility to use where the teacher is itself mostly wrong
            (the embedded default) and what ``read-train compare`` scores on the test split.
        cache_dir: where teacher references are cached; default the models' cache.
        test_answers: before training and after it, have the student answer the card's test
            split greedily and score the answers (agreement with the teacher's answers by the
            card's rule, accuracy against gold, degenerate answers; 95% intervals). This is the
            run's headline: ``summary.json``, the report and ``task/test_*`` in TensorBoard.
        test_limit: test rows answered (default all).

    Logs ``task/utility`` (0-100), and ``task/agreement`` (teacher-forced whole-answer match, %)
    with teacher references. It attaches itself to the run's
    :class:`~read_lightning.training.run_state.RunState` as the run's task evaluation
    (:meth:`~read_lightning.training.run_state.RunState.attach_task`): ``BanditAllocationCallback``
    asks it there for the card (when it has no requirement vector or card of its own) and for the
    utility of each interval (:meth:`utility_at`), for kappa decay and reward calibration.
    """

    _latest = "latest_utility"
    summary_key = TASK
    phase = "task_evaluation"  # its phase of the run's time (RunState.timed)
    latest_utility: float | None

    def __init__(
        self,
        task_card: str | None = None,
        every_n_epochs: int = 1,
        limit: int | None = None,
        batch_size: int = 8,
        references: str = "gold",
        cache_dir: str | None = None,
        test_answers: bool = True,
        test_limit: int | None = None,
    ) -> None:
        super().__init__()
        from read_lightning.evaluation.tasks import TaskCard
        from read_lightning.requirement.cards import resolve_card

        if task_card is None:
            # None only so that read-train's task.card can fill it (a required key would not parse)
            raise ValueError("TaskEvaluationCallback needs a task_card: a card path or a packaged task name "
                             "(under read-train fit, task.card fills it)")
        check_number("every_n_epochs", every_n_epochs, low=1, integer=True)
        check_number("task batch_size", batch_size, low=1, integer=True)
        if limit is not None:
            check_number("task limit", limit, low=1, integer=True)
        if test_limit is not None:
            check_number("task test_limit", test_limit, low=1, integer=True)
        if references not in ("gold", "teacher"):
            raise ValueError(f"task references must be 'gold' or 'teacher', got {references!r}")
        self.card = TaskCard.load(resolve_card(task_card))
        self.every_n_epochs, self.limit, self.batch_size = every_n_epochs, limit, batch_size
        self.references, self.cache_dir = references, cache_dir
        self._reference_rows: list[dict[str, Any]] | None = None
        self.evaluated_epoch: int | None = None  # the interval whose end was last evaluated
        self.test_answers, self.test_limit = test_answers, test_limit
        # rates of the test answers before and after training (see answer_report)
        self.answers: dict[str, Any] = {"split": "test", "before": None, "after": None}
        self._outcomes: dict[str, list[dict[str, Any]]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.run_state.attach_task(self)

    def utility_at(self, epoch: int) -> float | None:
        """The task utility measured at the end of interval ``epoch``; None when it was not
        measured then. With ``every_n_epochs > 1`` the utility of an earlier checkpoint is not
        a new development checkpoint (it would add a duplicate calibration point and shrink kappa)."""
        if self.latest_utility is None or self.evaluated_epoch != epoch:
            return None
        return float(self.latest_utility)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "evaluated_epoch": self.evaluated_epoch, "answers": self.answers,
                "outcomes": self._outcomes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.evaluated_epoch = state.get("evaluated_epoch")
        self.answers = dict(state.get("answers") or self.answers)
        self._outcomes = dict(state.get("outcomes") or {})

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "answers": self.answers}

    def _answer_test(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        """Score the student's greedy test answers (rank 0), log them, keep them for the report."""
        from read_lightning.evaluation.task_answers import answer_outcomes, answer_report, has_gold
        from read_lightning.evaluation.tasks import task_references

        rates = None
        student, tokenizer = evaluation_student(trainer, pl_module)
        if trainer.is_global_zero:
            found = teacher_source(trainer)
            teacher_rows = None
            if found is not None:
                cache = teacher_cache(trainer, self.cache_dir, "task_test_references")
                with self._phase(trainer, "teacher references", "test", self.test_limit):
                    teacher_rows = task_references(self.card, *found, cache, split="test",
                                                   batch_size=self.batch_size, limit=self.test_limit)
            # answer_outcomes gives the student back in its train/eval mode
            # The untrained student is the same model in every run of a recipe: its answers are
            # kept, keyed by a hash of its weights (see answer_outcomes).
            answers_cache = None
            if when == "before":
                from read_lightning.teachers.models import default_cache_dir

                answers_cache = Path(self.cache_dir or default_cache_dir()) / "student_test_answers"
            with self._phase(trainer, f"student answers ({when} training)", "test", self.test_limit):
                outcomes = answer_outcomes(self.card, student, tokenizer, "test", teacher_answers=teacher_rows,
                                           limit=self.test_limit, batch_size=self.batch_size,
                                           cache_dir=answers_cache)
            rates = answer_report(outcomes)
            if not has_gold(self.card):
                rates["note"] = "the card has no gold answers: agreement with the teacher only"
            self._outcomes[when] = [{k: o[k] for k in ("agree", "correct", "degenerate", "final")} for o in outcomes]
        rates = trainer.strategy.broadcast(rates, src=0)
        self.answers[when] = rates
        if trainer.is_global_zero and trainer.logger is not None:
            metrics = {f"task/test_{k}": float(rates[k]) for k in ("agreement", "accuracy", "degenerate") if k in rates}
            trainer.logger.log_metrics(metrics, step=trainer.global_step)

    def _phase(self, trainer: L.Trainer, what: str, split: str, limit: int | None) -> Any:
        """A progress phase (a bar on a terminal, log lines without) over the rows of ``split``;
        the batch loops below advance it."""
        rows = len(self.card.rows(split)[:limit])
        return progress.phase(f"{self.card.name} {split}: {what}", total=rows, unit="rows",
                              display=progress_display(trainer))

    def _answer_after(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test_answers and self.answers.get("after") is None:
            self._timed(self._answer_test, trainer, pl_module, "after")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._answer_after(trainer, pl_module)  # before the module writes summary.json

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._answer_after(trainer, pl_module)  # a resumed run with nothing left to train

    def _prepare_references(self, trainer: L.Trainer) -> None:
        from read_lightning.evaluation.tasks import task_references

        found = teacher_source(trainer)
        if found is None:
            log.warning("the data module has no teacher to ask; the task is scored on the card's gold answers")
            return
        cache = teacher_cache(trainer, self.cache_dir, "task_references")
        with self._phase(trainer, "teacher references", "dev", self.limit):
            self._reference_rows = task_references(self.card, *found, cache, split="dev", batch_size=self.batch_size,
                                                   limit=self.limit)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        from read_lightning.evaluation.tasks import evaluate_task

        scores: dict[str, float] | None = None
        student, tokenizer = evaluation_student(trainer, pl_module)
        if trainer.is_global_zero:
            was_training = student.training
            with self._phase(trainer, "task evaluation", "dev", self.limit):
                result = evaluate_task(self.card, student, tokenizer, split="dev", limit=self.limit,
                                       batch_size=self.batch_size, references=self._reference_rows)
            student.train(was_training)
            scores = {k: float(result[k]) for k in ("utility", "agreement") if k in result}
        scores = dict(trainer.strategy.broadcast(scores, src=0))
        self.latest_utility = scores["utility"]
        self.history.append({"epoch": trainer.current_epoch, **scores})
        return scores

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_clock(trainer)
        if self.references == "teacher" and trainer.is_global_zero:
            self._timed(self._prepare_references, trainer)  # cached: a resumed run reads the file
        if self.test_answers and self.answers.get("before") is None:
            self._timed(self._answer_test, trainer, pl_module, "before")
        if self.latest_utility is not None:
            return  # restored from a checkpoint: the checkpointed student's utility is known
        self._timed(self._evaluate, trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        scores = self._timed(self._evaluate, trainer, pl_module)
        self.evaluated_epoch = trainer.current_epoch
        for name, value in scores.items():
            pl_module.log(f"task/{name}", value, rank_zero_only=True)
        pl_module.log("time/task_fraction", self._fraction(), rank_zero_only=True)
