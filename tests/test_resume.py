"""A run killed at any point and resumed with ``read-train fit --ckpt_path last`` ends exactly where
an uninterrupted run ends: the same ledger, the same decisions, the same data, the same student.

Each run is a real ``read-train fit`` process over tiny models saved to disk. This file is also
the launcher of those processes: run as a script, it installs the kill point named by
``READ_KILL_AT`` (``generate:<interval>``, ``train:<global step>``, ``probe:<epoch>`` or
``checkpoint:<epoch>``: after the interval's decision is logged, before it is checkpointed, or
``outputs:0``: after the last checkpoint, while the student and ledger are written) and then
calls the CLI, which SIGKILLs itself there: no cleanup, no exception handler, like a lost node.

Run as ``test_resume.py --serve``, it is a fork server: it imports the CLI once, then forks a
child for each run it is sent, which installs that run's kill point and calls the CLI as above.
The killed and resumed runs go through it (importing Lightning, transformers and lm-eval was
about half of each run's time, and a test makes up to six of them); the uninterrupted run each
test compares against still starts from scratch, so a resumed run is compared across
interpreters too (another hash seed, nothing imported or built before)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
KILLED = -signal.SIGKILL

PROMPTS = {
    "math": ["What is 12 plus 7?", "Add 3 and 4 and 5.", "What is 9 times 6?", "Subtract 8 from 20."],
    "code": ["Write a Python function that returns the sum of a list.", "def add(a, b): fix the bug"],
    "reasoning": ["If all cats are animals and Tom is a cat, is Tom an animal?", "Is 7 larger than 3?"],
}


# The real lm-eval probe, scoring the shipped answers: cheap on tiny models, and its profile (so
# every bandit decision) depends on the student's weights, so a batch trained twice or not at all
# after a resume would change the decisions.
PROBE = {"class_path": "read_lightning.training.callbacks.CapabilityProbeCallback",
         "init_args": {"references": "gold", "limit": 2, "batch_size": 4}}


def _install_kill_point(spec: str) -> None:
    """Patch the named point of the run so that the process SIGKILLs itself there."""
    from read_lightning.training.data import CapabilityDataModule
    from read_lightning.training.module import DistillationModule

    kind, _, at = spec.partition(":")
    at_int = int(at)

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if kind == "generate":  # once the interval's first teacher call is answered: paid for, nothing on disk
        original = CapabilityDataModule._generate_interval

        def generate_interval(self):
            if self.interval == at_int:
                answer = self.teacher.generate

                def dying_generate(prompts, **kw):
                    answer(prompts, **kw)
                    die()

                self.teacher.generate = dying_generate
            return original(self)

        CapabilityDataModule._generate_interval = generate_interval
    elif kind == "train":  # before the optimiser step of a global step, mid-interval
        original_step = DistillationModule.training_step

        def training_step(self, batch, batch_idx):
            if self.trainer.global_step == at_int:
                die()
            return original_step(self, batch, batch_idx)

        DistillationModule.training_step = training_step
    elif kind == "probe":  # in the interval's probe evaluation, before its result is returned
        from read_lightning.training.callbacks import CapabilityProbeCallback

        original_end = CapabilityProbeCallback.on_train_epoch_end

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == at_int:
                evaluate = self.probe.evaluate

                def dying_evaluate(student, tokenizer):
                    evaluate(student, tokenizer)
                    die()

                self.probe.evaluate = dying_evaluate
            return original_end(self, trainer, pl_module)

        CapabilityProbeCallback.on_train_epoch_end = on_train_epoch_end
    elif kind == "checkpoint":  # after the bandit logged its decision, before it was checkpointed
        from lightning.pytorch.callbacks import ModelCheckpoint

        original_save = ModelCheckpoint.on_train_epoch_end

        def checkpoint_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == at_int:
                die()
            return original_save(self, trainer, pl_module)

        ModelCheckpoint.on_train_epoch_end = checkpoint_epoch_end
    elif kind == "outputs":  # the student written, the ledger and summary not yet

        def write_student(self, out, student_state):
            self.student.save_pretrained(out, state_dict=student_state)
            die()

        DistillationModule._write_student = write_student
    else:
        raise ValueError(f"unknown kill point {spec!r}")


# ---------------------------------------------------------------------------------------------- test


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import build_tiny_model, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("resume")
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, num_layers=2)
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"capability": c, "prompt": p}) + "\n"
                               for c, ps in PROMPTS.items() for p in ps))
    return root, prompts


def _config(root: Path, prompts: Path, name: str, kd_weight: float = 0.0, temperature: float = 0.8) -> Path:
    checkpoint = "lightning.pytorch.callbacks.ModelCheckpoint"
    recipe = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root / name), "name": "tiny"}},
            "callbacks": [
                PROBE,
                {"class_path": "read_lightning.training.callbacks.BanditAllocationCallback",
                 "init_args": {"requirement": {"math": 0.6, "code": 0.3, "reasoning": 0.1},
                               "allocator_kwargs": {"warmup": 1}}},
                # Both write checkpoints/last.ckpt: at every interval's end, and after every step
                # (so a kill can resume mid-interval, and a kill in the probe finds the interval's
                # last step checkpointed whatever the plan's step counts).
                {"class_path": checkpoint, "init_args": {"save_last": True, "save_top_k": 0}},
                {"class_path": checkpoint, "init_args": {"save_last": True, "save_top_k": 0,
                                                         "every_n_train_steps": 1}},
            ],
            "enable_checkpointing": True,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
        },
        "model": {"student": str(root / "tiny"), "student_layers": "0", "teacher": str(root / "tiny"),
                  "lr": 1e-3, "warmup_fraction": 0.0, "kd_weight": kd_weight},
        "data": {"capabilities": list(PROMPTS), "budget_tokens": 4800, "num_intervals": 4,
                 "max_tokens_per_batch": 256, "max_length": 64, "max_new_tokens": 16,
                 "generation_batch_size": 4, "prompt_source": str(prompts), "temperature": temperature},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    env.pop("READ_KILL_AT", None)
    return env


def _argv(config: Path, resume: bool) -> list[str]:
    return ["fit", "--config", str(config), *(["--ckpt_path", "last"] if resume else [])]


def _checked(returncode: int, output: str) -> int:
    if returncode not in (0, KILLED):
        raise AssertionError(f"read-train failed ({returncode}):\n{output[-8000:]}")
    return returncode


def _fit(config: Path, kill_at: str | None = None, resume: bool = False) -> int:
    """A run in a Python process of its own, started from scratch (test_ddp's ranks start so too)."""
    env = _env()
    if kill_at:
        env["READ_KILL_AT"] = kill_at
    cmd = [sys.executable, str(Path(__file__).resolve()), *_argv(config, resume)]
    proc = subprocess.run(cmd, env=env, cwd=config.parent, capture_output=True, text=True, timeout=300)
    return _checked(proc.returncode, proc.stderr)


class ForkServer:
    """The test's end of ``test_resume.py --serve``: one request a line, one exit status back."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], env=_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def fit(self, config: Path, kill_at: str | None = None, resume: bool = False) -> int:
        log = config.with_suffix(".log")
        request = {"argv": _argv(config, resume), "cwd": str(config.parent), "kill_at": kill_at, "log": str(log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError(f"the fork server died ({self.proc.wait()})")
        return _checked(json.loads(answer), log.read_text())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server():
    """The fork server for this module's killed and resumed runs."""
    server = ForkServer()
    yield server
    server.close()


def _serve() -> None:
    """Fork a child for each request read from stdin; write its exit status (``-9``: SIGKILLed)."""
    # What every run imports, imported once here (about 8 s); the rest is imported by the child.
    import lm_eval.evaluator  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    import read_lightning.training.callbacks  # noqa: F401
    from read_lightning.cli import main
    from read_lightning.training.data import CapabilityDataModule  # noqa: F401
    from read_lightning.training.module import DistillationModule  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.chdir(request["cwd"])
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                signal.alarm(300)  # subprocess.run's timeout: SIGALRM ends the child
                if request["kill_at"]:
                    _install_kill_point(request["kill_at"])
                sys.argv = [sys.argv[0], *request["argv"]]  # as the command line gives them
                code = main()
            except SystemExit as err:  # as the interpreter would exit: a message is printed, status 1
                code = err.code if isinstance(err.code, int) else int(err.code is not None)
                if err.code is not None and not isinstance(err.code, int):
                    print(err.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


def _outcome(run: Path) -> dict:
    from safetensors.torch import load_file

    generated = {p.name: p.read_text() for p in sorted((run / "generated").iterdir())}
    states = {p.name: json.loads(p.read_text()) for p in sorted((run / "generation_state").iterdir())}
    run_ids = {state.pop("run_id") for state in states.values()}  # a run's own id, so compared apart
    assert len(run_ids) == 1, run_ids  # every interval written by one run, resumed or not
    rows = [json.loads(line) for line in (run / "allocations.jsonl").read_text().splitlines()]
    return {
        "ledger": json.loads((run / "ledger.json").read_text()),
        "allocations": rows,
        "generated": generated,
        "generation_state": states,
        "student": load_file(run / "student" / "model.safetensors"),
        "teacher_states": {p.name: len(load_file(p)) for p in sorted((run / "teacher_states").glob("*.safetensors"))},
    }


def _newest_checkpoint(run: Path) -> dict:
    """Where in its epoch the checkpoint a resume would pick was taken."""
    import torch

    path = max((run / "checkpoints").glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    loop = torch.load(path, weights_only=False, map_location="cpu")["loops"]["fit_loop"]
    progress = loop["epoch_loop.batch_progress"]
    return {"epoch": loop["epoch_progress"]["current"]["processed"], "batches_done": progress["current"]["processed"],
            "last_batch": progress["is_last_batch"],
            "at_batch_end": progress["total"]["processed"] == progress["total"]["completed"] + 1}


def test_killed_and_resumed_run_matches_an_uninterrupted_one(setup, server):
    root, prompts = setup
    assert _fit(_config(root, prompts, "full")) == 0
    full = _outcome(root / "full" / "tiny" / "version_0")

    config = _config(root, prompts, "killed")
    run = root / "killed" / "tiny" / "version_0"
    # Killed once the teacher has answered interval 1's first call (the interval's data is paid
    # for, nothing on disk), mid-way through interval 2's training, after interval 2's decision was
    # logged but not checkpointed, and while interval 3 is probed (after its last step was
    # checkpointed).
    assert server.fit(config, kill_at="generate:1") == KILLED
    assert not (run / "generated" / "interval_001.jsonl").exists() and not (run / "ledger.json").exists()
    assert server.fit(config, kill_at="train:11", resume=True) == KILLED
    # (The kill points' premises are checked, so a change in the plan cannot make them vacuous.)
    newest = _newest_checkpoint(run)
    assert newest["epoch"] == 2 and newest["batches_done"] >= 1 and not newest["last_batch"] and newest["at_batch_end"]
    assert server.fit(config, kill_at="checkpoint:2", resume=True) == KILLED
    assert len((run / "allocations.jsonl").read_text().splitlines()) == 7  # 2 of them after the checkpoint
    assert server.fit(config, kill_at="probe:3", resume=True) == KILLED
    newest = _newest_checkpoint(run)
    assert newest["epoch"] == 3 and newest["last_batch"] and newest["at_batch_end"]
    assert server.fit(config, kill_at="outputs:0", resume=True) == KILLED
    assert not (run / "ledger.json").exists()
    assert server.fit(config, resume=True) == 0  # nothing left to train: it only writes the outputs
    resumed = _outcome(run)
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]  # resumed in place

    assert resumed["ledger"] == full["ledger"]  # no token charged twice, none lost
    assert resumed["ledger"]["spent"] <= 4800
    assert resumed["allocations"] == full["allocations"]  # the same decisions, logged once each
    assert resumed["generated"] == full["generated"]  # the same data
    assert resumed["generation_state"] == full["generation_state"]
    assert resumed["student"].keys() == full["student"].keys()
    for name, tensor in full["student"].items():
        assert (resumed["student"][name] == tensor).all(), name  # trained on each batch once


def test_a_resumed_interval_distils_from_the_teacher_states_saved_with_it(setup, server):
    # Logit KD from the model that generates, greedy (the tiny model's sampled bytes do not
    # re-tokenise, so their rows keep no states): the steps read the states the teacher kept while
    # answering, saved beside each interval; a run killed mid-interval reads them back and ends
    # bit for bit where the uninterrupted one does (the teacher's forward would match them only
    # to float rounding).
    root, prompts = setup
    assert _fit(_config(root, prompts, "kd_full", kd_weight=0.5, temperature=0.0)) == 0
    full = _outcome(root / "kd_full" / "tiny" / "version_0")
    assert len(full["teacher_states"]) == 4 and all(full["teacher_states"].values())

    # a global step inside interval 2, from the uninterrupted run's per-step log
    import csv

    with (root / "kd_full" / "tiny" / "version_0" / "metrics.csv").open() as fh:
        steps = sorted(int(r["step"]) for r in csv.DictReader(fh) if r.get("train/loss") and r["epoch"] == "2")
    assert len(steps) >= 2
    kill = f"train:{steps[1]}"
    config = _config(root, prompts, "kd_killed", kd_weight=0.5, temperature=0.0)
    run = root / "kd_killed" / "tiny" / "version_0"
    assert server.fit(config, kill_at=kill) == KILLED
    newest = _newest_checkpoint(run)
    assert newest["epoch"] == 2 and newest["batches_done"] >= 1 and not newest["last_batch"]
    assert server.fit(config, resume=True) == 0
    resumed = _outcome(run)
    assert resumed["generated"] == full["generated"] and resumed["teacher_states"] == full["teacher_states"]
    assert resumed["allocations"] == full["allocations"]
    for name, tensor in full["student"].items():
        assert (resumed["student"][name] == tensor).all(), name
    # without the file, the resumed interval's teacher runs: the same data, other float rounding
    config = _config(root, prompts, "kd_lost", kd_weight=0.5, temperature=0.0)
    run = root / "kd_lost" / "tiny" / "version_0"
    assert server.fit(config, kill_at=kill) == KILLED
    (run / "teacher_states" / "interval_002.safetensors").unlink()
    assert server.fit(config, resume=True) == 0
    lost = _outcome(run)
    assert lost["generated"] == full["generated"]
    assert any(not (lost["student"][name] == tensor).all() for name, tensor in full["student"].items())


def test_ckpt_path_last_picks_the_newest_version_with_a_last_checkpoint(tmp_path):
    from jsonargparse import Namespace

    from read_lightning.cli import resume_latest_version

    def config(ckpt_path="last", version=None):
        logger = Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                           init_args=Namespace(save_dir=str(tmp_path), name="tiny", version=version))
        return Namespace(ckpt_path=ckpt_path, trainer=Namespace(logger=logger))

    first = config()
    resume_latest_version(first)
    assert first.trainer.logger.init_args.version is None  # nothing to resume: a first run
    for version, files in ((0, ["last.ckpt"]), (1, ["last-v1.ckpt"]), (2, []), (3, ["epoch=0-step=4.ckpt"])):
        (tmp_path / "tiny" / f"version_{version}" / "checkpoints").mkdir(parents=True)
        for name in files:
            (tmp_path / "tiny" / f"version_{version}" / "checkpoints" / name).write_bytes(b"")
    latest = config()
    resume_latest_version(latest)
    assert latest.trainer.logger.init_args.version == 1
    pinned, explicit = config(version=0), config(ckpt_path="runs/x.ckpt")
    resume_latest_version(pinned)
    resume_latest_version(explicit)
    assert pinned.trainer.logger.init_args.version == 0 and explicit.trainer.logger.init_args.version is None

    # a logger named "" or null keeps its runs in save_dir/version_N itself
    (tmp_path / "version_4" / "checkpoints").mkdir(parents=True)
    (tmp_path / "version_4" / "checkpoints" / "last.ckpt").touch()
    for name in ("", None):
        unnamed = config()
        unnamed.trainer.logger.init_args.name = name
        resume_latest_version(unnamed)
        assert unnamed.trainer.logger.init_args.version == 4


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
        os._exit(0)  # nothing to flush or close: skip the interpreter's teardown (2 s of torch)
    if os.environ.get("READ_KILL_AT"):
        _install_kill_point(os.environ["READ_KILL_AT"])
    from read_lightning.cli import main

    sys.exit(main())
