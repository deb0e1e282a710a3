import json

import lightning as L
import pytest
import torch
from conftest import build_tiny_model
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from test_data import POOLS, make_dm

from read_lightning.training.callbacks import BanditAllocationCallback
from read_lightning.training.module import DistillationModule

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

    bandit = BanditAllocationCallback(requirement=REQ, allocator_kwargs={"warmup": 1})
    trainer, dm = run(tiny_tokenizer, tmp_path, 4, [LedgerProbe(), bandit, Spy()])
    rows = [json.loads(line) for line in open(tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl")]
    selects = [r for r in rows if r["event"] == "select"]
    observes = [r for r in rows if r["event"] == "observe"]
    assert len(observes) == 4 and len(selects) == 4  # the last interval spends the budget: no 5th choice
    # The mixture each interval trained on is the one chosen before it.
    assert [s["mixture"] for s in selects] == [pytest.approx(m) for m in seen]
    assert all(abs(sum(s["mixture"].values()) - 1) < 1e-6 for s in selects)
    assert all(isinstance(o["reward"], float) and o["cost"] > 0 for o in observes)
    # Each observation names the token shares trained on, a distribution over the mixture's capabilities.
    assert all(abs(sum(o["trained_mixture"].values()) - 1) < 1e-3 and set(o["trained_mixture"]) <= set(REQ)
               for o in observes)
    for key in ("mixture/math", "bandit/reward", "bandit/kappa"):
        assert key in trainer.logged_metrics
    assert dm.ledger.spent <= dm.ledger.budget
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text())
    assert summary["allocation"]["decisions"] == 4
    assert summary["ledger"]["spent"] == dm.ledger.spent


def test_resumed_run_makes_the_same_decisions(tiny_tokenizer, tmp_path):
    kw = {"warmup": 1}
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


def test_a_resumed_runs_phase_seconds_are_the_sum_of_both_processes(tiny_tokenizer, tmp_path, monkeypatch):
    import time

    from read_lightning.training.data import CapabilityDataModule

    spent: list[float] = []  # the seconds of each interval's generation, measured around it
    generate = CapabilityDataModule._generate_interval

    def timed_generation(self):
        start = time.perf_counter()
        try:
            return generate(self)
        finally:
            spent.append(time.perf_counter() - start)

    monkeypatch.setattr(CapabilityDataModule, "_generate_interval", timed_generation)
    ckpt = tmp_path / "ckpt"

    def callbacks():
        return [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs={"warmup": 1}),
                ModelCheckpoint(dirpath=str(ckpt), save_last=True)]

    run(tiny_tokenizer, tmp_path, 4, callbacks(), max_epochs=2, enable_checkpointing=True)
    first = list(spent)
    saved = torch.load(ckpt / "last.ckpt", weights_only=False)["callbacks"]["RunState"]["phase_seconds"]
    assert len(first) == 2 and saved["generation"] == pytest.approx(sum(first), abs=1e-3)
    trainer, _ = run(tiny_tokenizer, tmp_path, 4, callbacks(), ckpt_path=str(ckpt / "last.ckpt"),
                     enable_checkpointing=True)
    second = spent[len(first):]
    assert len(second) == 2  # the resumed process generated the last two intervals
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text())
    assert summary["time"]["seconds"]["generation"] == pytest.approx(sum(first) + sum(second), abs=0.01)
    assert summary["wall_clock_seconds"] >= summary["time"]["seconds"]["generation"]


