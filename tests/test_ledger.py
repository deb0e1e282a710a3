import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from read_lightning.ledger import BudgetExceeded, TokenLedger


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
