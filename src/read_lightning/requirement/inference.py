"""Task requirement inference: from a task card to the requirement vector r.

Users rarely know the right requirement vector (docs/method.md, "The requirement vector"), so there are
three ways to get one, behind one entry point, :func:`infer_requirement`:

* ``"card"``: the vector written in the task card, validated (non-negative, renormalised,
  unknown names rejected).
* ``"identifier"``: a learned identifier ``g_phi(card)`` (:class:`RequirementIdentifier`): a
  fixed text encoder, a small MLP and a softmax, fitted offline on intervention data
  (``read_lightning.requirement.interventions``) by :func:`fit_identifier`::

      min_phi  sum_m (dU_m - a * g_phi(card_m) . ds_m)^2  +  lambda_ent * H(g_phi(card_m))

  where ``ds_m`` is the change of the capability profile and ``dU_m`` the change of task
  utility caused by intervention ``m``. It fits the utility *change*: the first-order model is
  ``dU ~ grad_s F(s) . ds``, and fitting absolute utility (the published code's weakness)
  confounds r with how good the student already is. ``a > 0`` is one learned gain shared by
  all cards (``fit_scale=True``): task and probe scores live on different scales, and without
  it the softmax would have to distort r's direction to match dU's magnitude.
* ``"zero_shot"``: the teacher rates each capability 0-10 for the card; its answer is parsed
  robustly (:func:`parse_importance`) and falls back to uniform, with a warning, when it
  cannot be read.

Every method returns a :class:`RequirementResult`: the vector plus a one-line explanation for
the run summary.

Encoders (``encoder=`` of :func:`fit_identifier`, ``--encoder`` of ``read-train identifier``):

* ``"hashed"`` (default): a hashed bag of word 1- and 2-grams of the card text (feature
  hashing, signed, log counts, L2-normalised), ``[N, dim]``. Needs no download and no model,
  is deterministic across processes (blake2b, not Python's salted ``hash``), and with a few
  dozen training cards it does as well as anything: the identifier mostly has to key on words
  such as "Python", "arithmetic" or "translate".
* ``"embeddings"``: the mean-pooled *input* embeddings of a causal LM's tokens
  (``models.load_model``; default the embedded student/teacher), ``[N, hidden]``. Shares
  sub-word knowledge between related words ("sum" and "add"), so it may generalise better to
  unseen cards when there are many; it costs a model load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Literal

from read_lightning.core.jsonl import read_jsonl
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.requirement.cards import RequirementResult, card_requirement, load_card
from read_lightning.requirement.identifier import (
    Encoder,
    HashedNgramEncoder,
    ModelEmbeddingEncoder,
    RequirementIdentifier,
    fit_identifier,
    identifier_requirement,
)
from read_lightning.requirement.zero_shot import zero_shot_requirement
from read_lightning.teachers.generation import Teacher
from read_lightning.teachers.models import EMBEDDED

__all__ = ["METHODS", "identifier_main", "infer_requirement"]


METHODS: tuple[str, ...] = ("card", "identifier", "zero_shot", "auto")
# --------------------------------------------------------------------------- entry point


def infer_requirement(
    card: TaskCard,
    method: Literal["card", "identifier", "zero_shot", "auto"] = "auto",
    capabilities: Sequence[str] | None = None,
    identifier_path: str | os.PathLike | None = None,
    teacher: Teacher | None = None,
) -> RequirementResult:
    """The requirement vector of ``card`` by ``method``, with an explanation for the run summary.

    ``"auto"`` takes the card's vector if it has one, else the identifier if ``identifier_path``
    is given, else the zero-shot teacher if ``teacher`` is given, and otherwise raises a
    ``ValueError`` saying what to provide.
    """
    if method not in METHODS:
        raise ValueError(f"unknown requirement method {method!r}; choose one of {list(METHODS)!r}")
    if method == "auto":
        if card.requirement is not None:
            method = "card"
        elif identifier_path is not None:
            method = "identifier"
        elif teacher is not None:
            method = "zero_shot"
        else:
            raise ValueError(
                f"cannot infer the requirement of task {card.name!r}: the card has no 'requirement' field, "
                "and neither an identifier path nor a teacher was given"
            )
    if method == "card":
        return card_requirement(card, capabilities)
    if method == "identifier":
        if identifier_path is None:
            raise ValueError("method 'identifier' needs identifier_path (a directory written by identifier fit)")
        return identifier_requirement(card, identifier_path, capabilities)
    if teacher is None:
        raise ValueError("method 'zero_shot' needs a teacher (an object with generate(prompts, max_new_tokens=...))")
    return zero_shot_requirement(card, teacher, capabilities)


# --------------------------------------------------------------------------- command line


def identifier_main(argv: list[str] | None = None) -> int:
    """``read-train identifier fit|predict``: fit the requirement identifier, or use it.

    ``fit --data rows.jsonl [--data more.jsonl] --output DIR`` fits on intervention rows and saves;
    ``predict --identifier DIR CARD [CARD ...]`` prints one JSON line per card.
    """
    parser = argparse.ArgumentParser(prog="read-train identifier", description=identifier_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit g_phi on intervention rows and save it")
    fit.add_argument("--data", action="append", required=True, help="intervention JSONL (repeatable)")
    fit.add_argument("--output", required=True, help="directory to save the identifier into")
    fit.add_argument("--encoder", default="hashed", choices=["hashed", "embeddings"])
    fit.add_argument("--encoder-model", default=EMBEDDED, help="model whose input embeddings 'embeddings' uses")
    fit.add_argument("--hash-dim", type=int, default=2048)
    fit.add_argument("--hidden", type=int, default=64)
    fit.add_argument("--lambda-ent", type=float, default=1e-3)
    fit.add_argument("--no-fit-scale", action="store_true", help="fix the gain a = 1 (dU = g . ds exactly)")
    fit.add_argument("--steps", type=int, default=600)
    fit.add_argument("--lr", type=float, default=1e-2)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--capabilities", nargs="+", default=None)
    fit.add_argument("--cache-dir", default=None)
    pred = sub.add_parser("predict", help="print the predicted requirement vector of task cards")
    pred.add_argument("--identifier", required=True)
    pred.add_argument("cards", nargs="+", help="card paths or example task names")
    pred.add_argument("--cache-dir", default=None, help="model cache, for an 'embeddings' identifier")
    args = parser.parse_args(argv)

    if args.command == "fit":
        rows = [row for path in args.data for row in read_jsonl(path, required=("delta_s", "delta_u"))]
        # Default: the capabilities the rows were collected for, in their order.
        capabilities = args.capabilities or (list(rows[0]["delta_s"]) if rows else None)
        encoder: str | Encoder = (
            HashedNgramEncoder(dim=args.hash_dim)
            if args.encoder == "hashed"
            else ModelEmbeddingEncoder(args.encoder_model, cache_dir=args.cache_dir)
        )
        model = fit_identifier(
            rows,
            capabilities,
            encoder=encoder,
            hidden=args.hidden,
            lambda_ent=args.lambda_ent,
            fit_scale=not args.no_fit_scale,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
        )
        model.save(args.output)
        print(json.dumps({"saved": str(args.output), **model.info}))
        return 0
    model = RequirementIdentifier.load(args.identifier, cache_dir=args.cache_dir)
    for name in args.cards:
        card = load_card(name, model.capabilities)
        result = identifier_requirement(card, model)
        print(json.dumps({"card": card.name, "vector": result.vector, "explanation": result.explanation}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(identifier_main())
