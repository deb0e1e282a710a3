import json
import logging
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from read_lightning.core.jsonl import read_jsonl
from read_lightning.teachers.generation import Generation, StaticPromptSource
from read_lightning.training.batches import IGNORE_INDEX, collate, encode_example, length_grouped_batches
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.generation_plan import GenerationPlanner

POOLS = {
    "math": ["What is 12 plus 7?", "Add 3 and 4 and 5."],
    "code": ["Write a Python function that returns the sum of a list."],
    "reasoning": ["If all cats are animals and Tom is a cat, is Tom an animal?"],
}


class CountingTeacher:
    """Answers with a fixed number of tokens per prompt and counts what it was asked."""

    def __init__(self, num_tokens=6):
        self.num_tokens = num_tokens
        self.prompts = []

    def generate(self, prompts, *, max_new_tokens=None):
        self.prompts.extend(prompts)
        n = self.num_tokens if max_new_tokens is None else min(self.num_tokens, max_new_tokens)
        return [Generation(text="The answer is " + "x" * (len(p) % 5), num_tokens=n) for p in prompts]


def make_dm(tok, teacher=None, **kw):
    args = dict(
        capabilities=list(POOLS),
        budget_tokens=3000,
        num_intervals=3,
        max_tokens_per_batch=256,
        max_length=64,
        max_new_tokens=16,
        generation_batch_size=4,
    )
    args.update(kw)
    dm = CapabilityDataModule(**args)
    return dm.attach(teacher=teacher or CountingTeacher(), tokenizer=tok, prompt_source=StaticPromptSource(POOLS))


def consume_interval(dm, epoch):
    """What the trainer does with one interval: build the loader and use every batch."""
    dm.interval = epoch
    batches = list(dm.train_dataloader())
    for b in batches:
        dm.on_before_batch_transfer(b, 0)
    return batches


def test_encode_masks_the_prompt_and_labels_the_answer(tiny_tokenizer):
    ex = encode_example(tiny_tokenizer, "What is 12 plus 7?", "19", "math", max_length=128)
    n_prompt = sum(1 for y in ex.labels if y == IGNORE_INDEX)
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    answer = ex.input_ids[n_prompt:]
    assert ex.labels[n_prompt:] == answer and answer[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(answer[:-1]) == "19"


def test_encode_truncates_answer_and_rejects_overlong_prompt(tiny_tokenizer):
    ex = encode_example(tiny_tokenizer, "Hi", "word " * 200, "math", max_length=40)
    assert len(ex) == 40
    assert encode_example(tiny_tokenizer, "long prompt " * 50, "ok", "math", max_length=40) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=80), st.integers(120, 600))
def test_length_groups_fit_and_cover_each_index_once(lengths, max_tokens):
    batches = length_grouped_batches(lengths, max_tokens, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= max_tokens


def test_length_grouping_pads_less_than_arrival_order():
    rng = random.Random(0)
    lengths = [rng.choice([10, 100]) for _ in range(64)]
    grouped = length_grouped_batches(lengths, 400, random.Random(0))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in grouped)
    arrival = sum(max(lengths[i : i + 4]) * len(lengths[i : i + 4]) for i in range(0, 64, 4))
    assert padded < 0.8 * arrival


def test_collate_counts_tokens_without_padding(tiny_tokenizer):
    a = encode_example(tiny_tokenizer, "Hi", "one", "math", 64)
    b = encode_example(tiny_tokenizer, "Hello there, how are you?", "two three", "code", 64)
    batch = collate([a, b], tiny_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, max(len(a), len(b)))
    assert batch["capability_tokens"] == {"math": len(a), "code": len(b)}
    assert int(batch["attention_mask"].sum()) == len(a) + len(b)


def test_intervals_spend_budget_without_exceeding_it(tiny_tokenizer, tmp_path):
    dm = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    for epoch in range(3):
        assert consume_interval(dm, epoch)
        assert dm.ledger.spent <= dm.ledger.budget
    assert dm.ledger.remaining < dm.example_worst_case * 3
    summary = dm.ledger.summary()
    assert summary["generation"] > 0 and summary["training"] > 0


