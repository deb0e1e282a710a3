"""Student distillation losses: masked token-level cross-entropy plus optional logit-level KD.

Pure functions over tensors; no Lightning. Shapes use ``...`` for any leading dimensions: the
caller either passes ``(B, T, V)`` logits with ``(B, T)`` targets already shifted so that
``targets[..., t]`` is the token that ``logits[..., t, :]`` predicts, or pre-selected ``(N, V)``
rows with ``(N,)`` targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")
KD_POSITIONS: tuple[str, ...] = ("answer", "all")

__all__ = [
    "DIVERGENCES", "KD_POSITIONS", "LossOutput", "distillation_loss", "fused_linear_distillation", "kd_divergence",
    "masked_cross_entropy",
]


@dataclass
class LossOutput:
    """The combined loss and its parts (parts are detached for logging)."""

    loss: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor
    num_tokens: int


def _check_options(*, kd_weight: float | None = None, divergence: str | None = None,
                   temperature: float | None = None) -> None:
    """The checks every loss here makes of the options it takes (None: not taken)."""
    if kd_weight is not None and not 0.0 <= kd_weight <= 1.0:
        raise ValueError(f"kd_weight must be in [0, 1], got {kd_weight}")
    if divergence is not None and divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {list(DIVERGENCES)}")
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


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
    _check_options(divergence=divergence, temperature=temperature)
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
    _check_options(kd_weight=kd_weight)
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


def _chunk_grad(s: torch.Tensor, t: torch.Tensor | None, targets: torch.Tensor, kd_rows: torch.Tensor,
                *, kd_scale: float, ce_scale: float, divergence: str, temperature: float,
                ignore_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sum of CE and KD over one chunk of rows and their gradient w.r.t. the student logits ``s``.

    ``kd_scale`` and ``ce_scale`` are the weights of a row's term in the total loss (mixing weight
    over the number of rows each term averages over); the returned sums are unweighted.
    """
    s = s.float()
    log_ps = F.log_softmax(s, dim=-1)
    grad = torch.zeros_like(s)
    ce_sum = torch.zeros((), dtype=torch.float32, device=s.device)
    labelled = targets != ignore_index
    if bool(labelled.any()):
        rows = labelled.nonzero().squeeze(1)
        picked = targets[rows]
        ce_sum = -log_ps[rows, picked].sum()
        if ce_scale:
            # d CE / d s = softmax(s) - onehot(target)
            grad[rows] += ce_scale * log_ps[rows].exp()
            grad[rows, picked] -= ce_scale
    kd_sum = torch.zeros((), dtype=torch.float32, device=s.device)
    if t is not None and bool(kd_rows.any()):
        rows = kd_rows.nonzero().squeeze(1)
        vocab = min(s.shape[-1], t.shape[-1])
        if divergence == "jsd":
            # no closed form worth writing out: autograd on this chunk only
            with torch.enable_grad():
                leaf = s[rows, :vocab].detach().requires_grad_(True)
                value = kd_divergence(leaf, t[rows, :vocab], "jsd", temperature).sum()
                (g,) = torch.autograd.grad(value, leaf)
            kd_sum = value.detach()
            grad[rows, :vocab] += kd_scale * g
        else:
            log_p = F.log_softmax(s[rows, :vocab] / temperature, dim=-1)
            log_q = F.log_softmax(t[rows, :vocab].float() / temperature, dim=-1)
            if divergence == "forward_kl":
                # KL(q || p) over the softened distributions, times T^2; d/ds = T (p - q)
                q = log_q.exp()
                kl = (q * (log_q - log_p)).sum(-1)
                g = log_p.exp().sub_(q)
            else:
                # KL(p || q); d/ds = T p (log p - log q - KL)
                p = log_p.exp()
                diff = log_p - log_q
                kl = (p * diff).sum(-1)
                g = p.mul_(diff.sub_(kl[:, None]))
            kd_sum = kl.sum() * temperature**2
            grad[rows, :vocab] += (kd_scale * temperature) * g
    return ce_sum, kd_sum, grad


