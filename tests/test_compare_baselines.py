"""``read-train compare``'s paper baselines: the six one-hot teacher-signal methods, the
chain-of-thought wrapper, and the Table-1 output."""

from __future__ import annotations

import json

import pytest
import yaml
from test_compare import BUDGET, ROOT, _fake_run, _items, arith_card, tiny_recipe  # noqa: F401  (fixtures)
from test_data import POOLS, CountingTeacher, make_dm

from read_lightning.prompts.teacher_prompts import CHAIN_OF_THOUGHT, resolve_teacher_prompt, wrap_prompt
from read_lightning.reporting.compare import compare_main, task_eval_key
from read_lightning.reporting.methods import PAPER_BASELINES, describe_loss, resolve_methods
from read_lightning.reporting.recipes import RunSpec, derive_recipe
from read_lightning.requirement.cards import load_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALLOCATORS = ["read", "uniform", "task_static", "single", "greedy"]

# What docs/guide.md ("The paper's baseline table") says each method is: student loss, where its
# KD term is taken, whether the teacher is asked to reason step by step.
DOCUMENTED = {
    "resp_sft": dict(kd_weight=0.0, kd_positions="answer", cot=False),
    "resp_kd": dict(kd_weight=0.5, kd_positions="answer", cot=False),
    "cot_sft": dict(kd_weight=0.0, kd_positions="answer", cot=True),
    "cot_kd": dict(kd_weight=0.5, kd_positions="answer", cot=True),
    "logit_sft": dict(kd_weight=1.0, kd_positions="all", cot=False),
    "logit_kd": dict(kd_weight=0.5, kd_positions="all", cot=False),
}


def _bandit(doc: dict) -> dict:
    return next(cb for cb in doc["trainer"]["callbacks"] if cb["class_path"].endswith("BanditAllocationCallback"))


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_each_paper_baseline_trains_what_the_docs_say(name, tiny_recipe, tmp_path):
    """The derived recipe, resolved by the real parser: the module's loss, the one-hot mixture and
    the teacher's prompt are the documented ones, whatever the recipe's own loss and prompt."""
    from read_lightning.cli import lightning_main

    recipe = yaml.safe_load(tiny_recipe.read_text())
    # A recipe with other loss settings and its own wrapper: the method's values replace them.
    recipe["model"].update(kd_weight=0.3, kd_positions="answer", divergence="jsd", temperature=2.0)
    recipe["data"]["teacher_prompt"] = "Answer briefly. {prompt}"
    want = DOCUMENTED[name]
    for target in (None, "reasoning"):
        (method,) = resolve_methods([name], ALLOCATORS, target)
        doc = derive_recipe(recipe, RunSpec(name, 0, tmp_path / name / "seed_0", method), tmp_path)
        init = _bandit(doc)["init_args"]
        assert init["allocator"] == "single"
        assert init["allocator_kwargs"] == ({} if target is None else {"capability": target})
        assert doc["trainer"]["logger"]["init_args"]["name"] == name  # its own run directory
        path = tmp_path / f"{name}-{target}.yaml"
        path.write_text(yaml.safe_dump(doc))
        cli = lightning_main(["--config", str(path)], run=False)
        hp = cli.model.hparams
        assert (hp.kd_weight, hp.kd_positions, hp.divergence, hp.temperature) == (
            want["kd_weight"], want["kd_positions"], "forward_kl", 1.0)
        assert cli.datamodule.teacher_prompt == (CHAIN_OF_THOUGHT if want["cot"] else None)
        bandit = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "BanditAllocationCallback")
        from read_lightning.allocation.bandit import make_allocator

        allocator = make_allocator(bandit.allocator_name, cli.datamodule.capabilities, bandit.requirement,
                                   **bandit.allocator_kwargs)
        # One-hot on the target: the top of the requirement vector (math: 0.7), or the one named.
        expected = target or "math"
        assert dict(zip(allocator.capabilities, allocator.mixture.tolist())) == {
            c: float(c == expected) for c in ("math", "reasoning")}