def test_resuming_a_run_that_spent_its_budget_ends_cleanly(tiny_tokenizer, tmp_path):
    # the stop is not checkpointed: with max_epochs above the intervals (the Trainer's default is
    # 1000) a resumed finished run starts one more epoch, which has no decision to score
    kw = {"warmup": 1}

    def callbacks():
        return [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw),
                ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)]

    _, first = run(tiny_tokenizer, tmp_path, 2, callbacks(), max_epochs=10, enable_checkpointing=True)
    assert first.budget_exhausted
    log = tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl"
    events = log.read_text()
    _, resumed = run(tiny_tokenizer, tmp_path, 2, callbacks(), max_epochs=10, enable_checkpointing=True,
                     ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.ledger.summary() == first.ledger.summary() and log.read_text() == events


def test_resuming_drops_the_rows_logged_after_the_checkpoint_and_keeps_them_if_it_cannot_tell(tmp_path):
    from types import SimpleNamespace

    log_file = tmp_path / "allocations.jsonl"
    callback = BanditAllocationCallback(requirement=REQ, log_file=str(log_file))
    rank_zero = SimpleNamespace(is_global_zero=True)
    for rows_written, kept in ((2, 2), (None, 3)):  # None: a checkpoint saved before the count was kept
        log_file.write_text("".join(f'{{"row": {i}}}\n' for i in range(3)))
        callback._rows_written = rows_written
        callback._truncate_log(rank_zero)
        assert len(log_file.read_text().splitlines()) == kept and callback._rows_written == kept


class UserModule(L.LightningModule):
    """A user's own module: plain cross-entropy, none of DistillationModule's resume hooks."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def training_step(self, batch, batch_idx):
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class Killed(Exception):
    pass


class CheckpointOnLastBatchThenDie(Callback):
    """What ``ModelCheckpoint(every_n_train_steps=...)`` does when its step falls on an interval's
    last batch, followed by the process dying before the interval's end hooks run."""

    def __init__(self, path, epoch):
        self.path, self.epoch = path, epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            trainer.save_checkpoint(self.path)
            raise Killed


@pytest.mark.parametrize("reopen", [True, False])
def test_checkpoint_on_an_intervals_last_batch_resumes_into_its_decision_with_a_users_module(
    tiny_tokenizer, tmp_path, monkeypatch, reopen
):
    kw = {"warmup": 1}

    def fit(root, callbacks, ckpt_path=None):
        dm = make_dm(tiny_tokenizer, budget_tokens=1500 * 3, num_intervals=3)
        trainer = L.Trainer(max_epochs=3, reload_dataloaders_every_n_epochs=1, default_root_dir=str(root),
                            logger=L.pytorch.loggers.CSVLogger(str(root), version=0), callbacks=callbacks,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(UserModule(build_tiny_model(tiny_tokenizer)), datamodule=dm, ckpt_path=ckpt_path)
        return dm

    full_dm = fit(tmp_path / "full", [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw)])
    if not reopen:  # the control: without the fix the interval's end is skipped on resume
        import read_lightning.training.run_state as run_state

        monkeypatch.setattr(run_state, "reopen_interval_end", lambda checkpoint: False)
    part, ckpt = tmp_path / "part", tmp_path / "part" / "interval_1_last_batch.ckpt"
    with pytest.raises(Killed):
        fit(part, [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw),
                   CheckpointOnLastBatchThenDie(ckpt, epoch=1)])
    part_dm = fit(part, [LedgerProbe(), BanditAllocationCallback(requirement=REQ, allocator_kwargs=kw)],
                  ckpt_path=str(ckpt))
    log = "lightning_logs/version_0/allocations.jsonl"
    observed = [json.loads(line) for line in open(part / log) if json.loads(line)["event"] == "observe"]
    if reopen:
        assert [d["mixture"] for d in decisions(part / log)] == [d["mixture"] for d in decisions(tmp_path / "full" / log)]
        assert len(observed) == 3  # interval 1 was probed and observed after the resume
        assert part_dm.ledger.summary() == full_dm.ledger.summary()
    else:
        assert len(observed) == 2  # interval 1 went unobserved: what the fix prevents


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


