from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data import POOLS, consume_interval, make_dm

from read_lightning.core.jsonl import read_jsonl
from read_lightning.core.ledger import BudgetExceeded, TokenLedger


def test_charges_are_split_by_kind_and_capability():
    ledger = TokenLedger(100)
    ledger.charge_generation("math", 10)
    ledger.charge_training("math", 30)
    ledger.charge_training("code", 5)
    assert ledger.spent == 45 and ledger.remaining == 55
    assert ledger.by_capability() == {
        "code": {"generation": 0, "training": 5},
        "math": {"generation": 10, "training": 30},
    }


def test_overdraw_is_refused_and_leaves_ledger_unchanged():
    ledger = TokenLedger(50)
    ledger.charge_generation("math", 40)
    with pytest.raises(BudgetExceeded, match="11 training tokens for 'code'.*10 of 50 left"):
        ledger.charge_training("code", 11)
    assert ledger.spent == 40


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_budget_must_be_positive_integer(bad):
    with pytest.raises(ValueError, match="budget_tokens"):
        TokenLedger(bad)


def test_state_round_trip_and_budget_mismatch():
    a = TokenLedger(1000)
    a.charge_generation("math", 7)
    a.charge_training("reasoning", 9)
    b = TokenLedger(1000)
    b.load_state_dict(a.state_dict())
    assert b.summary() == a.summary()
    with pytest.raises(ValueError, match="budget 1000"):
        TokenLedger(999).load_state_dict(a.state_dict())


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(1, 5000),
    charges=st.lists(st.tuples(st.booleans(), st.integers(0, 800)), max_size=60),
)
def test_no_sequence_of_charges_spends_more_than_budget(budget, charges):
    ledger = TokenLedger(budget)
    for is_generation, tokens in charges:
        charge = ledger.charge_generation if is_generation else ledger.charge_training
        try:
            charge("c", tokens)
        except BudgetExceeded:
            pass
        assert 0 <= ledger.spent <= budget


class ScriptedTeacher:
    """Answers with the next length from a script (cycled), including over-long answers that the
    data module must clip to max_new_tokens."""

    def __init__(self, lengths):
        self.lengths, self.i = lengths, 0

    def generate(self, prompts, *, max_new_tokens=None):
        from read_lightning.teachers.generation import Generation

        out = []
        for p in prompts:
            n = self.lengths[self.i % len(self.lengths)]
            self.i += 1
            out.append(Generation(text="y" * (n % 23), num_tokens=n))
        return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    budget=st.integers(300, 8000),
    intervals=st.integers(1, 6),
    batch_tokens=st.integers(64, 600),
    max_new_tokens=st.integers(1, 40),
    gen_batch=st.integers(1, 9),
    lengths=st.lists(st.integers(0, 80), min_size=1, max_size=20),
    mixtures=st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3).filter(lambda w: sum(w) > 0.01), min_size=1, max_size=6),
    resume_at=st.integers(0, 6),
)
def test_no_plan_of_intervals_spends_more_than_budget(
    tiny_tokenizer, tmp_path_factory, budget, intervals, batch_tokens, max_new_tokens, gen_batch, lengths, mixtures, resume_at
):
    """The data module's whole plan, interval after interval with the mixture changing between
    them and a resume from a checkpoint somewhere in the middle, never asks the ledger for more
    than B: the ledger never has to refuse a charge, and what it records is exactly what was
    generated plus what was trained."""
    run_dir = str(tmp_path_factory.mktemp("plan"))
    kw = dict(budget_tokens=budget, num_intervals=intervals, max_tokens_per_batch=batch_tokens, max_length=64,
              max_new_tokens=max_new_tokens, generation_batch_size=gen_batch, run_dir=run_dir)
    try:
        dm = make_dm(tiny_tokenizer, ScriptedTeacher(lengths), **kw)
    except ValueError as err:
        assert "too small for one training step" in str(err)
        return
    trained = 0
    for epoch in range(intervals):
        if epoch == resume_at:  # a new process resumes from the checkpoint of the last interval
            state = dm.state_dict()
            dm = make_dm(tiny_tokenizer, ScriptedTeacher(lengths), **kw)
            dm.load_state_dict(state)
        w = mixtures[epoch % len(mixtures)]
        dm.set_mixture_weights({c: x / sum(w) for c, x in zip(POOLS, w)})
        batches = consume_interval(dm, epoch)  # raises BudgetExceeded if the plan overdrew
        trained += sum(n for b in batches for n in b["capability_tokens"].values())
        assert dm.ledger.spent <= budget
    generated = sum(r["gen_tokens"] for p in sorted((Path(run_dir) / "generated").iterdir()) for r in read_jsonl(p))
    assert dm.ledger.summary()["generation"] == generated
    assert dm.ledger.summary()["training"] == trained
    assert dm.ledger.spent <= budget


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"budget": 100, "generation": {"math": -1}, "training": {}}, "'math' -> -1 is not a non-negative"),
        ({"budget": 100, "generation": {"math": 1.5}, "training": {}}, "'math' -> 1.5"),
        ({"budget": 100, "generation": [], "training": {}}, "field 'generation' must map"),
        ({"budget": 100, "generation": {"math": 60}, "training": {"code": 41}}, "spends 101 tokens, more than its budget of 100"),
        ({"budget": 100, "training": {}}, "must be a mapping with budget, generation and training"),
    ],
)
def test_malformed_ledger_state_is_refused_and_leaves_the_ledger_unchanged(state, message):
    ledger = TokenLedger(100)
    ledger.charge_training("math", 5)
    with pytest.raises(ValueError, match=message):
        ledger.load_state_dict(state)
    assert ledger.spent == 5