def test_plain_allocators_are_the_recipe_as_it_is(tmp_path):
    recipe = yaml.safe_load((ROOT / "recipes" / "smollm2-135m.yaml").read_text())
    for method in resolve_methods(["read", "single", "uniform"], ALLOCATORS, None):
        assert derive_recipe(recipe, RunSpec(method.name, 1, tmp_path, method), tmp_path) == \
            derive_recipe(recipe, RunSpec(method.name, 1, tmp_path), tmp_path)
    # A named target also moves the plain single-capability allocator, and only it.
    single, uniform = resolve_methods(["single", "uniform"], ALLOCATORS, "math")
    assert single.allocator_kwargs == {"capability": "math"} and uniform.allocator_kwargs == {}


def test_method_names_expand_and_unknown_names_get_close_matches():
    assert [m.name for m in resolve_methods(["read", "paper"], ALLOCATORS)] == ["read", *PAPER_BASELINES]
    with pytest.raises(ValueError, match=r"'resp_sf' \(did you mean resp_sft or resp_kd\?\), 'logits_kd' "
                                         r"\(did you mean logit_kd or"):
        resolve_methods(["read", "resp_sf", "logits_kd"], ALLOCATORS)
    with pytest.raises(ValueError, match=r"methods named twice: \['cot_sft'\]"):
        resolve_methods(["cot_sft", "paper"], ALLOCATORS)


def test_losses_are_described_in_words():
    assert describe_loss({"kd_weight": 0.0}) == "CE on the answer"
    assert describe_loss({"kd_weight": 0.5, "kd_positions": "answer"}) == "0.5 CE + 0.5 KL (answer)"
    assert describe_loss({"kd_weight": 1.0, "kd_positions": "all"}) == "KL (all tokens)"
    assert describe_loss({"kd_weight": 0.25, "divergence": "jsd", "temperature": 2.0}) == \
        "0.75 CE + 0.25 JSD (T=2) (answer)"


# --------------------------------------------------------------------------- the teacher's prompt


def test_teacher_prompt_templates_are_checked_and_filled_literally():
    assert resolve_teacher_prompt("cot") == CHAIN_OF_THOUGHT and resolve_teacher_prompt(None) is None
    assert wrap_prompt(None, "2+2?") == "2+2?"
    # Braces in the prompt (JSON, code) stay as they are: no str.format.
    assert wrap_prompt("Q: {prompt} A:", 'Reply with {"a": 1}') == 'Q: Reply with {"a": 1} A:'
    assert wrap_prompt(CHAIN_OF_THOUGHT, "2+2?").startswith("2+2?\n\nLet's think step by step.")
    for bad in ("no placeholder", "{prompt} and {prompt}"):
        with pytest.raises(ValueError, match="neither a packaged wrapper"):
            resolve_teacher_prompt(bad)


