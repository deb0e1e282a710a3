"""Two DDP processes (gloo, CPU) under ``read-train fit``: one mixture for all ranks at every
interval, one ledger summed over ranks, the budget respected globally, each batch trained once;
and a run whose ranks are all killed mid-interval resumes to the same result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.callbacks import Callback
from test_resume import KILLED, PROBE, PROMPTS, _fit, _newest_checkpoint, _outcome

BUDGET = 4000


class RankRecorder(Callback):
    """Writes what this rank saw to ``<dir>/rank<r>.jsonl``: the mixture each interval was drawn
    from, every batch it trained, and the ledger at every interval's end."""

    def __init__(self, dir: str) -> None:
        self.dir = Path(dir)
        self.rows: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.rows.append({"event": "start", "mixture": trainer.datamodule.interval_stats["mixture"]})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        ids = batch["input_ids"][batch["attention_mask"].bool()].tolist()
        self.rows.append({"event": "batch", "epoch": trainer.current_epoch, "tokens": batch["capability_tokens"],
                          "examples": len(batch["input_ids"]), "hash": hashlib.sha1(json.dumps(ids).encode()).hexdigest(),
                          "teacher_states": int(batch["teacher_hidden_rows"].sum()) if "teacher_hidden_rows" in batch else 0})

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        self.rows.append({"event": "end", "epoch": trainer.current_epoch,
                          "ledger": dm.ledger.summary(), "tokens_seen": pl_module.tokens_seen})

    def on_train_end(self, trainer, pl_module) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"rank{trainer.global_rank}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.rows))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from conftest import build_tiny_model, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("ddp")
    tok = build_tiny_tokenizer()
    build_tiny_model(tok, num_layers=2).save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    (root / "prompts.jsonl").write_text("".join(json.dumps({"capability": c, "prompt": p}) + "\n"
                                                for c, ps in PROMPTS.items() for p in ps))
    return root


def _config(root: Path, name: str, **model: object) -> Path:
    checkpoint = "lightning.pytorch.callbacks.ModelCheckpoint"
    recipe = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 2, "strategy": "ddp", "num_nodes": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root / name), "name": "ddp"}},
            "callbacks": [
                PROBE,  # on rank 0, the profile broadcast
                {"class_path": "read_lightning.training.callbacks.BanditAllocationCallback",
                 # Random mixtures: they differ between intervals, so "the same on every rank"
                 # is not true by accident.
                 "init_args": {"requirement": {"math": 0.6, "code": 0.3, "reasoning": 0.1},
                               "allocator": "random"}},
                {"class_path": "test_ddp.RankRecorder", "init_args": {"dir": str(root / name / "ranks")}},
                {"class_path": checkpoint, "init_args": {"save_last": True, "save_top_k": 0}},
                # (after every step, so a kill mid-interval resumes one step in whatever the plan)
                {"class_path": checkpoint, "init_args": {"save_last": True, "save_top_k": 0,
                                                         "every_n_train_steps": 1}},
            ],
            "enable_checkpointing": True, "enable_progress_bar": False, "enable_model_summary": False,
        },
        "model": {"student": str(root / "tiny"), "student_layers": "0", "teacher": str(root / "tiny"),
                  "lr": 1e-3, **model},
        "data": {"capabilities": list(PROMPTS), "budget_tokens": BUDGET, "num_intervals": 3,
                 "max_tokens_per_batch": 192, "max_length": 64, "max_new_tokens": 16,
                 "generation_batch_size": 4, "prompt_source": str(root / "prompts.jsonl")},
    }
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(recipe))
    return config


@pytest.fixture(scope="module")
def full(root):
    """One uninterrupted 2-process run (through the kill-point launcher, with no kill point)."""
    assert _fit(_config(root, "full")) == 0
    return root / "full"