class _FusedLinearDistillation(torch.autograd.Function):
    """Loss and gradients of :func:`fused_linear_distillation`, computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, teacher_hidden: torch.Tensor | None,
                teacher_weight: torch.Tensor | None, targets: torch.Tensor,
                options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = hidden.shape[0]
        labelled = targets != options["ignore_index"]
        kd_rows_all = torch.ones_like(labelled) if options["kd_everywhere"] else labelled
        n_ce, n_kd = int(labelled.sum()), int(kd_rows_all.sum())
        kd_on = teacher_hidden is not None and options["kd_weight"] > 0
        w = options["kd_weight"] if kd_on else 0.0
        ce_scale = (1.0 - w) / n_ce if n_ce else 0.0
        kd_scale = w / n_kd if (kd_on and n_kd) else 0.0
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        ce_total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        kd_total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = options["chunk_rows"]
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        weight_fp32 = weight.float()  # once, not per chunk (a no-op for fp32 weights)
        for start in range(0, n, step):
            h = hidden[start:start + step]
            s = F.linear(h, weight)
            t = None
            if kd_on:
                with torch.no_grad():
                    t = F.linear(teacher_hidden[start:start + step], teacher_weight)
            ce_sum, kd_sum, g = _chunk_grad(
                s, t, targets[start:start + step], kd_rows_all[start:start + step],
                kd_scale=kd_scale, ce_scale=ce_scale, divergence=options["divergence"],
                temperature=options["temperature"], ignore_index=options["ignore_index"])
            ce_total += ce_sum
            kd_total += kd_sum
            if want_grad:
                grad_hidden[start:start + step] = g @ weight_fp32
                grad_weight.addmm_(g.t(), h.float())
        ce = ce_total / n_ce if n_ce else ce_total
        kd = kd_total / n_kd if (kd_on and n_kd) else torch.zeros((), device=hidden.device)
        loss = (1.0 - w) * ce + w * kd
        ce, kd = ce.detach(), kd.detach()
        ctx.save_for_backward(grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype))
        ctx.mark_non_differentiable(ce, kd)
        return loss, ce, kd

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_output, grad_weight * grad_output, None, None, None, None


def fused_linear_distillation(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    teacher_hidden: torch.Tensor | None = None,
    teacher_weight: torch.Tensor | None = None,
    *,
    kd_weight: float = 0.0,
    divergence: Divergence = "forward_kl",
    temperature: float = 1.0,
    ignore_index: int = -100,
    kd_everywhere: bool = False,
    chunk_rows: int = 64,
) -> LossOutput:
    """:func:`distillation_loss` of the logits ``hidden @ weight.T`` (and the teacher's
    ``teacher_hidden @ teacher_weight.T``), without building them.

    The vocabulary projection and the loss run ``chunk_rows`` rows at a time, and the gradients
    of ``hidden`` and ``weight`` are computed in the same pass. The full ``(N, V)`` logits of a
    small LM (49,152 columns for SmolLM2) are hundreds of MB per batch for each model, and
    building, softening and differencing them cost as much as the student's forward pass; a
    chunk of 64 rows stays a few MB and is reused. Same value and gradients as
    :func:`distillation_loss` on the full logits, to float rounding.

    Args:
        hidden: ``(N, d)`` the student's last hidden states at the N scored positions.
        weight: ``(V_s, d)`` the student's output projection (no bias).
        targets: ``(N,)`` as :func:`distillation_loss`.
        teacher_hidden, teacher_weight: the teacher's, for KD (no gradient flows to them).
    """
    _check_options(kd_weight=kd_weight, divergence=divergence, temperature=temperature)
    if kd_weight > 0 and (teacher_hidden is None or teacher_weight is None):
        raise ValueError("kd_weight > 0 needs the teacher's hidden states and output projection")
    if teacher_hidden is not None and teacher_hidden.shape[0] != hidden.shape[0]:
        raise ValueError(f"teacher hidden states {tuple(teacher_hidden.shape)} do not line up with the "
                         f"student's {tuple(hidden.shape)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    options = {"kd_weight": float(kd_weight), "divergence": divergence, "temperature": float(temperature),
               "ignore_index": ignore_index, "kd_everywhere": kd_everywhere, "chunk_rows": chunk_rows}
    teacher_hidden = None if kd_weight == 0 else teacher_hidden.detach()
    teacher_weight = None if kd_weight == 0 else teacher_weight.detach()
    targets = targets.reshape(-1)
    loss, ce, kd = _FusedLinearDistillation.apply(hidden, weight, teacher_hidden, teacher_weight, targets, options)
    return LossOutput(loss=loss, ce=ce, kd=kd, num_tokens=int((targets != ignore_index).sum()))
