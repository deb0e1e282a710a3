"""HFTeacher's decode loop on a tiny Llama: the same greedy answers as ``model.generate``, refilled
rows, per-prompt seeds that survive a resume, end-of-turn accounting, and the top-p nucleus."""

from __future__ import annotations

import pytest
import torch

from read_lightning.teachers.decoding import (
    MIN_SHARED_PREFIX,
    NUCLEUS_PROBE,
    PAD_SLACK,
    _length_groups,
    _shared_prefix,
    decode,
    sample_next,
    supports_decode_loop,
)
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids, prompt_seeds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Lengths from a few tokens to a few dozen, so rows are padded against each other in the cache.
PROMPTS = [
    "What is 12 plus 7?",
    "Write a Python function that reverses a list and explain why it works in one sentence.",
    "Capital of France?",
    "Translate good morning into French, Spanish and German, one per line, nothing else.",
    "Hi",
    "Summarise: the cat sat on the mat while the dog slept by the fire all afternoon long.",
    "2+2",
]


@pytest.fixture()
def lively_model(tiny_tokenizer):
    """The tiny Llama with larger weights: its greedy answers vary token by token (the default
    initialisation repeats one token), so a wrong cache row or position changes them."""
    from conftest import build_tiny_model

    model = build_tiny_model(tiny_tokenizer)
    torch.manual_seed(0)
    for p in model.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.3)
    return model


def _teacher(model, tokenizer, **kw):
    kw.setdefault("max_new_tokens", 12)
    kw.setdefault("temperature", 0.0)
    return HFTeacher(model, tokenizer, **kw)


def test_the_loop_is_chosen_for_a_transformers_model_and_generate_for_others(tiny_model, tiny_tokenizer):
    assert supports_decode_loop(tiny_model)
    assert _teacher(tiny_model, tiny_tokenizer).engine == "loop"

    class NotHF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    assert _teacher(NotHF(), tiny_tokenizer).engine == "generate"
    with pytest.raises(ValueError, match="engine 'loop' needs a transformers"):
        _teacher(NotHF(), tiny_tokenizer, engine="loop")
    with pytest.raises(ValueError, match="unknown HFTeacher engine 'fast'"):
        _teacher(tiny_model, tiny_tokenizer, engine="fast")
    with pytest.raises(ValueError, match="top_p must be in"):
        _teacher(tiny_model, tiny_tokenizer, top_p=0.0)


@pytest.mark.parametrize("preamble", ["", "You are a careful assistant; answer in one line. "])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_greedy_loop_answers_equal_model_generate(lively_model, tiny_tokenizer, batch_size, preamble):
    # batch 3 over 7 prompts refills finished rows with waiting prompts mid-decode; a preamble
    # all prompts share is prefilled once and reused (as the chat template's system turn is)
    prompts = [preamble + p for p in PROMPTS]
    if preamble:
        assert _shared_prefix([tiny_tokenizer(p)["input_ids"] for p in prompts]) >= MIN_SHARED_PREFIX
    reference = _teacher(lively_model, tiny_tokenizer, engine="generate", batch_size=16).generate(prompts)
    loop = _teacher(lively_model, tiny_tokenizer, engine="loop", batch_size=batch_size).generate(prompts)
    assert len({g.text for g in reference}) == len(PROMPTS)
    assert [(g.text, g.num_tokens, g.finished) for g in loop] == [
        (g.text, g.num_tokens, g.finished) for g in reference]