def test_two_process_ddp_shares_mixture_ledger_and_budget(root, full):
    ranks = [[json.loads(line) for line in (full / "ranks" / f"rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    ends = [[row for row in rows if row["event"] == "end"] for rows in ranks]
    batches = [[row for row in rows if row["event"] == "batch"] for rows in ranks]
    assert len(ends[0]) == len(ends[1]) == 3
    mixtures = [row["mixture"] for row in ranks[0] if row["event"] == "start"]
    assert mixtures == [row["mixture"] for row in ranks[1] if row["event"] == "start"]  # one per interval
    assert len({json.dumps(m, sort_keys=True) for m in mixtures}) > 1
    assert [e["ledger"] for e in ends[0]] == [e["ledger"] for e in ends[1]]  # one ledger
    assert [e["tokens_seen"] for e in ends[0]] == [e["tokens_seen"] for e in ends[1]]

    for epoch in range(3):
        mine = [[b for b in bs if b["epoch"] == epoch] for bs in batches]
        assert len(mine[0]) == len(mine[1]) > 0  # the same number of steps, or DDP would hang
        assert not {b["hash"] for b in mine[0]} & {b["hash"] for b in mine[1]}  # each batch on one rank
    # The ledger's training tokens are the sum of what both ranks trained, interval by interval.
    trained = sum(n for bs in batches for b in bs for n in b["tokens"].values())
    ledger = ends[0][-1]["ledger"]
    assert ledger["training"] == trained == ends[0][-1]["tokens_seen"]

    run = full / "ddp" / "version_0"
    generated = [json.loads(line) for p in sorted((run / "generated").iterdir()) for line in p.read_text().splitlines()]
    assert ledger["generation"] == sum(r["gen_tokens"] for r in generated)  # generated once, by rank 0
    assert ledger["spent"] <= BUDGET and json.loads((run / "ledger.json").read_text()) == ledger
    # The student is exported whole (gathered from the strategy, written by rank 0) and trained.
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from read_lightning.teachers.models import compress_layers

    saved = load_file(run / "student" / "model.safetensors")
    initial = compress_layers(AutoModelForCausalLM.from_pretrained(root / "tiny"), "0").state_dict()
    assert set(initial) - set(saved) <= {"lm_head.weight"}  # tied to the embedding
    assert not (saved["model.layers.0.mlp.up_proj.weight"] == initial["model.layers.0.mlp.up_proj.weight"]).all()
    # Every interval was generated once, by rank 0, and shared: each of its examples was trained
    # on exactly one rank.
    assert sum(1 for r in generated if r["used"]) == sum(b["examples"] for bs in batches for b in bs)
    rows = [json.loads(line) for line in (run / "allocations.jsonl").read_text().splitlines()]
    assert [r["mixture"] for r in rows if r["event"] == "select"] == mixtures


def test_killed_ddp_run_resumes_to_the_same_result(root, full):
    """Both ranks killed mid-interval (a lost node), resumed with --ckpt_path last under DDP."""
    config = _config(root, "killed")
    # Killed before interval 1's second step, whatever the plan's step counts (the step after
    # interval 0's last, from the uninterrupted run's rank 0).
    rank0 = [json.loads(line) for line in (full / "ranks" / "rank0.jsonl").read_text().splitlines()]
    first_interval_steps = sum(1 for row in rank0 if row["event"] == "batch" and row["epoch"] == 0)
    assert _fit(config, kill_at=f"train:{first_interval_steps + 1}") == KILLED
    # It resumes inside interval 1, one step in (each rank skips its first batch).
    assert _newest_checkpoint(root / "killed" / "ddp" / "version_0") == {
        "epoch": 1, "batches_done": 1, "last_batch": False, "at_batch_end": True}
    assert _fit(config, resume=True) == 0
    resumed, uninterrupted = _outcome(root / "killed" / "ddp" / "version_0"), _outcome(full / "ddp" / "version_0")
    for key in ("ledger", "allocations", "generated", "generation_state"):
        assert resumed[key] == uninterrupted[key], key
    for name, tensor in uninterrupted["student"].items():
        assert (resumed["student"][name] == tensor).all(), name


def test_every_rank_distils_from_the_teacher_states_rank_0_kept(root):
    # Logit KD from the model rank 0 generates with, greedy (the tiny model's sampled bytes do
    # not re-tokenise): rank 0 sends the states with the interval's rows, so rank 1's steps read
    # them too instead of running the teacher (DDP waits for the slowest rank).
    config = yaml.safe_load(_config(root, "kd", kd_weight=0.5).read_text())
    config["data"]["temperature"] = 0.0
    path = root / "kd.yaml"
    path.write_text(yaml.safe_dump(config))
    assert _fit(path) == 0
    for rank in (0, 1):
        rows = [json.loads(line) for line in (root / "kd" / "ranks" / f"rank{rank}.jsonl").read_text().splitlines()]
        carried = [row["teacher_states"] for row in rows if row["event"] == "batch"]
        assert carried and sum(carried) > 0, (rank, carried)