def test_one_hot_mixture_only_draws_that_capability(tiny_tokenizer):
    teacher = CountingTeacher()
    dm = make_dm(tiny_tokenizer, teacher)
    dm.set_mixture_weights({"code": 1.0})
    consume_interval(dm, 0)
    assert set(dm.ledger.by_capability()) == {"code"}
    assert set(teacher.prompts) == set(POOLS["code"])


def test_mixture_validation_names_the_problem(tiny_tokenizer):
    dm = make_dm(tiny_tokenizer)
    with pytest.raises(ValueError, match="'poetry'"):
        dm.set_mixture_weights({"poetry": 1.0})
    with pytest.raises(ValueError, match="sums to 0.7"):
        dm.set_mixture_weights({"math": 0.5, "code": 0.2})
    with pytest.raises(ValueError, match="'math'.*>= 0"):
        dm.set_mixture_weights({"math": -0.5, "code": 1.5})


def test_budget_too_small_for_one_step_is_rejected():
    with pytest.raises(ValueError, match="budget_tokens=500 is too small for one training step"):
        CapabilityDataModule(budget_tokens=500, num_intervals=2, max_length=256, max_new_tokens=64)


def test_resume_reuses_generated_interval_without_paying_the_teacher_again(tiny_tokenizer, tmp_path):
    first = CountingTeacher()
    dm = make_dm(tiny_tokenizer, first, run_dir=str(tmp_path))
    state = dm.state_dict()
    consume_interval(dm, 0)
    rows = read_jsonl(tmp_path / "generated" / "interval_000.jsonl")
    assert {"prompt", "answer", "capability", "template", "difficulty", "verified"} <= set(rows[0])
    assert len(rows) == len(first.prompts)

    second = CountingTeacher()
    resumed = make_dm(tiny_tokenizer, second, run_dir=str(tmp_path))
    resumed.load_state_dict(state)
    consume_interval(resumed, 0)
    assert second.prompts == []
    assert resumed.ledger.summary() == dm.ledger.summary()


def test_corrupt_interval_file_names_file_and_line(tiny_tokenizer, tmp_path):
    path = tmp_path / "generated" / "interval_000.jsonl"
    path.parent.mkdir(parents=True)
    good = {"prompt": "a", "answer": "b", "capability": "math", "gen_tokens": 1, "used": True}
    path.write_text(json.dumps(good) + "\n{not json\n")
    dm = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"interval_000.jsonl:2: corrupt JSONL row"):
        dm.train_dataloader()
    path.write_text(json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"interval_000.jsonl:1: row lacks required field\(s\) \['answer'"):
        make_dm(tiny_tokenizer, run_dir=str(tmp_path)).train_dataloader()


