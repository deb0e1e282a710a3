"""The student side: a LightningModule that distils teacher answers into the student."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from read_lightning.core.checks import check_number
from read_lightning.teachers.models import (
    EMBEDDED,
    compress_layers,
    default_cache_dir,
    load_model,
    load_tokenizer,
    parse_layer_spec,
    resolve_dtype,
    similarity_keep,
)
from read_lightning.training.losses import DIVERGENCES, KD_POSITIONS, distillation_loss, fused_linear_distillation
from read_lightning.training.run_state import RunState

log = logging.getLogger(__name__)


def calibration_prompts(tokenizer: Any, per_capability: int = 4, max_tokens: int = 256) -> list[list[int]]:
    """Chat-formatted token ids of a fixed sample of the packaged capability prompts.

    Used to rank a model's layers for ``student_layers: similarity:N``. The sample is drawn
    with a fixed seed, so a resumed run picks the same layers; it is drawn apart from the
    training stream, whose RNG it leaves untouched.
    """
    import random

    from read_lightning.prompts.library import TemplateLibrary
    from read_lightning.teachers.generation import chat_prompt_ids

    library, rng = TemplateLibrary.default(), random.Random(0)
    texts = [library.sample(c, rng, 0.5).text for c in library.capabilities for _ in range(per_capability)]
    return [chat_prompt_ids(tokenizer, t)[:max_tokens] for t in texts]

__all__ = ["DistillationModule", "full_student_state", "lr_factor"]


def lr_factor(progress: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the budget, then cosine decay to
    ``min_ratio``. ``progress`` is the fraction of the token budget spent (the data module's
    ``training_progress``, which spreads each interval's generation over its steps), so the schedule
    is defined even though the number of optimiser steps is only known once the budget is spent.
    """
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 1e-3)
    span = max(1.0 - warmup, 1e-8)
    cosine = 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * cosine