def test_an_answer_ends_at_its_first_end_of_turn_token_which_is_counted(lively_model, tiny_tokenizer):
    tiny_model = lively_model
    free = decode(tiny_model, [chat_prompt_ids(tiny_tokenizer, PROMPTS[0])], max_new_tokens=8,
                  eos_ids=set(), batch_size=4)[0]
    assert len(free) == 8  # no end-of-turn: cut at max_new_tokens
    # Make a token the model says after its first an end-of-turn token: the answer ends there.
    stop = next(t for t in free[2:] if t not in free[:2])
    cut = free.index(stop) + 1
    assert cut >= 3
    # the loop itself stops the row there (no decoding past the end of an answer)
    assert decode(tiny_model, [chat_prompt_ids(tiny_tokenizer, PROMPTS[0])], max_new_tokens=8,
                  eos_ids={stop}, batch_size=4)[0] == free[:cut]
    tiny_model.generation_config.eos_token_id = [tiny_tokenizer.eos_token_id, stop]
    for engine in ("loop", "generate"):
        teacher = _teacher(tiny_model, tiny_tokenizer, engine=engine, max_new_tokens=8)
        gen = teacher.generate([PROMPTS[0], PROMPTS[0]])[1]
        assert (gen.num_tokens, gen.finished) == (cut, True), engine
        gen = teacher.generate([PROMPTS[0]], max_new_tokens=cut - 1)[0]
        assert (gen.num_tokens, gen.finished) == (cut - 1, False), engine


def test_sampled_answers_do_not_depend_on_the_batch_and_survive_a_resume(lively_model, tiny_tokenizer):
    tiny_model = lively_model
    kw = dict(temperature=1.0, top_p=0.9, seed=5, max_new_tokens=10)
    alone = _teacher(tiny_model, tiny_tokenizer, batch_size=1, **kw)
    batched = _teacher(tiny_model, tiny_tokenizer, batch_size=4, **kw)
    first = [g.text for g in batched.generate(PROMPTS)]
    assert first == [g.text for g in alone.generate(PROMPTS)]
    second = [g.text for g in batched.generate(PROMPTS)]
    assert second != first  # the call counter moves the seeds on
    resumed = _teacher(tiny_model, tiny_tokenizer, batch_size=2, **kw)
    resumed.calls = 1  # what the data module restores from its generation state
    assert [g.text for g in resumed.generate(PROMPTS)] == second
    # each prompt draws from its own seed: the same prompt twice in one call gets two answers
    twice = [g.text for g in _teacher(tiny_model, tiny_tokenizer, **kw).generate([PROMPTS[1]] * 4)]
    assert len(set(twice)) > 1
    other_seed = _teacher(tiny_model, tiny_tokenizer, **{**kw, "seed": 6}).generate(PROMPTS)
    assert [g.text for g in other_seed] != first


def test_sampling_leaves_the_global_rng_alone(tiny_model, tiny_tokenizer):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _teacher(tiny_model, tiny_tokenizer, temperature=1.0, seed=1).generate(PROMPTS[:3])
    assert torch.equal(torch.rand(3), expected)


def test_the_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    assert _shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 6]]) == 3
    assert _shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert _shared_prefix([[1, 2], [3, 2]]) == 0 and _shared_prefix([[1, 2, 3]]) == 0


def test_prefill_groups_cover_every_prompt_once_and_pad_little():
    prompts = [[0] * n for n in (40, 9, 10, 11, 3, 12, 38, 100)]
    groups = _length_groups(list(range(len(prompts))), prompts, shared=2)
    assert sorted(i for g in groups for i in g) == list(range(len(prompts)))
    assert len(groups) < len(prompts)  # similar lengths share a forward
    for g in groups:
        tails = [len(prompts[i]) - 2 for i in g]
        assert max(tails) * len(tails) <= (1 + PAD_SLACK) * sum(tails)


def test_prompt_seeds_depend_on_seed_call_and_index_only():
    assert prompt_seeds(3, 2, 4) == prompt_seeds(3, 2, 6)[:4]
    assert len(set(prompt_seeds(3, 2, 4) + prompt_seeds(3, 3, 4) + prompt_seeds(4, 2, 4))) == 12


def _nucleus(logits: torch.Tensor, temperature: float, top_p: float) -> set[int]:
    probs = torch.softmax(logits / temperature, -1)
    p, ids = probs.sort(descending=True)
    before = p.cumsum(0) - p
    return set(ids[before < top_p].tolist())