def test_jsonl_prompt_source_errors_name_row(tiny_tokenizer, tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"capability": "math", "prompt": "1+1?"}) + "\n")
    dm = CapabilityDataModule(capabilities=["math"], prompt_source=str(good))
    assert dm._build_prompt_source().sample("math", random.Random(0), 0.0).text == "1+1?"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"capability": "poetry", "prompt": "x"}) + "\n")
    dm = CapabilityDataModule(capabilities=["math"], prompt_source=str(bad))
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown capability .poetry."):
        dm._build_prompt_source()
    dm = CapabilityDataModule(capabilities=["math"], prompt_source=str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        dm._build_prompt_source()
    bad.write_text(json.dumps({"capability": ["math"], "prompt": "x"}) + "\n")
    dm = CapabilityDataModule(capabilities=["math"], prompt_source=str(bad))
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown capability \['math'\]"):
        dm._build_prompt_source()
    dm = CapabilityDataModule(capabilities=["math", "code"], prompt_source=str(good))
    with pytest.raises(ValueError, match=r"p.jsonl.* has no usable prompts for capabilities \['code'\]"):
        dm._build_prompt_source()


def test_jsonl_prompt_source_drops_probe_and_evaluation_prompts(tmp_path, caplog):
    # the probes measure what the bandit learns from: a probe prompt in the user's training file, or
    # one whose hash is in leakage_hashes, must never reach the teacher or the student
    from read_lightning.evaluation.probes import probe_items
    from read_lightning.prompts.leakage import prompt_hash

    probe_prompt, eval_prompt = probe_items("math")[0]["prompt"], "What is 40 plus 2?"
    (tmp_path / "hashes.txt").write_text(prompt_hash(eval_prompt) + "\n")
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"capability": "math", "prompt": p}) + "\n"
                            for p in (probe_prompt, eval_prompt, "3+4?")))
    dm = CapabilityDataModule(capabilities=["math"], prompt_source=str(path), leakage_hashes=str(tmp_path / "hashes.txt"))
    with caplog.at_level(logging.WARNING, logger="read_lightning.training.data"):
        source = dm._build_prompt_source()
    assert source.pools == {"math": ["3+4?"]}
    assert "dropped 2 prompt(s)" in caplog.text and "lines 1, 2" in caplog.text
    path.write_text(json.dumps({"capability": "math", "prompt": probe_prompt}) + "\n")
    with pytest.raises(ValueError, match=r"no usable prompts for capabilities \['math'\] \(1 held-out"):
        dm._build_prompt_source()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    budget=st.one_of(st.integers(800, 6000), st.integers(1, 79)),
    intervals=st.integers(1, 4),
    batch_tokens=st.integers(64, 512),
    answer_tokens=st.integers(1, 40),
    gen_batch=st.integers(1, 8),
)
def test_no_configuration_spends_more_than_budget(tiny_tokenizer, budget, intervals, batch_tokens, answer_tokens, gen_batch):
    def build():
        return make_dm(
            tiny_tokenizer,
            CountingTeacher(answer_tokens),
            budget_tokens=budget,
            num_intervals=intervals,
            max_tokens_per_batch=max(batch_tokens, 64),
            generation_batch_size=gen_batch,
        )

    # One example can cost make_dm's max_new_tokens + max_length (16 + 64): an interval's share
    # of the budget below that is refused up front, which is the contract; any other is accepted.
    if budget // intervals < 16 + 64:
        with pytest.raises(ValueError, match="too small for one training step"):
            build()
        return
    dm = build()
    for epoch in range(intervals):
        consume_interval(dm, epoch)
        assert dm.ledger.spent <= budget


def test_teacher_backend_is_chosen_by_config(tiny_tokenizer):
    from read_lightning.teachers.generation import HTTPTeacher

    dm = CapabilityDataModule(teacher="served-model", teacher_backend="http", teacher_url="http://127.0.0.1:9")
    dm.tokenizer = tiny_tokenizer
    teacher = dm._build_teacher()
    assert isinstance(teacher, HTTPTeacher) and teacher.model == "served-model"
    with pytest.raises(ValueError, match="needs teacher_url"):
        CapabilityDataModule(teacher_backend="http")
    with pytest.raises(ValueError, match="unknown teacher_backend 'tgi'"):
        CapabilityDataModule(teacher_backend="tgi")
    with pytest.raises(FileNotFoundError, match="leakage_hashes file 'nope.txt'"):
        CapabilityDataModule(leakage_hashes="nope.txt")


class RedrawOnlySource:
    """A user's prompt source without the optional ``fits`` length test: the data module redraws."""

    def __init__(self, pools):
        self.inner = StaticPromptSource(pools)

    def sample(self, capability, rng, progress):
        return self.inner.sample(capability, rng, progress)


@pytest.mark.parametrize("source", [StaticPromptSource, RedrawOnlySource])
def test_prompts_too_long_for_max_length_never_reach_the_teacher_and_the_mixture_holds(tiny_tokenizer, source):
    # Half of long_context's prompts cannot fit: the capability keeps its share with the prompt that
    # fits instead of silently handing its draws to math (which would make it 1/3 of the prompts).
    pools = {"long_context": ["word " * 200, "Summarise: short text."], "math": ["What is 1 + 1?"]}
    teacher = CountingTeacher()
    dm = CapabilityDataModule(capabilities=list(pools), budget_tokens=6000, num_intervals=1, max_length=64,
                              max_new_tokens=16, max_tokens_per_batch=256, generation_batch_size=4)
    dm.attach(teacher=teacher, tokenizer=tiny_tokenizer, prompt_source=source(pools))
    consume_interval(dm, 0)
    assert len(teacher.prompts) >= 80 and "word " * 200 not in teacher.prompts
    share = teacher.prompts.count("Summarise: short text.") / len(teacher.prompts)
    assert 0.4 < share < 0.6, share
    assert dm.interval_stats["trained_mixture"].keys() == {"long_context", "math"}
    assert (dm.too_long_prompts > 0) == (source is RedrawOnlySource)  # a fits-aware source is never redrawn