def test_the_cot_wrapper_changes_what_the_teacher_is_asked_not_what_the_student_trains_on(tiny_tokenizer, tmp_path):
    from read_lightning.core.jsonl import read_jsonl

    plain_teacher, cot_teacher = CountingTeacher(), CountingTeacher()
    plain = make_dm(tiny_tokenizer, plain_teacher, run_dir=str(tmp_path / "plain"))
    cot = make_dm(tiny_tokenizer, cot_teacher, teacher_prompt="cot", run_dir=str(tmp_path / "cot"))
    with pytest.raises(ValueError, match="teacher_prompt 'think' is neither"):
        make_dm(tiny_tokenizer, teacher_prompt="think")
    for dm in (plain, cot):
        dm.interval = 0
        dm.train_dataloader()
    asked = set(sum(POOLS.values(), []))
    assert plain_teacher.prompts and set(plain_teacher.prompts) <= asked
    # The same draws (same seed), each asked with the chain-of-thought request around it (the answers'
    # lengths differ with the prompt's, so one interval may hold a prompt more than the other).
    n = min(len(cot_teacher.prompts), len(plain_teacher.prompts))
    assert n >= 8 and cot_teacher.prompts[:n] == [wrap_prompt(CHAIN_OF_THOUGHT, p) for p in plain_teacher.prompts[:n]]
    rows = read_jsonl(tmp_path / "cot" / "generated" / "interval_000.jsonl")
    assert all(r["prompt"] in asked and r["teacher_prompt"] == wrap_prompt(CHAIN_OF_THOUGHT, r["prompt"]) for r in rows)
    assert "teacher_prompt" not in read_jsonl(tmp_path / "plain" / "generated" / "interval_000.jsonl")[0]
    # The student trains on the plain prompt followed by the answer: no training row holds the wrapper.
    texts = [tiny_tokenizer.decode(ids) for batch in cot.train_dataloader() for ids in batch["input_ids"].tolist()]
    assert texts and all(any(p in t for p in asked) for t in texts)
    assert not any("step by step" in t for t in texts)


# --------------------------------------------------------------------------- the command


def _no_model(monkeypatch):
    """Make any model load fail the test: bad input must be refused before one loads."""
    import read_lightning.teachers.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_model", refuse)


def test_bad_method_input_is_refused_before_any_model_loads(tiny_recipe, tmp_path, capsys, monkeypatch):
    _no_model(monkeypatch)
    base = ["--config", str(tiny_recipe), "--out", str(tmp_path), "--task-card", "arith_word",
            "--launcher", "inprocess"]
    with pytest.raises(SystemExit):
        compare_main([*base, "--allocators", "read,resp_sf"])
    assert "'resp_sf' (did you mean resp_sft or resp_kd?)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--model.kd_weight cannot be passed through with the paper baselines"):
        compare_main([*base, "--allocators", "read,paper", "--model.kd_weight", "0.2"])
    with pytest.raises(SystemExit, match=r"--data.teacher_prompt cannot be passed through"):
        compare_main([*base, "--allocators", "cot_sft", "--data.teacher_prompt=cot"])
    with pytest.raises(SystemExit, match=r"--target-capability 'maths' is not one of the recipe's capabilities "
                                         r"\['math', 'reasoning'\] \(did you mean math\?\)"):
        compare_main([*base, "--allocators", "resp_sft", "--target-capability", "maths"])
    assert not list(tmp_path.rglob("summary.json"))
    # Without a paper baseline the loss is the recipe's to change, as before.
    from read_lightning.reporting.compare import _check_method_overrides

    _check_method_overrides(["--model.kd_weight", "0.2"], resolve_methods(["read"], ALLOCATORS))


def test_two_baselines_train_as_defined_and_table1_has_their_rows(tiny_recipe, arith_card, tmp_path, capsys):
    """A real (tiny) comparison: what each run trained with, read back from its run directory."""
    out = tmp_path / "cmp"
    args = ["--config", str(tiny_recipe), "--allocators", "cot_kd,logit_sft", "--seeds", "1", "--out", str(out),
            "--task-card", arith_card, "--launcher", "inprocess", "--eval-batch-size", "4",
            "--target-capability", "reasoning"]
    assert compare_main(args) == 0
    root = out / "tiny-recipe"
    for name in ("cot_kd", "logit_sft"):
        run = root / name / "seed_0"
        config = yaml.safe_load((run / "config.yaml").read_text())  # what Lightning resolved and ran
        want = DOCUMENTED[name]
        assert (config["model"]["kd_weight"], config["model"]["kd_positions"]) == (want["kd_weight"],
                                                                                  want["kd_positions"])
        assert config["data"]["teacher_prompt"] == (CHAIN_OF_THOUGHT if want["cot"] else None)
        rows = [json.loads(line) for f in sorted((run / "generated").glob("*.jsonl"))
                for line in f.read_text().splitlines()]
        assert rows and {r["capability"] for r in rows} == {"reasoning"}  # one-hot on the named target
        assert all(("teacher_prompt" in r) == want["cot"] for r in rows)
        ledger = json.loads((run / "ledger.json").read_text())
        assert 0 < ledger["spent"] <= BUDGET
    md = (root / "table1.md").read_text()
    assert md.split("Table 1:")[1] in (root / "compare.md").read_text()
    assert "| cot_kd | CoT | KD: 0.5 CE + 0.5 KL (answer) | CoT | one-hot: reasoning | 1 |" in md
    assert "| logit_sft | Logit | SFT: KL (all tokens) | plain | one-hot: reasoning | 1 |" in md