@pytest.mark.parametrize("spread", [0.5, 8.0])  # a nucleus of a few tokens, and one far past the probe
def test_top_p_samples_only_and_all_of_the_nucleus(spread):
    torch.manual_seed(0)
    logits = torch.randn(2, 1000) / spread
    nucleus = [_nucleus(row, 0.7, 0.9) for row in logits]
    assert (max(map(len, nucleus)) > NUCLEUS_PROBE) == (spread > 1)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    seen: list[set[int]] = [set(), set()]
    for _ in range(400):
        for row, tok in enumerate(sample_next(logits, 0.7, 0.9, gens).tolist()):
            seen[row].add(tok)
    for row in range(2):
        assert seen[row] <= nucleus[row]
        if len(nucleus[row]) <= 8:
            assert seen[row] == nucleus[row]
        if len(nucleus[row]) > NUCLEUS_PROBE:  # drawn past the probed top-k, from the full sort
            assert seen[row] - set(logits[row].topk(NUCLEUS_PROBE).indices.tolist())


def test_greedy_is_argmax_and_sampling_needs_seeds(tiny_model, tiny_tokenizer):
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    assert sample_next(logits, 0.0, 1.0, None).tolist() == [1, 0]
    with pytest.raises(ValueError, match="one seed per prompt, got None for 2 prompts"):
        decode(tiny_model, [[1, 2], [3]], max_new_tokens=2, eos_ids=set(), batch_size=2, temperature=1.0)


@pytest.mark.parametrize("engine", ["loop", "generate"])
def test_both_engines_move_the_open_progress_phase_per_answer(lively_model, tiny_tokenizer, engine):
    # The bar of a teacher call (references, answers) moves as answers finish, not at the end only.
    from read_lightning.core import progress

    teacher = _teacher(lively_model, tiny_tokenizer, batch_size=2, max_new_tokens=6, temperature=0.0, engine=engine)
    with progress.phase("references", total=10, heartbeat_s=60) as bar:
        gens = teacher.generate([f"Question {i}?" for i in range(5)])
        assert bar.done == 5 and bar.tokens == sum(g.num_tokens for g in gens)


@pytest.mark.parametrize("preamble", ["", "You are a careful assistant; answer in one line. "])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_kept_states_are_the_full_forwards_and_leave_the_answers_alone(lively_model, tiny_tokenizer, batch_size,
                                                                     preamble):
    # Every row's states, whether it ended at an end-of-turn token or was cut (fed once more),
    # prefilled after a shared prefix or alone, refilled mid-decode, equal a plain forward over
    # its prompt and answer at every position the answer's tokens were predicted from.
    prompts = [chat_prompt_ids(tiny_tokenizer, preamble + p) for p in PROMPTS]
    plain = decode(lively_model, prompts, max_new_tokens=9, eos_ids=set(), batch_size=batch_size)
    stop = plain[0][3]  # a token some answers say: they end there, others are cut at 9
    plain = decode(lively_model, prompts, max_new_tokens=9, eos_ids={stop}, batch_size=batch_size)
    ids, states = decode(lively_model, prompts, max_new_tokens=9, eos_ids={stop}, batch_size=batch_size,
                         keep_states=True)
    assert ids == plain
    assert {row[-1] == stop for row in ids} == {True, False}
    for prompt, row, hidden in zip(prompts, ids, states):
        full = prompt + row
        n = len(full) - (1 if row[-1] == stop else 0)  # a cut row's last token's state too
        assert hidden.shape == (n, lively_model.config.hidden_size)
        with torch.no_grad():
            expected = lively_model.model(input_ids=torch.tensor([full])).last_hidden_state[0, :n]
        torch.testing.assert_close(hidden, expected, atol=1e-4, rtol=1e-4)
    # the hook is gone: a later forward keeps nothing
    assert not lively_model.get_decoder()._forward_hooks
