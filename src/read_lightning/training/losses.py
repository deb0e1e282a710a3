"""Student distillation losses: masked token-level cross-entropy plus optional logit-level KD.

Pure functions over tensors; no Lightning. Shapes use ``...`` for any leading dimensions: the
caller either passes ``(B, T, V)`` logits with ``(B, T)`` targets already shifted so that
``targets[..., t]`` is the token that ``logits[..., t, :]`` predicts, or pre-selected ``(N, V)``
rows with ``(N,)`` targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")
KD_POSITIONS: tuple[str, ...] = ("answer", "all")

__all__ = ["DIVERGENCES", "KD_POSITIONS", "LossOutput", "distillation_loss", "kd_divergence", "masked_cross_entropy"]


@dataclass
class LossOutput:
    """The combined loss and its parts (parts are detached for logging)."""

    loss: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor
    num_tokens: int


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    # A zero that still depends on x, so backward() works when every token is masked.
    return x.sum() * 0.0


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy over unmasked tokens, in fp32.

    Args:
        logits: ``(..., V)`` student logits.
        targets: ``(...)`` token ids; ``ignore_index`` marks masked positions (prompt, padding).

    Returns:
        Scalar; exactly 0 (not NaN) when every position is masked.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    keep = flat_targets != ignore_index
    if not bool(keep.any()):
        return _zero_like_graph(logits).float()
    return F.cross_entropy(flat_logits[keep].float(), flat_targets[keep])


def kd_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    divergence: Divergence = "forward_kl",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token divergence between teacher and student distributions, in fp32.

    Args:
        student_logits: ``(N, V_s)``.
        teacher_logits: ``(N, V_t)``. When ``V_s != V_t`` the vocabularies are assumed to differ
            only by padding rows at the end, and both are cut to ``min(V_s, V_t)``.
        divergence: ``forward_kl`` = KL(teacher || student) (mode-covering), ``reverse_kl`` =
            KL(student || teacher) (mode-seeking), ``jsd`` = Jensen-Shannon with equal weights.
        temperature: softens both distributions; the result is scaled by ``temperature**2`` so
            gradient magnitudes stay comparable across temperatures (Hinton et al., 2015).

    Returns:
        ``(N,)`` divergence per token.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {list(DIVERGENCES)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    s = F.log_softmax(student_logits[..., :vocab].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[..., :vocab].float() / temperature, dim=-1)
    if divergence == "forward_kl":
        out = F.kl_div(s, t, log_target=True, reduction="none").sum(-1)
    elif divergence == "reverse_kl":
        out = F.kl_div(t, s, log_target=True, reduction="none").sum(-1)
    else:
        # log of the mixture m = (p_s + p_t) / 2, computed stably in log space.
        m = torch.logsumexp(torch.stack([s, t]), dim=0) - torch.log(torch.tensor(2.0, device=s.device))
        out = 0.5 * (
            F.kl_div(m, t, log_target=True, reduction="none").sum(-1)
            + F.kl_div(m, s, log_target=True, reduction="none").sum(-1)
        )
    return out * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    kd_weight: float = 0.0,
    divergence: Divergence = "forward_kl",
    temperature: float = 1.0,
    ignore_index: int = -100,
    kd_everywhere: bool = False,
) -> LossOutput:
    """``(1 - kd_weight) * CE + kd_weight * KD``, each averaged over its own positions.

    Args:
        student_logits: ``(..., V_s)``.
        targets: ``(...)`` the teacher's answer tokens, ``ignore_index`` elsewhere.
        teacher_logits: ``(..., V_t)`` at the same positions, or None for response-only SFT.
        kd_weight: mixing weight in [0, 1]; needs ``teacher_logits`` when > 0.
        kd_everywhere: KD at every position given (prompt tokens too, where the teacher's
            distribution is as informative as on the answer and costs no generation); by
            default only at the answer tokens, where CE is.
    """
    if not 0.0 <= kd_weight <= 1.0:
        raise ValueError(f"kd_weight must be in [0, 1], got {kd_weight}")
    if kd_weight > 0 and teacher_logits is None:
        raise ValueError("kd_weight > 0 needs teacher_logits (logit-level KD needs a teacher in the process)")
    flat_targets = targets.reshape(-1)
    keep = flat_targets != ignore_index
    num_tokens = int(keep.sum())
    ce = masked_cross_entropy(student_logits, targets, ignore_index)
    if teacher_logits is None or kd_weight == 0.0:
        kd = torch.zeros((), device=ce.device)
        return LossOutput(loss=ce, ce=ce.detach(), kd=kd, num_tokens=num_tokens)
    if teacher_logits.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(
            f"teacher logits {tuple(teacher_logits.shape)} do not line up with student logits "
            f"{tuple(student_logits.shape)}"
        )
    rows = torch.ones_like(keep) if kd_everywhere else keep
    if not bool(rows.any()):
        kd = _zero_like_graph(student_logits).float()
    else:
        s = student_logits.reshape(-1, student_logits.shape[-1])[rows]
        t = teacher_logits.reshape(-1, teacher_logits.shape[-1])[rows].detach()
        kd = kd_divergence(s, t, divergence, temperature).mean()
    loss = (1.0 - kd_weight) * ce + kd_weight * kd
    return LossOutput(loss=loss, ce=ce.detach(), kd=kd.detach(), num_tokens=num_tokens)
