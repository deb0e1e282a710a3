"""benchmarks/prompt_lookup.py: the draft it proposes and the decode it replays."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("prompt_lookup.py")


def test_a_draft_copies_what_followed_the_latest_match_of_the_longest_tail(bench):
    # the tail (7, 8) occurred at 1-2 and at 5-6: the latest match wins, 3-gram first
    assert bench.propose([1, 7, 8, 2, 3, 7, 8, 4, 5, 7, 8], 2) == [4, 5]
    assert bench.propose([9, 1, 2, 9], 3) == [1, 2, 9]  # 1-gram (9) when no longer tail recurs
    assert bench.propose([1, 2, 3], 2) == []


def test_a_replay_keeps_the_draft_up_to_the_first_mismatch_and_charges_every_drafted_token(bench):
    flat = [10.0, 10.0, 10.0, 10.0, 10.0]  # every step costs 10 ms, whatever it holds
    prompt, answer = [5, 6, 5, 6], [5, 6, 5, 6, 5, 6]
    plain = bench.replay([[(prompt, answer)]], 0, None, flat)
    assert plain == {"tokens_per_row_step": 1.0, "decode_seconds": 0.1}  # 6 steps (rounded to 0.1 s)
    drafted = bench.replay([[(prompt, answer)]], 4, None, flat)
    assert drafted["tokens_per_row_step"] == 3.0  # 1 + 4 drafted and kept, then the last one
    # a step's cost follows the tokens in it: interpolated, and linear past the last point
    steep = [10.0, 40.0, 160.0, 320.0, 640.0]
    assert bench.step_cost(3, steep) == 30.0 and bench.step_cost(96, steep) == 640.0 + 32 * 10.0
    # a budget of tokens per step within which rows draft: 1 row, budget 2 -> drafts of 1
    assert bench.replay([[(prompt, answer)]], 4, 2, flat)["tokens_per_row_step"] == 2.0
