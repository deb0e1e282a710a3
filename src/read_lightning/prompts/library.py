"""The template library: the ``PromptSource`` the data module samples from.

For one prompt, ``TemplateLibrary``

1. picks a difficulty tier from the ``Curriculum`` at the current budget progress,
2. picks a template among those holding at most ``max_template_share`` of the last ``window``
   prompts of the capability (the template-share cap),
3. fills it with control factors steered towards the tier (a *hint* in the tier's third of
   [0, 1]) and keeps the fill when its measured difficulty falls in the tier (bounded retries),
4. rejects prompts whose normalised hash is in the leakage set (evaluation prompts) and redraws,
5. given a length test (``fits``), rejects fills that fail it, falls back to the template's
   shortest fills (hint 0) and then to the capability's other templates, so a run whose
   ``max_length`` cuts most long prompts still trains the capability it chose, on the longest
   prompts it can hold; None when no template of the capability can fit.

Everything depends only on the ``rng`` passed in and the library's own state (recent template
names, counters), which ``state_dict``/``load_state_dict`` save and restore, so a resumed run
draws the same prompts. Pure Python: no torch, no Lightning.
"""

from __future__ import annotations

import json
import math
import os
import random
import warnings
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, check_capabilities
from read_lightning.prompts import banks  # noqa: F401  (registers the built-in templates)
from read_lightning.prompts.curriculum import TIERS, Curriculum
from read_lightning.prompts.leakage import load_hash_set, prompt_hash
from read_lightning.prompts.slots import _BUILTIN, Template
from read_lightning.prompts.user_templates import load_templates
from read_lightning.prompts.verifiers import _with_given, verify_answer
from read_lightning.teachers.generation import Prompt

__all__ = ["TemplateLibrary"]


# --------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------