def test_table1_has_one_row_per_method_and_a_column_per_capability(tiny_recipe, arith_card, tmp_path, capsys):
    """Eight methods, scored already (``--no-train``): the paper's Table 1 shape."""
    root = tmp_path / "cmp" / "tiny-recipe"
    key = task_eval_key(load_card(arith_card, ["math", "reasoning"]), "teacher_fidelity")
    methods = ["read", "task_static", *PAPER_BASELINES]
    for i, name in enumerate(methods):
        _fake_run(root / name / "seed_0", _items([1, 0, i % 2, 1], [1, 1, 0, 0]), key)
    args = ["--config", str(tiny_recipe), "--allocators", "read,task_static,paper", "--seeds", "1",
            "--out", str(tmp_path / "cmp"), "--task-card", arith_card, "--no-train", "--eval-batch-size", "4"]
    assert compare_main(args) == 0
    lines = (root / "table1.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert header == ["method", "signal", "loss", "teacher prompt", "data mixture", "seeds", "math", "reasoning",
                      "avg", "task utility", "agreement %", "accuracy %"]
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start + 2:] if line.startswith("|")]
    # The undistilled student first (the runs' first probe; no task score of it here), then one row
    # per method, in the order asked.
    assert [row[0] for row in table] == ["student before distillation", *methods]
    assert table[0][6:] == ["10.0 ± 0.0", "20.0 ± 0.0", "15.0 ± 0.0", "n/a", "n/a", "n/a"]  # over the 8 runs
    by_name = {row[0]: dict(zip(header, row)) for row in table[1:]}
    # _fake_run's profile: math 10, reasoning 20; their mean 15; task utility 50.
    for row in by_name.values():
        assert (row["math"], row["reasoning"], row["avg"], row["task utility"]) == ("10.0", "20.0", "15.0", "50.00")
    assert by_name["read"]["signal"] == "recipe" and by_name["read"]["data mixture"] == "read"
    assert by_name["read"]["loss"] == "KL (all tokens)"  # the recipe's own loss: kd_weight 1, kd_positions all
    assert by_name["task_static"]["data mixture"] == "task_static"
    expected = {"resp_sft": ("Resp", "SFT: CE on the answer", "plain"),
                "resp_kd": ("Resp", "KD: 0.5 CE + 0.5 KL (answer)", "plain"),
                "cot_sft": ("CoT", "SFT: CE on the answer", "CoT"),
                "cot_kd": ("CoT", "KD: 0.5 CE + 0.5 KL (answer)", "CoT"),
                "logit_sft": ("Logit", "SFT: KL (all tokens)", "plain"),
                "logit_kd": ("Logit", "KD: 0.5 CE + 0.5 KL (all tokens)", "plain")}
    for name, (signal, loss, prompt) in expected.items():
        row = by_name[name]
        # The one-hot target where none was named: the top of the runs' requirement vector (math 0.7).
        assert (row["signal"], row["loss"], row["teacher prompt"], row["data mixture"]) == (
            signal, loss, prompt, "one-hot: math")
    # The CSV carries the capability mean per run, as the table's avg column.
    csv_text = (root / "compare.csv").read_text()
    assert "capability_mean" in csv_text.splitlines()[0]