def test_a_static_pool_is_tested_for_length_once_not_at_every_draw(tiny_tokenizer, monkeypatch):
    pools = {"long_context": ["word " * 200, "Summarise: short text."], "math": ["What is 1 + 1?"]}
    dm = CapabilityDataModule(capabilities=list(pools), budget_tokens=6000, num_intervals=1, max_length=64,
                              max_new_tokens=16, max_tokens_per_batch=256, generation_batch_size=4)
    dm.attach(teacher=CountingTeacher(), tokenizer=tiny_tokenizer, prompt_source=StaticPromptSource(pools))
    tested = []
    fits = GenerationPlanner.fits
    monkeypatch.setattr(GenerationPlanner, "fits", lambda self, text: tested.append(text) or fits(self, text))
    consume_interval(dm, 0)
    assert len(tested) == 3  # each pooled prompt once, over 80+ draws


def test_a_capability_with_no_prompt_that_fits_is_named_and_costs_nothing(tiny_tokenizer, caplog):
    only_long = {"long_context": ["word " * 200]}
    teacher = CountingTeacher()
    dm = CapabilityDataModule(capabilities=list(only_long), budget_tokens=3000, num_intervals=1, max_length=64,
                              max_new_tokens=16, max_tokens_per_batch=256, generation_batch_size=4)
    dm.attach(teacher=teacher, tokenizer=tiny_tokenizer, prompt_source=StaticPromptSource(only_long))
    with caplog.at_level("WARNING"):
        assert consume_interval(dm, 0) == [] and teacher.prompts == [] and dm.ledger.spent == 0
    assert "no long_context prompt fits max_length=64" in caplog.text


def test_the_template_library_trains_a_long_capability_on_its_longest_prompts_that_fit(tiny_tokenizer):
    # The built-in long-context documents run to 2,000 tokens; a 256-token run still gets
    # long_context prompts (shortest fills), and every one of them fits.
    from read_lightning.prompts.library import TemplateLibrary

    teacher = CountingTeacher()
    dm = CapabilityDataModule(capabilities=["long_context", "math"], budget_tokens=8000, num_intervals=1,
                              max_length=256, max_new_tokens=16, max_tokens_per_batch=1024, generation_batch_size=8,
                              mixture={"long_context": 0.8, "math": 0.2})
    dm.attach(teacher=teacher, tokenizer=tiny_tokenizer,
              prompt_source=TemplateLibrary(capabilities=["long_context", "math"], calibration_per_template=4))
    consume_interval(dm, 0)
    assert len(teacher.prompts) >= 20
    assert all(dm.planner.fits(p) for p in teacher.prompts)
    lc = sum("<document>" in p for p in teacher.prompts) / len(teacher.prompts)
    assert lc > 0.6, lc
    assert dm.prompt_source.stats["length_fallbacks"] > 0


