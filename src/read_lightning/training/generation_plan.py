"""Which prompts an interval asks the teacher, in how many calls: the generation planner.

The planner draws prompts (from the mixture's capabilities and the task pool), sizes each
teacher call by the prompts' expected and worst-case costs, asks the teacher and turns its
answers into rows. It owns the state that drawing and sizing depend on: the prompt RNG, the
teacher's call counter, the prompt source's and task pool's states, the count of prompts too
long to train on, and the per-label answer statistics. That state is one JSON-serialisable
mapping (:meth:`GenerationPlanner.state_dict`), written after each interval and checkpointed,
so a resumed run draws the same prompts and answers.

It charges nothing: the data module charges the rows it returns, and the plan keeps their
cost within what it is given.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable
from typing import Any

from read_lightning.core import progress as phases
from read_lightning.core.checks import check_number
from read_lightning.prompts.task_pool import TASK_LABEL, TaskPromptPool
from read_lightning.prompts.teacher_prompts import wrap_prompt
from read_lightning.teachers.generation import Prompt, PromptSource, Teacher, chat_prompt_ids
from read_lightning.training.batches import Example, attach_teacher_states, encode_example

__all__ = ["GenerationPlanner"]

log = logging.getLogger(__name__)


class GenerationPlanner:
    """Draws an interval's prompts and sizes its teacher calls.

    Args:
        max_length: longest training sequence; a prompt that leaves no room for an answer in it
            is never asked.
        max_new_tokens: teacher answer length limit (the worst case of an answer).
        task_share: the share of prompts drawn from the task pool, when there is one.
        teacher_prompt: the wrapper of what the teacher is asked (``teacher_prompts.wrap_prompt``).
        drop_unverified: mark rows a verifier calls wrong as not to be trained on.
        seed: seeds the prompt RNG.
        build_prompt_source: makes the prompt source when a state to restore names one before
            it was attached.
        load_task_pool: the task pool, read on first use (None without task prompts).

    ``teacher``, ``tokenizer`` and ``prompt_source`` are attached by the data module.
    """

    # A prompt must leave room for at least this many answer tokens to be worth a teacher call.
    MIN_ANSWER_TOKENS = 8
    MAX_DRAWS = 16

    def __init__(
        self,
        *,
        max_length: int,
        max_new_tokens: int,
        task_share: float,
        teacher_prompt: str | None,
        drop_unverified: bool,
        seed: int,
        build_prompt_source: Callable[[], PromptSource],
        load_task_pool: Callable[[], TaskPromptPool | None],
    ) -> None:
        self.max_length, self.max_new_tokens = max_length, max_new_tokens
        self.task_share, self.teacher_prompt, self.drop_unverified = task_share, teacher_prompt, drop_unverified
        self._build_prompt_source, self._load_task_pool = build_prompt_source, load_task_pool
        self.rng = random.Random(seed)
        self.teacher: Teacher | None = None
        self.tokenizer: Any = None
        self.prompt_source: PromptSource | None = None
        self.task_pool: TaskPromptPool | None = None
        self.too_long_prompts = 0  # prompts redrawn because they could not fit max_length
        # The teacher's call counter (its sampling seed), carried here so a restored value reaches
        # a teacher that is built after the state is loaded.
        self.teacher_calls: int | None = None
        # Answer tokens the teacher gave so far per label: (sum, count), for expected_cost.
        self.answer_tokens: dict[str, tuple[int, int]] = {}
        self._unfit: set[str] = set()  # capabilities of this interval with no prompt that fits
        self._prompt_ids: dict[str, list[int]] = {}  # chat-format ids of the interval's prompts
        self._interval, self._mixture = 0, {}  # the interval being planned, for its warnings

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything prompt sampling and teacher sampling depend on (JSON-serialisable)."""
        version, internal, gauss = self.rng.getstate()
        calls = getattr(self.teacher, "calls", self.teacher_calls)
        state: dict[str, Any] = {
            "rng": [version, list(internal), gauss],
            "teacher_calls": calls,
            "too_long_prompts": self.too_long_prompts,
        }
        source_state = getattr(self.prompt_source, "state_dict", None)
        if callable(source_state):
            state["prompt_source"] = source_state()
        if self.task_pool is not None:
            state["task_prompts"] = self.task_pool.state_dict()
        state["answer_tokens"] = {label: list(v) for label, v in sorted(self.answer_tokens.items())}
        return state

    def load_state_dict(self, state: Any, origin: str) -> None:
        """Restore :meth:`state_dict`; ``origin`` names the file or checkpoint in errors."""
        if not isinstance(state, dict):
            raise ValueError(f"{origin}: generation state must be a mapping, got {type(state).__name__}")
        rng = state.get("rng")
        try:
            version, internal, gauss = rng
            restored = random.Random()
            restored.setstate((version, tuple(internal), gauss))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}: field 'rng' is not a random.Random state ({err})") from None
        calls, too_long = state.get("teacher_calls"), state.get("too_long_prompts", 0)
        if calls is not None:  # None: the teacher keeps no call counter
            check_number(f"{origin}: field 'teacher_calls'", calls, low=0, integer=True)
        check_number(f"{origin}: field 'too_long_prompts'", too_long, low=0, integer=True)
        if "prompt_source" in state:
            if self.prompt_source is None:
                self.prompt_source = self._build_prompt_source()
            try:
                self.prompt_source.load_state_dict(state["prompt_source"])  # type: ignore[attr-defined]
            except (AttributeError, KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{origin}: field 'prompt_source' does not fit this run's prompts: {err}") from None
        if "task_prompts" in state:
            pool = self._load_task_pool()
            if pool is None:
                raise ValueError(f"{origin}: the run drew task prompts, but data.task_prompts is not set")
            try:
                pool.load_state_dict(state["task_prompts"])
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{origin}: field 'task_prompts' does not fit this run's task prompts: {err}") from None
        answer_tokens = state.get("answer_tokens", {})
        if not isinstance(answer_tokens, dict):
            raise ValueError(f"{origin}: field 'answer_tokens' must map labels to [tokens, answers], got {answer_tokens!r}")
        for label, pair in answer_tokens.items():
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"{origin}: field 'answer_tokens.{label}' must be [tokens, answers], got {pair!r}")
            for name, value in zip(("tokens", "answers"), pair):
                check_number(f"{origin}: field 'answer_tokens.{label}' {name}", value, low=0, integer=True)
        self.answer_tokens = {label: (int(a), int(b)) for label, (a, b) in answer_tokens.items()}
        self.rng = restored
        self.too_long_prompts = int(too_long)
        self.teacher_calls = calls
        if calls is not None and hasattr(self.teacher, "calls"):
            self.teacher.calls = calls

    # ----------------------------------------------------------------- one interval
    def generate_rows(
        self, *, interval: int, mixture: dict[str, float], share: int, budget: int, progress: float, last: bool
    ) -> tuple[list[dict[str, Any]], list[Example]]:
        """Ask the teacher until the interval's ``share`` is committed; returns the JSONL rows and
        the training examples of the rows marked ``used``, in row order (each prompt tokenised
        once for fitting, sizing and its example).

        ``share`` is a target and ``budget`` (what is left of the whole budget) the hard limit;
        ``progress`` is the fraction of the budget spent (the curriculum reads it) and ``last``
        says this is the run's last interval, which spends what is left.
        """
        assert self.teacher is not None and self.prompt_source is not None
        if self.teacher_calls is not None and hasattr(self.teacher, "calls"):
            self.teacher.calls = self.teacher_calls
        self._load_task_pool()
        self._interval, self._mixture = interval, mixture
        self._prompt_ids = {}  # fitting, sizing and encoding a prompt need its ids; no later interval does
        # The hard limit is what is left of the whole budget; the interval's share is a target
        # that the later intervals' shares correct (each is what is left over the intervals left).
        committed = 0
        rows: list[dict[str, Any]] = []
        examples: list[Example] = []
        caps, weights = list(mixture), list(mixture.values())
        self._unfit = set()
        verify = getattr(self.prompt_source, "verify", None)
        while True:
            # Each teacher call decodes as long as its longest answer, so an interval should take
            # one call. A call asks prompts while their expected costs (each prompt's own length
            # and its label's mean answer so far, see expected_cost) fit what is left of the
            # share, each prompt's worst case reserved against the whole budget. A prompt drawn
            # that no longer fits is dropped.
            prompts: list[Prompt] = []
            expected, reserved, unfit, estimated = 0, 0, False, True
            while True:
                prompt = self.draw_fitting(caps, weights, progress)
                if prompt is None:
                    unfit = True
                    break
                cost, guess = self.worst_case(prompt.text), self.expected_cost(prompt)
                if committed + reserved + cost > budget or committed + expected + guess > share:
                    break
                prompts.append(prompt)
                reserved, expected = reserved + cost, expected + guess
                estimated = estimated and prompt.capability in self.answer_tokens
            if not prompts:
                if unfit:
                    log.warning(
                        "interval %d: no prompt of the current mixture %s fits max_length=%d; ending the interval "
                        "early (raise data.max_length to train on them)", interval, mixture, self.max_length,
                    )
                break
            asked = [wrap_prompt(self.teacher_prompt, p.text) for p in prompts]
            answers = self.teacher.generate(asked, max_new_tokens=self.max_new_tokens)
            before = committed
            for i, (prompt, answer, text) in enumerate(zip(prompts, answers, asked)):
                gen_tokens = min(answer.num_tokens, self.max_new_tokens)
                committed += gen_tokens
                verified = verify(prompt, answer.text) if verify is not None else None
                example = encode_example(self.tokenizer, prompt.text, answer.text, prompt.capability, self.max_length,
                                         prompt_ids=self.prompt_ids(prompt.text))
                if example is not None:
                    attach_teacher_states(example, getattr(answer, "states", None))  # the teacher need not run on it again
                # A decoded answer can re-tokenise longer than it was generated: a row is trained
                # on only if the rest of this call's answers can still be paid for.
                rest = (len(prompts) - i - 1) * self.max_new_tokens
                keep = (example is not None and not (self.drop_unverified and verified is False)
                        and committed + len(example) + rest <= budget)
                if keep:
                    committed += len(example)
                    examples.append(example)
                total, n = self.answer_tokens.get(prompt.capability, (0, 0))
                self.answer_tokens[prompt.capability] = (total + gen_tokens, n + 1)
                rows.append(
                    {
                        "prompt": prompt.text,
                        "answer": answer.text,
                        "capability": prompt.capability,
                        "template": prompt.template,
                        "difficulty": prompt.difficulty,
                        "verified": verified,
                        "gen_tokens": gen_tokens,
                        "used": keep,
                        "meta": prompt.meta,
                    }
                )
                if self.teacher_prompt is not None:
                    rows[-1]["teacher_prompt"] = text
            if (shown := phases.current()) is not None:  # the phase the data module opened
                shown.advance(committed - before, tokens=sum(a.num_tokens for a in answers), info=f"{len(rows)} answers")
            if estimated and not last and committed > before:
                # A call sized by mean answers fills the share in expectation; what it misses or
                # overshoots moves the next intervals' shares (each is what is left over the
                # intervals left), so a second call for the rest would only decode another tail.
                # A call with worst-case guesses leaves the share's rest, and the last interval
                # spends what is left of the budget.
                break
            if committed == before:
                # Empty answers (0 tokens) that are all dropped cost nothing, so the loop would
                # never reach the interval's budget: end it rather than call the teacher forever.
                log.warning(
                    "interval %d: a teacher call of %d prompts produced no token and no training example; "
                    "ending the interval early (is the teacher returning empty answers?)", interval, len(prompts),
                )
                break
        self.teacher_calls = getattr(self.teacher, "calls", None)
        return rows, examples

    # ----------------------------------------------------------------- drawing
    def draw_fitting(self, caps: list[str], weights: list[float], progress: float) -> Prompt | None:
        """Draw a capability from the mixture, then a prompt of it that leaves room for an answer.

        A prompt that cannot fit ``max_length`` would be answered (and paid for) and then
        dropped, so it is never sent to the teacher. The prompt is sought within the capability
        drawn, so the mixture trained on is the mixture chosen: a source that takes ``fits``
        returns a fitting prompt (the template library falls back to its shortest fills); any
        other source is redrawn up to ``MAX_DRAWS`` times. A capability with no prompt that fits
        leaves this interval's draws with a warning naming it; None once no capability is left.
        """
        assert self.prompt_source is not None
        if self.task_pool is not None and TASK_LABEL not in self._unfit and self.rng.random() < self.task_share:
            prompt = self.task_pool.next(self.fits)
            if prompt is not None:
                return prompt
            self._unfit.add(TASK_LABEL)
            log.warning("interval %d: no task prompt fits max_length=%d; capability prompts take their share",
                        self._interval, self.max_length)
        while True:
            live = [i for i, c in enumerate(caps) if c not in self._unfit]
            if not live or not any(weights[i] > 0 for i in live):
                return None
            cap = self.rng.choices([caps[i] for i in live], [weights[i] for i in live])[0]
            prompt = self.sample_fitting(cap, progress)
            if prompt is not None:
                return prompt
            self._unfit.add(cap)
            log.warning(
                "interval %d: no %s prompt fits max_length=%d, so its mixture weight %.2f goes to the other "
                "capabilities for the rest of this interval (raise data.max_length to train on it)",
                self._interval, cap, self.max_length, self._mixture.get(cap, 0.0),
            )

    def sample_fitting(self, capability: str, progress: float) -> Prompt | None:
        assert self.prompt_source is not None
        if self._source_takes_fits:
            prompt = self.prompt_source.sample(capability, self.rng, progress, fits=self.fits)  # type: ignore[call-arg]
            if prompt is None:
                self.too_long_prompts += 1
            return prompt
        for _ in range(self.MAX_DRAWS):
            prompt = self.prompt_source.sample(capability, self.rng, progress)
            if self.fits(prompt.text):
                return prompt
            self.too_long_prompts += 1
        return None

    @property
    def _source_takes_fits(self) -> bool:
        try:
            return "fits" in inspect.signature(self.prompt_source.sample).parameters  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return False

    # ----------------------------------------------------------------- sizing
    def prompt_ids(self, text: str) -> list[int]:
        """``text`` as a chat turn's token ids, kept for this interval's prompts: fitting a prompt,
        sizing a teacher call and encoding the training example all need them."""
        if text not in self._prompt_ids:
            self._prompt_ids[text] = chat_prompt_ids(self.tokenizer, text)
        return self._prompt_ids[text]

    def prompt_length(self, text: str) -> int:
        """Tokens of ``text`` as a chat turn."""
        return len(self.prompt_ids(text))

    def expected_cost(self, prompt: Prompt) -> int:
        """What a prompt is expected to cost: its label's mean answer so far (``max_new_tokens``
        before any answer of that label, so then its worst case), then its training row."""
        total, n = self.answer_tokens.get(prompt.capability, (0, 0))
        answer = round(total / n) if n else self.max_new_tokens
        return answer + min(self.max_length, self.prompt_length(prompt.text) + answer + 1)

    def fits(self, text: str) -> bool:
        return self.prompt_length(text) + self.MIN_ANSWER_TOKENS <= self.max_length

    def worst_case(self, text: str) -> int:
        """The most a prompt can cost: a full-length answer, then its training row (the prompt,
        that answer and the end-of-turn token, at most ``max_length``)."""
        return self.max_new_tokens + min(self.max_length, self.prompt_length(text) + self.max_new_tokens + 1)