class TemplateLibrary:
    """Capability prompt templates with difficulty tiers, a curriculum and a template-share cap.

    Args:
        capabilities: capabilities to serve; default every built-in one plus those defined in
            ``extra``. Unknown names raise ``ValueError`` listing the known ones.
        extra: a YAML/JSONL file (or a list of files) of user templates; they may define new
            capabilities or add templates to built-in ones.
        max_template_share: no template may hold more than this share of the last ``window``
            prompts of its capability.
        window: size of the per-capability window of recent template names.
        curriculum: tier probabilities by progress (``Curriculum``, a mapping, or None for the
            method's defaults).
        leakage_hashes: hashes of evaluation prompts (a set, or a file from
            ``read-train leakage``); such prompts are never returned.
        seed: seeds the calibration pool that normalises difficulty (not the sampling: that
            uses the ``rng`` passed to ``sample``).
        calibration_per_template: fills per template in the calibration pool.
        max_tier_tries: fills tried per prompt to land in the requested tier.
    """

    def __init__(
        self,
        capabilities: Sequence[str] | None = None,
        extra: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        max_template_share: float = 0.25,
        window: int = 128,
        curriculum: Curriculum | Mapping[str, Any] | None = None,
        leakage_hashes: str | os.PathLike[str] | set[str] | frozenset[str] | None = None,
        seed: int = 0,
        calibration_per_template: int = 48,
        max_tier_tries: int = 8,
        max_leak_tries: int = 64,
    ) -> None:
        if not 0.0 < max_template_share <= 1.0:
            raise ValueError(f"max_template_share must be in (0, 1], got {max_template_share!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        if calibration_per_template < 3:
            raise ValueError(f"calibration_per_template must be >= 3, got {calibration_per_template!r}")
        if max_tier_tries < 1 or max_leak_tries < 1:
            raise ValueError("max_tier_tries and max_leak_tries must be >= 1")
        self.max_template_share = float(max_template_share)
        self.window = int(window)
        self.curriculum = Curriculum.from_config(curriculum)
        self.seed = int(seed)
        self.max_tier_tries = int(max_tier_tries)
        self.max_leak_tries = int(max_leak_tries)
        # Below this many uses in the window a template stays eligible.
        self._cap_count = max(1, math.floor(self.max_template_share * self.window + 1e-9))

        pool = list(_BUILTIN)
        paths = [] if extra is None else [extra] if isinstance(extra, (str, os.PathLike)) else list(extra)
        names = {t.name for t in pool}
        for p in paths:
            for t in load_templates(p):
                if t.name in names:
                    raise ValueError(f"{p}: template name {t.name!r} clashes with an existing template")
                names.add(t.name)
                pool.append(t)
        known = list(DEFAULT_CAPABILITIES) + sorted({t.capability for t in pool} - set(DEFAULT_CAPABILITIES))
        if capabilities is None:
            capabilities = known
        check_capabilities(list(capabilities), known)
        self._templates: dict[str, list[Template]] = {c: [t for t in pool if t.capability == c] for c in capabilities}
        self._by_name = {t.name: t for ts in self._templates.values() for t in ts}
        for cap, ts in self._templates.items():
            if len(ts) * self.max_template_share < 1.0:
                warnings.warn(
                    f"capability {cap!r} has {len(ts)} template(s): with max_template_share="
                    f"{self.max_template_share} the share cap cannot always hold; the least used "
                    "template is drawn when none is eligible",
                    stacklevel=2,
                )

        if leakage_hashes is None:
            self._leak: frozenset[str] = frozenset()
        elif isinstance(leakage_hashes, (set, frozenset)):
            self._leak = frozenset(leakage_hashes)
        else:
            self._leak = frozenset(load_hash_set(leakage_hashes))

        self._calibrate(calibration_per_template)
        self._recent: dict[str, deque[str]] = {c: deque(maxlen=self.window) for c in self._templates}
        self.stats: dict[str, Any] = self._fresh_stats()

    @classmethod
    def default(cls) -> "TemplateLibrary":
        """The built-in library with the method's defaults."""
        return cls()

    # -- introspection ------------------------------------------------------------------------

    @property
    def capabilities(self) -> list[str]:
        return list(self._templates)

    def templates(self, capability: str) -> list[Template]:
        self._check(capability)
        return list(self._templates[capability])

    def _check(self, capability: str) -> None:
        if capability not in self._templates:
            raise ValueError(f"unknown capability {capability!r}; known capabilities are {self.capabilities!r}")

    # -- difficulty ---------------------------------------------------------------------------

    def _calibrate(self, per_template: int) -> None:
        """Draw a seeded pool; per template and factor keep the (min, max) used to rescale factors
        to [0, 1]; per capability keep the tertiles of the pool's scores.

        Factors are rescaled per template (not per capability) so that every template spans the
        three tiers: the curriculum can then ask any template for a hard prompt, and the share
        cap never has to fight the tier choice.
        """
        rng = random.Random(f"calibration:{self.seed}")
        self._ranges: dict[str, dict[str, tuple[float, float]]] = {}
        self._cuts: dict[str, tuple[float, float]] = {}
        for cap, templates in self._templates.items():
            if not templates:
                raise ValueError(f"capability {cap!r} has no templates")
            drawn: list[tuple[Template, dict[str, float]]] = []
            for t in templates:
                factors = [t.fill(rng, rng.random())[2] for _ in range(per_template)]
                keys = sorted({k for f in factors for k in f})
                self._ranges[t.name] = {
                    k: (min(f.get(k, 0.0) for f in factors), max(f.get(k, 0.0) for f in factors)) for k in keys
                }
                drawn.extend((t, f) for f in factors)
            scores = sorted(self._score(t, f) for t, f in drawn)
            n = len(scores)
            self._cuts[cap] = (scores[n // 3], scores[(2 * n) // 3])

    def _score(self, template: Template, factors: Mapping[str, float]) -> float:
        """Mean of the template's control factors rescaled to [0, 1]; 0.5 when it has none."""
        ranges = self._ranges.get(template.name, {})
        parts = []
        for k, (lo, hi) in ranges.items():
            x = float(factors.get(k, lo))
            parts.append(0.5 if hi <= lo else min(1.0, max(0.0, (x - lo) / (hi - lo))))
        return sum(parts) / len(parts) if parts else 0.5

    def tier_of(self, capability: str, score: float) -> str:
        """The tier of a difficulty score: below the first tertile is easy, from the second hard."""
        q1, q2 = self._cuts[capability]
        if score < q1:
            return "easy"
        if score > q2 or (score == q2 and q2 > q1):
            return "hard"
        return "medium"

    # -- sampling -----------------------------------------------------------------------------

    def _fresh_stats(self) -> dict[str, Any]:
        return {
            "sampled": {c: 0 for c in self._templates},
            "tiers": {t: 0 for t in TIERS},
            "leakage_rejects": 0,
            "tier_misses": 0,
            "share_cap_fallbacks": 0,
            "length_fallbacks": 0,
            "unfit": 0,
        }

    def _pick_template(self, capability: str, rng: random.Random) -> Template:
        templates = self._templates[capability]
        counts = Counter(self._recent[capability])
        eligible = [t for t in templates if counts[t.name] < self._cap_count]
        if not eligible:
            # Too few templates for the cap: keep the mix as even as the pool allows.
            self.stats["share_cap_fallbacks"] += 1
            least = min(counts[t.name] for t in templates)
            eligible = [t for t in templates if counts[t.name] == least]
        return rng.choice(eligible)

    def _fill_tier(
        self, template: Template, tier: str, rng: random.Random, fits: Callable[[str], bool] | None = None
    ) -> Prompt | None:
        """Fill ``template`` with control factors steered into ``tier``; keep the first fill whose
        measured tier matches, else (after ``max_tier_tries``) the closest one, labelled honestly.

        With ``fits``, fills that fail it are discarded; when no fill of the tier fits, the
        template's shortest fills (hint 0) are tried, and None is returned when none of those fit.
        """
        lo = TIERS.index(tier) / 3.0
        best = None
        tries = self.max_tier_tries * (1 if fits is None else 2)
        for i in range(tries):
            shortest = i >= self.max_tier_tries  # the tier's fills all failed ``fits``
            if shortest and best is not None:
                break
            text, check, factors = template.fill(rng, 0.0 if shortest else rng.uniform(lo, lo + 1.0 / 3.0))
            if fits is not None and not fits(text):
                continue
            if shortest:
                self.stats["length_fallbacks"] += 1
            score = self._score(template, factors)
            got = self.tier_of(template.capability, score)
            distance = abs(TIERS.index(got) - TIERS.index(tier))
            if best is None or distance < best[0]:
                best = (distance, got, score, text, check, factors)
            if distance == 0:
                break
        if best is None:
            return None
        distance, got, score, text, check, factors = best
        if distance:
            self.stats["tier_misses"] += 1
        meta: dict[str, Any] = {"difficulty_score": round(score, 6), "factors": factors}
        if check is not None:
            meta["check"] = _with_given(check, text)
        return Prompt(text=text, capability=template.capability, template=template.name, difficulty=got, meta=meta)

    def sample(
        self, capability: str, rng: random.Random, progress: float, fits: Callable[[str], bool] | None = None
    ) -> Prompt | None:
        """One prompt for ``capability`` at budget ``progress`` in [0, 1] (``PromptSource``).

        ``fits(text)`` is an optional length test (the data module's ``max_length``): only
        prompts passing it are returned, None when no template of the capability yields one.
        Deterministic given ``rng``'s state and the library's state (``state_dict``).
        """
        self._check(capability)
        progress = float(progress)
        if not math.isfinite(progress):
            raise ValueError(f"progress must be a finite number in [0, 1], got {progress!r}")
        progress = min(1.0, max(0.0, progress))
        tier = self.curriculum.tier(progress, rng)
        for _ in range(self.max_leak_tries):
            template = self._pick_template(capability, rng)
            prompt = self._fill_tier(template, tier, rng, fits)
            if prompt is None:
                # This template cannot be made short enough: try the others, shortest fills included.
                others = [t for t in self._templates[capability] if t.name != template.name]
                rng.shuffle(others)
                prompt = next((p for p in (self._fill_tier(t, tier, rng, fits) for t in others) if p is not None), None)
                if prompt is None:
                    self.stats["unfit"] += 1
                    return None
            if self._leak and prompt_hash(prompt.text) in self._leak:
                self.stats["leakage_rejects"] += 1
                continue
            self._recent[capability].append(prompt.template)
            self.stats["sampled"][capability] += 1
            self.stats["tiers"][prompt.difficulty] += 1
            return prompt
        raise RuntimeError(
            f"{self.max_leak_tries} prompts in a row for {capability!r} were in the leakage hash set; "
            "the evaluation data overlaps the templates too much to sample safely"
        )

    def verify(self, prompt: Prompt, answer: str) -> bool | None:
        """Whether ``answer`` is correct for ``prompt``; None when the template has no verifier."""
        check = (prompt.meta or {}).get("check")
        return None if check is None else verify_answer(check, answer)

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Recent template names per capability and counters (JSON-serialisable)."""
        return {
            "recent": {c: list(d) for c, d in self._recent.items()},
            "stats": json.loads(json.dumps(self.stats)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        recent = state.get("recent", {})
        check_capabilities(list(recent), self.capabilities, what="capability in the template state")
        for cap, names in recent.items():
            unknown = sorted(set(names) - {t.name for t in self._templates[cap]})
            if unknown:
                raise ValueError(f"template state names unknown templates {unknown!r} for capability {cap!r}")
            self._recent[cap] = deque(names, maxlen=self.window)
        stats = self._fresh_stats()
        for key, value in state.get("stats", {}).items():
            stats[key] = dict(value) if isinstance(value, Mapping) else value
        self.stats = stats

    # -- diagnostics --------------------------------------------------------------------------

    def distinct_ratio(self, capability: str, n: int = 10_000, seed: int = 0) -> float:
        """Share of distinct texts among ``n`` prompts drawn across progress 0..1.

        Runs on a copy of the library state, so the live sampling state is left untouched.
        """
        self._check(capability)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        saved = self.state_dict()
        try:
            rng = random.Random(seed)
            texts = {self.sample(capability, rng, i / max(1, n - 1)).text for i in range(n)}
        finally:
            self.load_state_dict(saved)
        return len(texts) / n
