import json

import lightning as L
import pytest
from conftest import build_tiny_model
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from test_data import POOLS, make_dm

from read_lightning.callbacks import BanditAllocationCallback
from read_lightning.module import DistillationModule

REQ = {"math": 0.6, "code": 0.3, "reasoning": 0.1}


class LedgerProbe(Callback):
    """A probe double: scores grow with the training tokens spent on each capability."""

    def __init__(self, drop=None):
        self.latest_profile = None
        self.drop = drop

    def _measure(self, trainer):
        trained = trainer.datamodule.ledger.training
        profile = {c: 10.0 + trained.get(c, 0) / 50.0 for c in POOLS}
        if self.drop:
            profile.pop(self.drop)
        self.latest_profile = profile

    def on_fit_start(self, trainer, pl_module):
        self._measure(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._measure(trainer)


def run(tok, tmp_path, epochs, callbacks, ckpt_path=None, max_epochs=None, enable_checkpointing=False):
    dm = make_dm(tok, budget_tokens=1500 * epochs, num_intervals=epochs)
    module = DistillationModule(lr=1e-3).attach(student=build_tiny_model(tok), tokenizer=tok)
    trainer = L.Trainer(
        max_epochs=max_epochs or epochs,
        reload_dataloaders_every_n_epochs=1,
        default_root_dir=str(tmp_path),
        logger=L.pytorch.loggers.CSVLogger(str(tmp_path), version=0),
        callbacks=callbacks,
        enable_checkpointing=enable_checkpointing,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, dm


def decisions(path):
    return [json.loads(line) for line in open(path) if json.loads(line)["event"] == "select"]


def test_bandit_pushes_each_choice_into_the_data_module_and_logs_it(tiny_tokenizer, tmp_path):
    seen = []

    class Spy(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append(dict(trainer.datamodule.interval_stats["mixture"]))

    bandit = BanditAllocationCallback(requirement=REQ, allocator_kwargs={"warmup": 1, "refit_steps": 5})
    trainer, dm = run(tiny_tokenizer, tmp_path, 4, [LedgerProbe(), bandit, Spy()])
    rows = [json.loads(line) for line in open(tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl")]
    selects = [r for r in rows if r["event"] == "select"]
    observes = [r for r in rows if r["event"] == "observe"]
    assert len(observes) == 4 and len(selects) == 4  # the last interval spends the budget: no 5th choice
    # The mixture each interval trained on is the one chosen before it.
    assert [s["mixture"] for s in selects] == [pytest.approx(m) for m in seen]
    assert all(abs(sum(s["mixture"].values()) - 1) < 1e-6 for s in selects)
    assert all(isinstance(o["reward"], float) and o["cost"] > 0 for o in observes)
    for key in ("mixture/math", "bandit/reward", "bandit/kappa"):
        assert key in trainer.logged_metrics
    assert dm.ledger.spent <= dm.ledger.budget
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text())
    assert summary["BanditAllocationCallback"]["decisions"] == 4
    assert summary["ledger"]["spent"] == dm.ledger.spent


def test_resumed_run_makes_the_same_decisions(tiny_tokenizer, tmp_path):
    kw = {"warmup": 1, "refit_steps": 5}
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    _, full_dm = run(tiny_tokenizer, full_dir, 4,
                     [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw)])
    ckpt = ModelCheckpoint(dirpath=str(part_dir / "ckpt"), save_last=True)
    run(tiny_tokenizer, part_dir, 4, [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw), ckpt],
        max_epochs=2, enable_checkpointing=True)
    _, part_dm = run(tiny_tokenizer, part_dir, 4,
                     [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw),
                      ModelCheckpoint(dirpath=str(part_dir / "ckpt"), save_last=True)],
        ckpt_path=str(part_dir / "ckpt" / "last.ckpt"), enable_checkpointing=True)
    full = decisions(full_dir / "lightning_logs" / "version_0" / "allocations.jsonl")
    part = decisions(part_dir / "lightning_logs" / "version_0" / "allocations.jsonl")
    assert [d["mixture"] for d in part] == [d["mixture"] for d in full]
    # The same tokens were bought and trained, none twice: the ledgers match exactly.
    assert part_dm.ledger.summary() == full_dm.ledger.summary()


def test_datamodule_without_set_mixture_weights_is_rejected(tiny_tokenizer, tmp_path):
    class PlainData(L.LightningDataModule):
        def train_dataloader(self):
            return []

    module = DistillationModule().attach(student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    trainer = L.Trainer(max_epochs=1, default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False,
                        callbacks=[BanditAllocationCallback(requirement=REQ)])
    with pytest.raises(TypeError, match="set_mixture_weights.*PlainData"):
        trainer.fit(module, datamodule=PlainData())


def test_missing_probe_score_is_named(tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"no score for capabilities \['code'\]"):
        run(tiny_tokenizer, tmp_path, 2, [LedgerProbe(drop="code"), BanditAllocationCallback(requirement=REQ)])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown allocator 'bandit9'"):
        BanditAllocationCallback(allocator="bandit9", requirement=REQ)
    with pytest.raises(ValueError, match="sums to 1.5"):
        BanditAllocationCallback(requirement={"math": 1.0, "code": 0.5})
    with pytest.raises(ValueError, match="'math'.*>= 0"):
        BanditAllocationCallback(requirement={"math": -0.5, "code": 1.5})


def test_requirement_is_inferred_from_a_task_card_with_an_explanation():
    from types import SimpleNamespace

    from read_lightning.capabilities import DEFAULT_CAPABILITIES

    bandit = BanditAllocationCallback(task_card="arith_word", requirement_method="card")
    trainer = SimpleNamespace(datamodule=SimpleNamespace(teacher=None), callbacks=[])
    vector = bandit._infer_requirement(trainer, list(DEFAULT_CAPABILITIES))
    assert vector["math"] == pytest.approx(0.5) and abs(sum(vector.values()) - 1) < 1e-9
    assert bandit.requirement_explanation.startswith("card")
    with pytest.raises(ValueError, match="no requirement vector"):
        BanditAllocationCallback()._infer_requirement(trainer, list(DEFAULT_CAPABILITIES))
    with pytest.raises(ValueError, match="unknown requirement_method 'psychic'"):
        BanditAllocationCallback(requirement_method="psychic")