class SeededTeacher(CountingTeacher):
    """Like a sampling teacher: the answer length depends on a call counter that seeds it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def generate(self, prompts, *, max_new_tokens=None):
        rng = random.Random(self.calls)
        self.calls += 1
        self.prompts.extend(prompts)
        return [Generation(text="x" * rng.randint(1, 9), num_tokens=rng.randint(1, 20)) for p in prompts]


def _run_intervals(dm, epochs):
    for epoch in epochs:
        consume_interval(dm, epoch)
    return dm


def test_resume_after_an_interval_was_written_continues_the_same_sampling(tiny_tokenizer, tmp_path):
    """Killed after interval 1 was generated and written, resumed from the checkpoint of interval 0:
    interval 1 is reused and the later ones are drawn from where the uninterrupted run drew them."""
    kw = dict(budget_tokens=4000, num_intervals=4)
    full = _run_intervals(make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "full"), **kw), range(4))

    part = make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "part"), **kw)
    consume_interval(part, 0)
    checkpoint = part.state_dict()
    part.interval = 1
    part.train_dataloader()  # interval 1 generated and written; killed before any step

    teacher = SeededTeacher()
    resumed = make_dm(tiny_tokenizer, teacher, run_dir=str(tmp_path / "part"), **kw)
    resumed.load_state_dict(checkpoint)
    _run_intervals(resumed, [1, 2, 3])
    assert resumed.ledger.summary() == full.ledger.summary()
    for name in ("interval_001.jsonl", "interval_002.jsonl", "interval_003.jsonl"):
        assert (tmp_path / "part" / "generated" / name).read_text() == (tmp_path / "full" / "generated" / name).read_text()
    assert teacher.calls == full.teacher.calls


def test_loader_resumes_mid_interval_without_training_or_charging_a_step_twice(tiny_tokenizer, tmp_path):
    full = make_dm(tiny_tokenizer, run_dir=str(tmp_path / "full"))
    full_batches = consume_interval(full, 0)
    assert len(full_batches) >= 3

    part = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    loader = part.train_dataloader()
    for batch in list(loader)[:2]:
        part.on_before_batch_transfer(batch, 0)
    module_state, loader_state = part.state_dict(), loader.state_dict()
    assert loader_state == {"interval": 0, "steps": 2}

    resumed = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    resumed.load_state_dict(module_state)
    loader = resumed.train_dataloader()
    loader.load_state_dict(loader_state)
    assert len(loader) == len(full_batches)  # Lightning counts the skipped steps as done
    rest = list(loader)
    for batch in rest:
        resumed.on_before_batch_transfer(batch, 0)
    assert [b["input_ids"].tolist() for b in rest] == [b["input_ids"].tolist() for b in full_batches[2:]]
    assert resumed.ledger.summary() == full.ledger.summary()

    with pytest.raises(ValueError, match="loader state is for interval 3"):
        resumed.train_dataloader().load_state_dict({"interval": 3, "steps": 1})
    with pytest.raises(ValueError, match="steps=99"):
        resumed.train_dataloader().load_state_dict({"interval": 0, "steps": 99})
    (tmp_path / "generated" / "interval_000.jsonl").unlink()
    with pytest.raises(ValueError, match=r"resuming inside interval 0, but its data .*interval_000.jsonl is missing"):
        resumed.train_dataloader()


def test_interval_file_without_its_generation_state_is_refused(tiny_tokenizer, tmp_path):
    consume_interval(make_dm(tiny_tokenizer, run_dir=str(tmp_path)), 0)
    state = tmp_path / "generation_state" / "interval_000.json"
    state.write_text("{half")
    with pytest.raises(ValueError, match=r"interval_000.json: not valid JSON"):
        make_dm(tiny_tokenizer, run_dir=str(tmp_path)).train_dataloader()
    state.write_text(json.dumps({"rng": [3, [1, 2], None]}))
    with pytest.raises(ValueError, match=r"interval_000.json: field 'rng'"):
        make_dm(tiny_tokenizer, run_dir=str(tmp_path)).train_dataloader()
    state.unlink()
    with pytest.raises(ValueError, match=r"interval_000.jsonl exists but its generation state .*interval_000.json"):
        make_dm(tiny_tokenizer, run_dir=str(tmp_path)).train_dataloader()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("capability", "poetry", "field 'capability' is 'poetry'"),
        ("gen_tokens", -1, "field 'gen_tokens' must be an integer in \\[0, max_new_tokens=16\\]"),
        ("gen_tokens", 17, "field 'gen_tokens'"),
        ("gen_tokens", "3", "field 'gen_tokens'"),
        ("used", "yes", "field 'used' must be true or false"),
        ("answer", None, "fields 'prompt' and 'answer' must be strings"),
    ],
)
def test_bad_interval_row_names_file_line_and_field(tiny_tokenizer, tmp_path, field, value, message):
    path = tmp_path / "generated" / "interval_000.jsonl"
    path.parent.mkdir(parents=True)
    good = {"prompt": "a", "answer": "b", "capability": "math", "gen_tokens": 1, "used": True}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, field: value}) + "\n")
    with pytest.raises(ValueError, match=rf"interval_000.jsonl:2: {message}"):
        make_dm(tiny_tokenizer, run_dir=str(tmp_path)).train_dataloader()


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), max_size=12), world_size=st.integers(1, 4))
def test_shards_have_equal_steps_and_cover_each_example_at_most_once(sizes, world_size):
    from read_lightning.training.batches import shard_batches

    batches, start = [], 0
    for n in sizes:
        batches.append(list(range(start, start + n)))
        start += n
    shards = shard_batches(batches, world_size)
    assert len(shards) == world_size and len({len(s) for s in shards}) == 1
    dealt = [i for shard in shards for b in shard for i in b]
    assert len(dealt) == len(set(dealt)) and set(dealt) <= set(range(start))
    # Every dealt batch lies inside one planned batch, so it pads to at most that batch's width.
    owner = {i: k for k, b in enumerate(batches) for i in b}
    assert all(len({owner[i] for i in b}) == 1 for shard in shards for b in shard)
    # Batches are split before any is dropped, so fewer than world_size examples are ever lost.
    assert start - len(dealt) < world_size
    if start >= world_size and len(sizes) % world_size == 0:
        assert len(dealt) == start
    with pytest.raises(ValueError, match=r"world_size must be an integer in \[1, inf\], got 0"):
        shard_batches(batches, 0)


def test_resume_past_a_spent_budget_generates_nothing(tiny_tokenizer, tmp_path):
    """Lightning does not checkpoint the stop decision: a run resumed from its final checkpoint
    asks for one more interval, which must cost nothing and leave no file."""
    dm = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    epoch = 0
    while not dm.budget_exhausted:
        consume_interval(dm, epoch)
        epoch += 1
    teacher = CountingTeacher()
    resumed = make_dm(tiny_tokenizer, teacher, run_dir=str(tmp_path))
    resumed.load_state_dict(dm.state_dict())
    assert consume_interval(resumed, epoch) == [] and teacher.prompts == []
    assert not (tmp_path / "generated" / f"interval_{epoch:03d}.jsonl").exists()
    assert resumed.ledger.summary() == dm.ledger.summary()


def test_without_a_run_dir_an_interval_is_generated_and_paid_for_once(tiny_tokenizer):
    teacher = CountingTeacher()
    dm = make_dm(tiny_tokenizer, teacher)  # no run_dir: nothing is written
    first = [b["input_ids"].tolist() for b in dm.train_dataloader()]
    asked, generated = len(teacher.prompts), dm.ledger.summary()["generation"]
    # Lightning may build the interval's loader again: the same data, no second teacher bill
    assert [b["input_ids"].tolist() for b in dm.train_dataloader()] == first
    assert len(teacher.prompts) == asked and dm.ledger.summary()["generation"] == generated
    resumed = make_dm(tiny_tokenizer)
    resumed.load_state_dict(dm.state_dict())  # a checkpoint inside interval 0, in a new process
    with pytest.raises(ValueError, match="resuming inside interval 0, but there is no run_dir that kept its data"):
        resumed.train_dataloader()


def test_a_fresh_run_refuses_the_interval_files_another_run_left_in_its_run_dir(tiny_tokenizer, tmp_path):
    consume_interval(make_dm(tiny_tokenizer, run_dir=str(tmp_path)), 0)
    teacher = CountingTeacher()
    with pytest.raises(ValueError, match=r"interval_000.jsonl was generated by another run .*--ckpt_path"):
        make_dm(tiny_tokenizer, teacher, run_dir=str(tmp_path), mixture={"math": 0.0, "code": 1.0, "reasoning": 0.0}
                ).train_dataloader()
    assert teacher.prompts == []
    # the run that wrote them, resumed from its checkpoint state, reuses them
    owner = make_dm(tiny_tokenizer, run_dir=str(tmp_path / "owner"))
    checkpoint = owner.state_dict()  # taken before interval 0 was generated
    consume_interval(owner, 0)
    resumed = make_dm(tiny_tokenizer, teacher, run_dir=str(tmp_path / "owner"))
    resumed.load_state_dict(checkpoint)
    consume_interval(resumed, 0)
    assert teacher.prompts == [] and resumed.ledger.summary() == owner.ledger.summary()


def test_a_teacher_that_returns_nothing_ends_the_interval_instead_of_looping(tiny_tokenizer, caplog):
    class EmptyTeacher(CountingTeacher):
        def generate(self, prompts, *, max_new_tokens=None):
            self.prompts.append(prompts)
            return [Generation(text="", num_tokens=0) for _ in prompts]

    class RejectAll(StaticPromptSource):
        def verify(self, prompt, answer):
            return False

    teacher = EmptyTeacher()
    dm = make_dm(tiny_tokenizer, teacher, drop_unverified=True)
    dm.attach(prompt_source=RejectAll(POOLS))
    with caplog.at_level(logging.WARNING, logger="read_lightning.training.data"):
        assert list(dm.train_dataloader()) == []
    assert len(teacher.prompts) == 1 and "produced no token and no training example" in caplog.text


def test_training_progress_spreads_an_intervals_generation_over_its_steps(tiny_tokenizer):
    # the learning-rate schedule reads it: fraction_spent jumps by a whole interval's generation when
    # the loader is built, which made the warm-up one optimiser step long
    dm = make_dm(tiny_tokenizer)
    seen = []
    for epoch in range(2):
        dm.interval = epoch
        batches = list(dm.train_dataloader())
        seen.append(dm.training_progress)
        assert dm.ledger.fraction_spent - dm.training_progress > 0.02  # the interval's generation, not yet spread
        for batch in batches:
            dm.on_before_batch_transfer(batch, 0)
            seen.append(dm.training_progress)
        assert dm.training_progress == pytest.approx(dm.ledger.fraction_spent)
    assert seen[0] == 0.0 and seen == sorted(seen)
    steps = [b - a for a, b in zip(seen, seen[1:]) if b != a]
    assert max(steps) < 3 * min(steps)  # no jump at an interval's start


class CallSizes(CountingTeacher):
    """Records how many prompts each call asks; ``text`` overrides the answer."""

    def __init__(self, num_tokens=6, text=None):
        super().__init__(num_tokens)
        self.sizes, self.text = [], text

    def generate(self, prompts, *, max_new_tokens=None):
        self.sizes.append(len(prompts))
        out = super().generate(prompts, max_new_tokens=max_new_tokens)
        return out if self.text is None else [Generation(text=self.text, num_tokens=g.num_tokens) for g in out]


def test_a_teacher_call_is_sized_by_its_prompts_own_worst_case(tiny_tokenizer):
    # Short prompts at max_length 256: sizing by the longest possible example (16 + 256 tokens)
    # would ask 3000 // 272 = 11 prompts. With no answer seen yet, the first call asks prompts
    # until their own worst cases fill the share, whatever the teacher's batch size.
    teacher = CallSizes()
    dm = make_dm(tiny_tokenizer, teacher, budget_tokens=3000, num_intervals=1, max_length=256,
                 max_tokens_per_batch=2048, generation_batch_size=8)
    consume_interval(dm, 0)
    first = teacher.prompts[: teacher.sizes[0]]
    worst = [dm.planner.worst_case(p) for p in first]
    assert teacher.sizes[0] > 3000 // (16 + 256) and all(w < 16 + 256 for w in worst)
    assert 3000 - max(worst) < sum(worst) <= 3000
    assert 0 < dm.ledger.spent <= 3000


def test_an_answer_that_retokenises_longer_than_it_was_generated_never_overdraws(tiny_tokenizer):
    # Each answer cost max_new_tokens (16) to generate, but its text encodes to far more than
    # max_new_tokens: the rows that would overdraw the interval are paid for and not trained on.
    teacher = CallSizes(num_tokens=16, text="word " * 40)
    dm = make_dm(tiny_tokenizer, teacher, budget_tokens=2000, num_intervals=1, generation_batch_size=64)
    rows, examples = dm._generate_interval()
    assert any(not r["used"] for r in rows) and any(r["used"] for r in rows)
    # The planner's examples (the prompt tokenised once) are the used rows' examples encoded anew.
    assert examples == [encode_example(tiny_tokenizer, r["prompt"], r["answer"], r["capability"], 64)
                        for r in rows if r["used"]]
    trained = sum(len(encode_example(tiny_tokenizer, r["prompt"], r["answer"], "x", 64)) for r in rows if r["used"])
    assert sum(r["gen_tokens"] for r in rows) + trained <= 2000
    consume_interval(dm, 0)
    assert dm.ledger.spent <= 2000


def test_once_answers_are_seen_an_interval_takes_one_call_sized_by_their_mean(tiny_tokenizer):
    # Interval 0's first call is sized by worst cases (no answer seen yet), so a second call asks
    # what the mean answers say the rest of the share holds. From then on each interval takes
    # one call sized by the labels' mean answers (its miss moves the next shares), except the
    # last, which spends what is left. The whole budget is never exceeded.
    teacher = CallSizes()
    dm = make_dm(tiny_tokenizer, teacher, budget_tokens=6000, num_intervals=4, generation_batch_size=8)
    calls = []
    for epoch in range(4):
        before = len(teacher.sizes)
        consume_interval(dm, epoch)
        calls.append(len(teacher.sizes) - before)
    assert calls[0] == 2 and calls[1:3] == [1, 1] and calls[3] >= 1, (calls, teacher.sizes)
    assert sum(n for _, n in dm.planner.answer_tokens.values()) == sum(teacher.sizes)  # every answer counted once
    assert 0.9 * 6000 < dm.ledger.spent <= 6000


def test_an_intervals_teacher_states_are_saved_and_read_back_by_its_run_only(tmp_path, monkeypatch):
    import os as _os

    import pytest as _pytest
    import torch as _torch

    from read_lightning.training import interval_store
    from read_lightning.training.interval_store import IntervalStore

    store = IntervalStore(str(tmp_path))
    rows = [{"prompt": "p", "answer": "a", "capability": "math", "gen_tokens": 1, "used": True}] * 3
    states = [_torch.randn(4, 8), None, _torch.randn(6, 8)]
    synced, real_fsync, real_replace = [], _os.fsync, _os.replace
    monkeypatch.setattr(interval_store.os, "fsync", lambda fd: (synced.append(_os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    monkeypatch.setattr(interval_store.os, "replace", lambda a, b: (synced.append(("replace", str(b))), real_replace(a, b)))
    store.save(0, rows, {"rng": None}, states)
    # the states file reaches the disk before it takes its name (a power loss leaves the old or the new)
    at = synced.index(("replace", str(store.states_path(0))))
    assert synced[at - 1].startswith(str(store.states_path(0)) + ".") and synced[at - 1].endswith(".tmp")
    back = store.load_states(0)
    assert back[1] is None and all(_torch.equal(a, b) for a, b in zip(back[::2], states[::2]))
    # the states are checked against the tokens they were computed on: a state whose example now
    # reads back as other tokens (a tokenizer changed between the run and its resume) is dropped
    tokens = [[1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12]]
    store.save(2, rows, {"rng": None}, states, tokens)
    assert all(_torch.equal(a, b) for a, b in zip(store.load_states(2, tokens)[::2], states[::2]))
    changed = [tokens[0], tokens[1], [7, 8, 9, 10, 11, 13]]  # the same length, one token other
    back = store.load_states(2, changed)
    assert _torch.equal(back[0], states[0]) and back[1] is None and back[2] is None
    assert len(store.load_states(2)) == 3 and store.load_states(2)[2] is not None  # not checked without tokens
    # another run's file is not this run's targets
    other = IntervalStore(str(tmp_path))
    assert other.load_states(0) is None
    # an interval saved without states removes a file an earlier run left
    other.save(0, rows, {"rng": None}, [None, None, None])
    assert not store.states_path(0).exists() and other.load_states(0) is None
    # a torn file is named, with what to do
    store.save(1, rows, {"rng": None}, states)
    store.states_path(1).write_bytes(store.states_path(1).read_bytes()[:20])
    with _pytest.raises(ValueError, match=r"interval_001\.safetensors: cannot read .* delete the file"):
        store.load_states(1)