def test_task_evaluation_scores_fidelity_to_the_teacher_and_feeds_only_fresh_checkpoints(tiny_tokenizer, tmp_path):
    from read_lightning.training.callbacks import TaskEvaluationCallback

    task = TaskEvaluationCallback("arith_word", every_n_epochs=2, references="teacher", limit=12, test_answers=False,
                                  cache_dir=str(tmp_path / "cache"))
    bandit = BanditAllocationCallback(requirement=REQ, allocator_kwargs={"warmup": 1})

    class NotTheTask(Callback):
        """Has the task evaluation's attribute names, fresh every interval; the bandit reads the
        utility of the run's task evaluation (RunState.task), not of a callback with the names."""

        latest_utility = 99.0

        def on_train_epoch_end(self, trainer, pl_module):
            self.evaluated_epoch = trainer.current_epoch

    trainer, dm = run(tiny_tokenizer, tmp_path, 4, [LedgerProbe(), NotTheTask(), task, bandit])
    # the start, then the ends of intervals 1 and 3: each scored against the teacher's answers
    assert [h["epoch"] for h in task.history] == [0, 1, 3]
    assert all(0.0 <= h["utility"] <= 100.0 and 0.0 <= h["agreement"] <= 100.0 for h in task.history)
    assert {"task/utility", "task/agreement"} <= set(trainer.logged_metrics)
    cached = list((tmp_path / "cache" / "task_references").glob("*.jsonl"))
    # one reference per dev row scored, and no test references without test_answers
    assert len(cached) == 1 and len(cached[0].read_text().splitlines()) == 12
    assert not (tmp_path / "cache" / "task_test_references").exists()
    # two development checkpoints reached the allocator, not one per interval with a stale utility
    assert [u for _, u in bandit.allocator.checkpoints] == [task.history[1]["utility"], task.history[2]["utility"]]
    assert task.state_dict()["evaluated_epoch"] == 3
    with pytest.raises(ValueError, match="task references must be 'gold' or 'teacher', got 'oracle'"):
        TaskEvaluationCallback("arith_word", references="oracle")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown allocator 'bandit9'"):
        BanditAllocationCallback(allocator="bandit9", requirement=REQ)
    with pytest.raises(ValueError, match="sums to 1.5"):
        BanditAllocationCallback(requirement={"math": 1.0, "code": 0.5})
    with pytest.raises(ValueError, match="'math'.*>= 0"):
        BanditAllocationCallback(requirement={"math": -0.5, "code": 1.5})


def test_requirement_is_inferred_from_a_task_card_with_an_explanation():
    from types import SimpleNamespace

    from read_lightning.core.capabilities import DEFAULT_CAPABILITIES

    bandit = BanditAllocationCallback(task_card="arith_word", requirement_method="card")
    trainer = SimpleNamespace(datamodule=SimpleNamespace(teacher=None), callbacks=[])
    vector = bandit._infer_requirement(trainer, list(DEFAULT_CAPABILITIES))
    assert vector["math"] == pytest.approx(0.5) and abs(sum(vector.values()) - 1) < 1e-9
    assert bandit.requirement_explanation.startswith("card")
    with pytest.raises(ValueError, match="no requirement vector"):
        BanditAllocationCallback()._infer_requirement(trainer, list(DEFAULT_CAPABILITIES))
    with pytest.raises(ValueError, match="unknown requirement_method 'psychic'"):
        BanditAllocationCallback(requirement_method="psychic")


def test_the_bandit_asks_the_run_state_for_the_task_not_a_callback_with_its_attributes():
    from types import SimpleNamespace

    from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
    from read_lightning.requirement.cards import load_card
    from read_lightning.training.callbacks import TaskEvaluationCallback
    from read_lightning.training.run_state import RunState

    caps = list(DEFAULT_CAPABILITIES)
    # A callback that only has the attribute names (another task's card, a utility) is not the task.
    decoy = SimpleNamespace(card=load_card("fact_extract"), latest_utility=99.0, evaluated_epoch=0)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(teacher=None), callbacks=[decoy], current_epoch=0)
    bandit = BanditAllocationCallback(requirement_method="card")
    with pytest.raises(ValueError, match="no requirement vector"):
        bandit._infer_requirement(trainer, caps)
    task = TaskEvaluationCallback("arith_word", test_answers=False)
    task.setup(trainer, None, "fit")  # attaches itself as the run's task evaluation
    TaskEvaluationCallback("fact_extract", test_answers=False).setup(trainer, None, "fit")  # the first stays
    assert RunState.of(trainer).task is task
    assert bandit._infer_requirement(trainer, caps)["math"] == pytest.approx(0.5)  # arith_word's card
    # A utility counts for the interval it was measured at the end of, and only for it.
    assert task.utility_at(0) is None  # nothing measured yet
    task.latest_utility, task.evaluated_epoch = 40.0, 2
    assert task.utility_at(2) == 40.0 and task.utility_at(3) is None


