"""MixtureDataModule: a user's own per-capability datasets, re-weighted by the bandit, no teacher."""

import json

import lightning as L
import pytest
import torch
from conftest import build_tiny_model
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from read_lightning.training.batches import IGNORE_INDEX, Example
from read_lightning.training.callbacks import BanditAllocationCallback
from read_lightning.training.mixture import MixtureDataModule

REQ = {"math": 0.7, "code": 0.3}


def dataset(capability, n, length, first_token):
    """``n`` distinct examples of ``length`` tokens: half prompt (unlabelled), half answer."""
    rows = []
    for i in range(n):
        ids = [first_token + (i + j) % 50 for j in range(length)]
        labels = [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]
        # one source of dicts with tensors, one of Examples: both kinds a user may bring
        rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)} if capability == "math"
                    else Example(ids, labels, capability))
    return rows


def sources():
    return {"math": dataset("math", 30, 8, 10), "code": dataset("code", 20, 20, 100)}


def make(**kw):
    args = dict(budget_tokens=2400, num_intervals=4, max_tokens_per_batch=64, max_length=32, pad_id=3)
    args.update(kw)
    return MixtureDataModule(sources(), **args)


class UserModule(L.LightningModule):
    """A user's own module: plain cross-entropy on the batches; remembers what it trained on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["input_ids"].tolist())
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class TokenProbe(Callback):
    """A probe double: logs probe/<capability>, a score growing with the tokens trained on it."""

    def _scores(self, trainer):
        return {c: 10.0 + trainer.datamodule.ledger.training.get(c, 0) / 40.0 for c in REQ}

    def on_fit_start(self, trainer, pl_module):
        self.latest_profile = self._scores(trainer)  # Lightning allows no logging at fit start

    def on_train_epoch_start(self, trainer, pl_module):
        self.latest_profile = None  # from here on the bandit reads the logged probe/<capability>

    def on_train_epoch_end(self, trainer, pl_module):
        for cap, score in self._scores(trainer).items():
            pl_module.log(f"probe/{cap}", score)


class ChargedPerInterval(Callback):
    """Records each interval's charged training tokens per capability (the ledger's view)."""

    def __init__(self):
        self.intervals, self._before = [], {}

    def on_train_epoch_start(self, trainer, pl_module):
        self._before = dict(trainer.datamodule.ledger.training)

    def on_train_epoch_end(self, trainer, pl_module):
        after = trainer.datamodule.ledger.training
        self.intervals.append({c: after.get(c, 0) - self._before.get(c, 0) for c in REQ})


class Killed(Exception):
    pass


class CheckpointThenDie(Callback):
    def __init__(self, path, epoch, batch_idx):
        self.path, self.epoch, self.batch_idx = path, epoch, batch_idx

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch_idx:
            self.seen = list(pl_module.seen)
            trainer.save_checkpoint(self.path)
            raise Killed


def fit(tok, root, callbacks, ckpt_path=None, max_epochs=None):
    dm = make()
    module = UserModule(build_tiny_model(tok))
    trainer = L.Trainer(max_epochs=max_epochs or dm.num_intervals, reload_dataloaders_every_n_epochs=1,
                        default_root_dir=str(root),
                        logger=L.pytorch.loggers.CSVLogger(str(root), version=0), callbacks=callbacks,
                        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return dm, module


def bandit():
    # random: a fresh (seeded) mixture every interval, so every interval tests a different one
    return BanditAllocationCallback(allocator="random", requirement=REQ, seed=1)


def log_rows(root, event):
    path = root / "lightning_logs" / "version_0" / "allocations.jsonl"
    return [r for r in map(json.loads, open(path)) if r["event"] == event]


def test_the_bandit_reweights_a_users_own_data_without_a_teacher(tiny_tokenizer, tmp_path, one_torch_thread):
    charged = ChargedPerInterval()
    dm, _ = fit(tiny_tokenizer, tmp_path, [TokenProbe(), bandit(), charged])
    chosen = [r["mixture"] for r in log_rows(tmp_path, "select")]
    assert len(chosen) == 4 and len({round(m["math"], 3) for m in chosen}) == 4  # the mixture did change
    for mixture, tokens in zip(chosen, charged.intervals):
        total = sum(tokens.values())
        # Each interval trained on the mixture chosen before it: token shares within one example
        # (20 tokens of ~600) of the weights.
        assert total > 0 and all(abs(tokens[c] / total - mixture[c]) < 0.05 for c in REQ), (mixture, tokens)
    observed = [r["trained_mixture"] for r in log_rows(tmp_path, "observe")]
    assert [pytest.approx(o, abs=0.05) for o in observed] == [dict(sorted(m.items())) for m in chosen]
    # The budget: never exceeded, nearly all of it trained on, nothing charged for generation.
    assert dm.ledger.budget - dm.max_length < dm.ledger.spent <= dm.ledger.budget
    assert dm.ledger.summary()["generation"] == 0 and dm.budget_exhausted


def test_both_data_modules_stream_through_one_implementation():
    # The ledger, the mixture, the batching, the charge and the checkpoint live in the stream;
    # a data module says only where an interval's examples come from.
    from read_lightning.training.data import CapabilityDataModule
    from read_lightning.training.stream import BudgetStreamDataModule

    shared = ["set_mixture_weights", "budget_exhausted", "training_progress", "on_before_batch_transfer",
              "_charge_step", "_interval_budget", "_world", "state_dict", "load_state_dict"]
    for cls in (MixtureDataModule, CapabilityDataModule):
        assert issubclass(cls, BudgetStreamDataModule) and not set(shared) & set(vars(cls)), cls


def test_resuming_mid_interval_continues_the_same_stream(tiny_tokenizer, tmp_path, one_torch_thread):
    full_dm, full = fit(tiny_tokenizer, tmp_path / "full", [TokenProbe(), bandit()])
    part, ckpt = tmp_path / "part", tmp_path / "part" / "mid.ckpt"
    die = CheckpointThenDie(ckpt, epoch=2, batch_idx=2)
    with pytest.raises(Killed):
        fit(tiny_tokenizer, part, [TokenProbe(), bandit(), die])
    part_dm, resumed = fit(tiny_tokenizer, part, [TokenProbe(), bandit()], ckpt_path=str(ckpt))
    # Before the kill and after the resume, the run trains on exactly the full run's batches.
    assert resumed.seen and die.seen + resumed.seen == full.seen
    full_choices = [r["mixture"] for r in log_rows(tmp_path / "full", "select")]
    assert [r["mixture"] for r in log_rows(part, "select")] == full_choices
    assert part_dm.ledger.summary() == full_dm.ledger.summary()


def test_resuming_a_run_that_spent_its_budget_trains_nothing_more(tiny_tokenizer, tmp_path, one_torch_thread):
    # the stop is not checkpointed: with max_epochs above num_intervals a resumed finished run
    # starts one more epoch, which must draw nothing
    def callbacks():
        return [TokenProbe(), bandit(), ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)]

    first, _ = fit(tiny_tokenizer, tmp_path, callbacks(), max_epochs=10)
    events = (tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl").read_text()
    resumed, module = fit(tiny_tokenizer, tmp_path, callbacks(), max_epochs=10,
                          ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert first.budget_exhausted and module.seen == []
    assert resumed.ledger.summary() == first.ledger.summary()
    assert (tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl").read_text() == events


def test_a_spent_budget_draws_nothing_even_where_a_short_example_would_fit():
    dm = make(mixture={"math": 1.0})
    dm.ledger.charge_training("math", dm.ledger.budget - 20)  # 20 left: under max_length, over one math example
    dm.interval = dm.num_intervals - 1  # the last interval, whose share is all that is left
    assert dm.budget_exhausted and len(dm.train_dataloader()) == 0 and dm.ledger.remaining == 20


def test_sources_are_read_without_replacement_then_reshuffled():
    dm = make(budget_tokens=8 * 30 * 2 * 4, mixture={"math": 1.0}, max_length=8)
    first, _ = dm._draw(8 * 30, dm.mixture)
    second, _ = dm._draw(8 * 30, dm.mixture)
    key = [tuple(e.input_ids) for e in first]
    assert len(set(key)) == 30  # every math example once
    assert sorted(key) == sorted(tuple(e.input_ids) for e in second) and key != [tuple(e.input_ids) for e in second]
    assert all(e.capability == "math" for e in first)


def test_state_dict_round_trips_and_refuses_a_foreign_state():
    dm = make()
    dm.set_mixture_weights({"math": 0.25, "code": 0.75})
    dm.train_dataloader()
    dm.ledger.charge_training("code", 40)
    other = make()
    other.load_state_dict(dm.state_dict())
    assert other.state_dict() == dm.state_dict()
    with pytest.raises(ValueError, match=r"cursors.*'math'"):
        other.load_state_dict({**dm.state_dict(), "cursors": {"math": [0, 99], "code": [0, 0]}})


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda: make().set_mixture_weights({"math": 0.5, "poetry": 0.5}), ValueError, r"unknown .*'poetry'"),
    (lambda: MixtureDataModule({"math": [], "code": sources()["code"]}, budget_tokens=2400), ValueError,
     "source 'math' is empty"),
    (lambda: make(budget_tokens=100), ValueError, r"budget_tokens=100 is too small .* max_length=32"),
    (lambda: make(max_length=128), ValueError, "max_length=128 does not fit"),
    (lambda: MixtureDataModule({}, budget_tokens=2400), ValueError, "non-empty mapping"),
    (lambda: MixtureDataModule({"math": iter([1])}, budget_tokens=2400), TypeError, "source 'math' must be a map-style"),
])
def test_bad_configuration_is_named(change, error, match):
    with pytest.raises(error, match=match):
        change()


@pytest.mark.parametrize(("item", "match"), [
    ({"input_ids": [1, 2]}, "must be an Example or a mapping"),
    ({"input_ids": [1, 2], "labels": [1]}, "2 input_ids and 1 labels"),
    ({"input_ids": [1.5], "labels": [1]}, "integer token ids"),
    (Example([1], [1], "code"), "capability 'code', not 'math'"),
])
def test_a_bad_example_is_named_with_its_source_and_index(item, match):
    dm = MixtureDataModule({"math": [item]}, budget_tokens=2400, max_length=32, max_tokens_per_batch=64)
    with pytest.raises(ValueError, match=rf"source 'math' item 0.*{match}"):
        dm.train_dataloader()


def test_an_example_longer_than_max_length_is_cut_to_it():
    long = {"input_ids": list(range(5, 45)), "labels": list(range(5, 45))}
    dm = MixtureDataModule({"math": [long]}, budget_tokens=2400, max_length=32, max_tokens_per_batch=64)
    batch = next(iter(dm.train_dataloader()))
    # (the one example is read again and again: each pass over a source reshuffles it)
    assert all(row == list(range(5, 37)) for row in batch["input_ids"].tolist() + batch["labels"].tolist())
    assert dm.interval_stats["truncated"] == dm.interval_stats["examples"] > 1