def _greedy_generation_config(student: torch.nn.Module, tokenizer: Any) -> Any:
    """The saved student's generation defaults: greedy, stopping at the end of a chat turn.

    A ``pipeline`` or ``generate`` call on ``student/`` then answers as the module's own greedy
    path (``HFTeacher`` with temperature 0) does, instead of sampling by surprise with settings
    inherited from the teacher's config; a user who wants sampling asks for it.
    """
    from transformers import GenerationConfig

    base = getattr(student, "generation_config", None)
    eos: list[int] = []
    for value in (getattr(base, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        for token in [value] if isinstance(value, int) else list(value or []):
            if token not in eos:
                eos.append(token)
    pad = getattr(tokenizer, "pad_token_id", None)
    return GenerationConfig(
        do_sample=False,
        bos_token_id=getattr(base, "bos_token_id", None),
        eos_token_id=eos[0] if len(eos) == 1 else eos or None,
        pad_token_id=pad if pad is not None else getattr(base, "pad_token_id", None),
    )


class DistillationModule(L.LightningModule):
    """Trains the student on teacher answers.

    Loss: masked token-level cross-entropy on the answer tokens (prompt tokens are masked); with
    ``kd_weight > 0`` it is mixed with a logit-level divergence to the teacher, which then runs
    in the same process and must share the student's vocabulary (up to padding rows).

    Args:
        student: Hub id, local directory, or the embedded default.
        student_layers: keep only these decoder layers of ``student``: a slice ``"::3"``,
            indices ``"0,4,8"``, or ``"similarity:N"`` (the N layers whose output differs most
            from their input on fixed calibration prompts); None keeps all. The embedded default
            student is the teacher compressed this way.
        teacher: the teacher, used here only for logit KD.
        kd_weight: weight of the KD term in [0, 1]; 0 is response-only SFT.
        divergence: ``forward_kl``, ``reverse_kl`` or ``jsd``.
        kd_positions: ``answer`` (KD where CE is) or ``all``: KD also on the prompt tokens,
            whose teacher distribution is free (no generation) and as informative, so a
            compressed student recovers its teacher's function faster per token trained.
        lr, weight_decay, betas: AdamW.
        warmup_fraction, min_lr_ratio: schedule over the fraction of the budget spent.
        gradient_checkpointing: trade compute for activation memory.
        lean_logits: compute the vocabulary projection only at labelled positions (checked once
            per model against its full forward; a model that post-processes its logits keeps it).
    """

    def __init__(
        self,
        student: str = EMBEDDED,
        student_layers: str | None = "::3",
        teacher: str = EMBEDDED,
        kd_weight: float = 0.0,
        divergence: str = "forward_kl",
        kd_positions: str = "answer",
        temperature: float = 1.0,
        lr: float = 2e-5,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_fraction: float = 0.05,
        min_lr_ratio: float = 0.1,
        gradient_checkpointing: bool = False,
        lean_logits: bool = True,
        dtype: str = "float32",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {divergence!r}; choose one of {list(DIVERGENCES)}")
        check_number("kd_weight", kd_weight, low=0.0, high=1.0)
        if kd_positions not in KD_POSITIONS:
            raise ValueError(f"unknown kd_positions {kd_positions!r}; choose one of {list(KD_POSITIONS)}")
        check_number("warmup_fraction", warmup_fraction, low=0.0, high=1.0, open_high=True)
        check_number("min_lr_ratio", min_lr_ratio, low=0.0, high=1.0)
        check_number("lr", lr, low=0.0, open_low=True)
        check_number("temperature", temperature, low=0.0, open_low=True)
        check_number("weight_decay", weight_decay, low=0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers, got {betas!r}")
        for beta in betas:
            check_number("betas", beta, low=0.0, high=1.0, open_high=True)
        resolve_dtype(dtype)  # an unknown dtype is named now, not when the model loads
        if student_layers is not None:
            if not isinstance(student_layers, str) or not student_layers.strip():
                raise ValueError(f"student_layers must be a layer spec like '::3' or '0,4,8', got {student_layers!r}")
            # Syntax only: the layer count is known once the model is loaded.
            parse_layer_spec(student_layers, 10**6)
        self.save_hyperparameters()
        self.student: torch.nn.Module | None = None
        # The teacher is frozen and shared with the data module: keep it out of this module's
        # parameters, state_dict and checkpoints by not registering it as a submodule.
        self._frozen: dict[str, torch.nn.Module | None] = {"teacher": None}
        self.tokenizer: Any = None
        self._lean_checked: dict[int, bool] = {}  # id(model) -> lean path gives its own logits

    @property
    def teacher(self) -> torch.nn.Module | None:
        return self._frozen["teacher"]

    @property
    def tokens_seen(self) -> int | None:
        """Tokens trained so far, over all ranks: the data module's ledger's count (charged as each
        batch goes to the device); None without a ledger."""
        ledger = getattr(getattr(self._trainer, "datamodule", None), "ledger", None)
        return int(ledger.summary()["training"]) if ledger is not None else None

    # ----------------------------------------------------------------- models
    def attach(self, *, student: torch.nn.Module, tokenizer: Any, teacher: torch.nn.Module | None = None) -> DistillationModule:
        """Use ready-made models instead of loading them from the configured names."""
        self.student, self.tokenizer = student, tokenizer
        self._frozen["teacher"] = teacher
        self._check_kd_compatible()
        return self

    def configure_model(self) -> None:
        if self.student is not None:
            return
        hp = self.hparams
        self.tokenizer = load_tokenizer(hp.student, hp.cache_dir)
        if hp.student_layers:
            # Compress from the shared copy when the student is the teacher itself, so the
            # teacher's weights are read from disk only once.
            base = load_model(hp.student, dtype=hp.dtype, cache_dir=hp.cache_dir, shared=hp.student == hp.teacher)
            calibration = calibration_prompts(self.tokenizer) if similarity_keep(hp.student_layers) else None
            self.student = compress_layers(base, hp.student_layers, calibration,
                                           cache_dir=hp.cache_dir or default_cache_dir())
        else:
            self.student = load_model(hp.student, dtype=hp.dtype, cache_dir=hp.cache_dir)
        self.student.requires_grad_(True).train()
        if hp.gradient_checkpointing:
            self.student.gradient_checkpointing_enable()
            self.student.config.use_cache = False
        if hp.kd_weight > 0:
            self._frozen["teacher"] = load_model(hp.teacher, dtype=hp.dtype, cache_dir=hp.cache_dir, shared=True)
            self._teacher_tokenizer = load_tokenizer(hp.teacher, hp.cache_dir)
            self._check_kd_compatible()

    def _check_kd_compatible(self) -> None:
        if self.hparams.kd_weight <= 0:
            return
        if self.teacher is None:
            raise ValueError("kd_weight > 0 needs a teacher model in the process")
        teacher_tok = getattr(self, "_teacher_tokenizer", None)
        if teacher_tok is not None and teacher_tok.get_vocab() != self.tokenizer.get_vocab():
            raise ValueError(
                f"logit KD needs teacher and student to share a tokenizer, but teacher "
                f"{self.hparams.teacher!r} ({len(teacher_tok)} tokens) and student {self.hparams.student!r} "
                f"({len(self.tokenizer)} tokens) differ; set kd_weight: 0 for response-only distillation"
            )
        s_vocab = self.student.get_output_embeddings().weight.shape[0]
        t_vocab = self.teacher.get_output_embeddings().weight.shape[0]
        real = len(self.tokenizer)
        if min(s_vocab, t_vocab) < real:
            raise ValueError(
                f"logit KD: output vocabularies (student {s_vocab}, teacher {t_vocab}) are smaller than "
                f"the tokenizer ({real} tokens)"
            )

    # ----------------------------------------------------------------- forward
    def _logits_at(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, V)`` at the ``N`` positions where ``keep`` ``(B, T-1)`` is True.

        With ``lean_logits`` the decoder runs once and the vocabulary projection, the largest
        matmul of a small LM, is applied only at labelled positions.
        """
        if self._lean(model, batch):
            return model.get_output_embeddings()(self._hidden_at(model, batch, keep))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits[:, :-1][keep]

    @staticmethod
    def _last_hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden states ``(B, T - 1, d)`` at every position that predicts a next token."""
        return model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, :-1]

    def _hidden_at(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """The last hidden states ``(N, d)`` at the positions where ``keep`` is True."""
        return self._last_hidden(model, batch)[keep]

    def takes_teacher_states(self, model: torch.nn.Module | None) -> bool:
        """Whether states ``model`` computed while generating serve as this module's teacher
        targets: it is the KD teacher itself and the loss reads hidden states (lean logits)."""
        return model is not None and model is self.teacher and self.hparams.kd_weight > 0 and self.hparams.lean_logits

    def _teacher_hidden_at(self, batch: dict[str, Any], keep: torch.Tensor) -> torch.Tensor:
        """The teacher's last hidden states at ``keep``: those the batch carries from generation
        (``teacher_hidden``, see :func:`~.batches.attach_teacher_states`), the teacher run only on
        the rows that carry none."""
        kept, rows = batch.get("teacher_hidden"), batch.get("teacher_hidden_rows")
        if kept is None or rows is None or not bool(rows.any()):
            return self._hidden_at(self.teacher, batch, keep)
        missing = (~rows).nonzero().flatten()
        if len(missing):
            sub = {k: batch[k].index_select(0, missing) for k in ("input_ids", "attention_mask")}
            kept = kept.clone()
            kept[missing] = self._last_hidden(self.teacher, sub).to(kept.dtype)
        return kept[keep]

    def _fused(self, batch: dict[str, torch.Tensor], kd: bool) -> bool:
        """Whether the loss can take hidden states and the output projections (see
        :func:`~.losses.fused_linear_distillation`): both models' lean paths give their own logits
        and their projections have no bias."""
        models = [self.student] + ([self.teacher] if kd else [])
        return all(self._lean(m, batch) and getattr(m.get_output_embeddings(), "bias", None) is None for m in models)

    def _lean(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> bool:
        """Whether the lean path gives ``model``'s own logits, checked once per model.

        Some families post-process the projection inside ``forward`` (Gemma-2's final logit
        soft-capping, Cohere's ``logit_scale``, Granite's ``logits_scaling``); for them the lean
        path would train on another distribution. The first batch's first row is run both ways
        (eval mode, no grad) and a model whose logits differ keeps the full forward.
        """
        if not self.hparams.lean_logits or not hasattr(model, "model") or model.get_output_embeddings() is None:
            return False
        key = id(model)
        if key not in self._lean_checked:
            row = {k: batch[k][:1] for k in ("input_ids", "attention_mask")}
            training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    full = model(**row).logits.float()
                    lean = model.get_output_embeddings()(model.model(**row).last_hidden_state).float()
            finally:
                model.train(training)
            difference = float((lean - full).abs().max())
            self._lean_checked[key] = difference <= 1e-2 * float(full.abs().max()) + 1e-3
            if not self._lean_checked[key]:
                log.warning("lean_logits: %s post-processes its logits in forward (max difference %.3g); "
                            "using its full forward", type(model).__name__, difference)
        return self._lean_checked[key]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        targets = batch["labels"][:, 1:]
        kd = self.teacher is not None and self.hparams.kd_weight > 0
        everywhere = kd and self.hparams.get("kd_positions", "answer") == "all"
        # The positions whose logits are needed: the answer tokens, or every real token for KD everywhere.
        real = batch["attention_mask"].bool()
        keep = (real[:, 1:] & real[:, :-1]) if everywhere else targets != -100
        options = {"kd_weight": self.hparams.kd_weight, "divergence": self.hparams.divergence,
                   "temperature": self.hparams.temperature, "kd_everywhere": everywhere}
        if self._fused(batch, kd):
            # The vocabulary projection and the loss in one chunked pass: the (N, V) logits are never built.
            hidden = self._hidden_at(self.student, batch, keep)
            teacher_hidden = teacher_head = None
            if kd:
                with torch.no_grad():
                    teacher_hidden = self._teacher_hidden_at(batch, keep)
                teacher_head = self.teacher.get_output_embeddings().weight
            out = fused_linear_distillation(hidden, self.student.get_output_embeddings().weight, targets[keep],
                                            teacher_hidden, teacher_head, **options)
        else:
            student_logits = self._logits_at(self.student, batch, keep)
            teacher_logits = None
            if kd:
                with torch.no_grad():
                    teacher_logits = self._logits_at(self.teacher, batch, keep)
            out = distillation_loss(student_logits, targets[keep], teacher_logits, **options)
        bs = batch["input_ids"].shape[0]
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=bs)
        self.log("train/ce_loss", out.ce, batch_size=bs)
        self.log("train/kd_loss", out.kd, batch_size=bs)
        tokens_seen = self.tokens_seen
        if tokens_seen is not None:
            self.log("train/tokens_seen", float(tokens_seen), prog_bar=True, batch_size=bs, reduce_fx="max")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        return out.loss

    # ----------------------------------------------------------------- optimisation
    def _budget_progress(self) -> float:
        dm = getattr(self.trainer, "datamodule", None)
        progress = getattr(dm, "training_progress", None)
        if isinstance(progress, float):
            return progress
        ledger = getattr(dm, "ledger", None)
        if ledger is not None:
            return ledger.fraction_spent
        total = self.trainer.estimated_stepping_batches
        return self.global_step / total if total and math.isfinite(total) else 0.0

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        decay, no_decay = [], []
        for name, p in self.student.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr,
            betas=tuple(hp.betas),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda _: lr_factor(self._budget_progress(), hp.warmup_fraction, hp.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------- output
    # The run's clock, stop decision and files belong to its RunState; the module asks it.
    def setup(self, stage: str) -> None:
        RunState.of(self.trainer)  # attached before a checkpoint is restored into it

    def on_fit_start(self) -> None:
        RunState.of(self.trainer).start_clock()
        if self.teacher is not None:
            self.teacher.to(self.device)

    def on_train_end(self) -> None:
        self._write_outputs()

    def on_fit_end(self) -> None:
        # A run resumed from the checkpoint of its last interval (killed after it, before or while
        # writing the outputs) has nothing left to train, and Lightning then skips on_train_end.
        # The run state writes them once either way.
        self._write_outputs()

    def _write_outputs(self) -> None:
        RunState.of(self.trainer).write_outputs(self.trainer, self._save_student)

    def _save_student(self, log_dir: str | None) -> Path | None:
        # A collective under several processes: every rank takes part before rank 0 alone writes.
        student_state = full_student_state(self.trainer)
        return self._write_student(Path(log_dir) / "student", student_state) if log_dir else None

    @rank_zero_only
    def _write_student(self, out: Path, student_state: dict[str, torch.Tensor]) -> Path:
        self.student.save_pretrained(out, state_dict=student_state)
        if self.tokenizer is not None:
            # the chat template travels with the tokenizer (tokenizer_config.json / chat_template.jinja)
            self.tokenizer.save_pretrained(out)
            if not getattr(self.tokenizer, "chat_template", None):
                log.warning("the tokenizer has no chat template: %s cannot be used with chat messages", out)
        _greedy_generation_config(self.student, self.tokenizer).save_pretrained(out)
        return out


def full_student_state(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    """The whole state dict of the module's ``student``, also when it is sharded (FSDP).

    A collective under several processes: every rank must call it, every rank takes part in
    gathering the shards, and only rank 0 receives the tensors (other ranks get an empty dict).
    The full gather is asked for explicitly, so a strategy that saves sharded checkpoints still
    yields a whole Hugging Face model. Keys are the student's own (``model.layers.0...``); the
    frozen teacher is not registered and never appears.
    """
    if trainer.world_size == 1:
        full = trainer.lightning_module.state_dict()
    else:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        full = get_model_state_dict(trainer.strategy.model, options=options)
    prefix = "student."
    return {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