def test_wall_clock_and_probe_fraction_count_every_process_of_a_resumed_run():
    from read_lightning.training.callbacks import CapabilityProbeCallback
    from read_lightning.training.run_state import RunState

    state = RunState()  # the run's one clock, asked by the module and the callbacks
    # The process before the kill ran 100 s, 40 of them probing.
    state.load_state_dict({"wall_clock_seconds": 100.0, "phase_seconds": {"probes": 40.0}})
    before = state.elapsed()
    saved = state.state_dict()
    assert 100.0 <= before <= saved["wall_clock_seconds"] < 160.0
    probe = CapabilityProbeCallback()
    probe.run_state = state
    # The earlier process's 40 s of probing must not be counted over this process's seconds only
    # (that made the fraction exceed 1 after a resume).
    assert probe._fraction() == pytest.approx(0.4, abs=0.05)
    assert state.state_dict()["wall_clock_seconds"] >= 100.0


def test_one_wall_clock_covers_the_work_callbacks_do_at_fit_start(tiny_tokenizer, tmp_path, monkeypatch):
    # Lightning runs the callbacks' on_fit_start (baseline evaluation, teacher references) before the
    # module's: every clock must start at the first of them, or the run's wall clock misses that work
    # and each evaluation's fraction is taken over a different, shorter total
    import time

    from read_lightning.training.callbacks import TaskEvaluationCallback
    from read_lightning.training.run_state import RunState

    slow = TaskEvaluationCallback._prepare_references

    def prepare(self, trainer):
        time.sleep(1.0)  # the teacher answering the dev split, as slow as it is in a real run
        return slow(self, trainer)

    monkeypatch.setattr(TaskEvaluationCallback, "_prepare_references", prepare)
    task = TaskEvaluationCallback("arith_word", references="teacher", limit=2, test_limit=2, cache_dir=str(tmp_path / "cache"))
    started = time.perf_counter()
    trainer, _ = run(tiny_tokenizer, tmp_path, 1, [task])
    elapsed = time.perf_counter() - started
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text())
    assert task.seconds >= 1.0 and summary["wall_clock_seconds"] >= task.seconds
    assert summary["wall_clock_seconds"] <= elapsed
    fraction = summary["task"]["fraction_of_wall_clock"]
    assert fraction == pytest.approx(task.seconds / summary["wall_clock_seconds"], abs=0.02)
    assert not RunState.of(trainer).clock_running  # cleared for the trainer's next fit


def test_task_evaluation_answers_the_test_split_before_and_after_training(tiny_tokenizer, tmp_path):
    from read_lightning.training.callbacks import TaskEvaluationCallback

    task = TaskEvaluationCallback("arith_word", references="teacher", limit=2, test_limit=5,
                                  cache_dir=str(tmp_path / "cache"))
    trainer, _ = run(tiny_tokenizer, tmp_path, 2, [task])
    before, after = task.answers["before"], task.answers["after"]
    for rates in (before, after):
        assert rates["n"] == 5
        for key in ("agreement", "accuracy", "degenerate"):
            assert 0.0 <= rates[key] <= 100.0
            lo, hi = rates[f"{key}_ci"]
            assert lo <= rates[key] <= hi
        assert rates["usable"] in (True, False)
    # the teacher's test answers are cached apart from its dev references
    test_refs = (tmp_path / "cache" / "task_test_references").glob("*.jsonl")
    assert [len(p.read_text().splitlines()) for p in test_refs] == [5]
    summary = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text()) \
        if (tmp_path / "lightning_logs").exists() else json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["task"]["answers"]["after"]["n"] == 5
    logged = (next(tmp_path.rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "task/test_agreement" in logged and "task/test_degenerate" in logged
    # a resumed state keeps the measurement made before training
    restored = TaskEvaluationCallback("arith_word", references="teacher")
    restored.load_state_dict(task.state_dict())
    assert restored.answers["before"] == before
