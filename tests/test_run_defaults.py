"""What a user sees and keeps from ``read-train fit`` with a recipe that leaves the trainer's
progress bar, model summary and checkpointing to their defaults: a real run over tiny models,
as a command whose output is not a terminal (CI, ``nohup``, a cluster job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
PROMPTS = {
    "math": ["What is 12 plus 7?", "Add 3 and 4 and 5.", "What is 9 times 6?"],
    "code": ["Write a Python function that returns the sum of a list.", "def add(a, b): fix the bug"],
}


def test_a_default_run_keeps_one_checkpoint_logs_its_phases_and_shows_no_noise(tmp_path):
    from conftest import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    build_tiny_model(tok, num_layers=2).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"capability": c, "prompt": p}) + "\n"
                               for c, ps in PROMPTS.items() for p in ps))
    recipe = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                       "init_args": {"save_dir": "runs", "name": "tiny"}},
            # no ModelCheckpoint among the callbacks (none at all: a fixed uniform mixture), and the
            # progress bar, model summary and checkpointing left on
        },
        "model": {"student": str(tmp_path / "tiny"), "student_layers": "0", "teacher": str(tmp_path / "tiny"),
                  "lr": 1e-3, "warmup_fraction": 0.0},
        "data": {"capabilities": list(PROMPTS), "budget_tokens": 2400, "num_intervals": 2,
                 "max_tokens_per_batch": 256, "max_length": 64, "max_new_tokens": 16,
                 "generation_batch_size": 4, "prompt_source": str(prompts)},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "read_lightning.cli", "fit", "--config", "recipe.yaml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "tiny" / "version_0"

    # disk: one resumable checkpoint, not a best-so-far copy beside it
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    # no placeholder hp_metric in TensorBoard
    events = list(run.glob("events.out.tfevents.*"))
    assert events and not any(b"hp_metric" in p.read_bytes() for p in events)
    # no noise on the screen: no FLOPs of 0, no version number in the progress bar
    shown = done.stdout + done.stderr
    assert "FLOPs" not in shown and "Flops" not in shown and "v_num" not in shown
    assert "Total params" in shown  # the model summary itself is still there
    # without a terminal, each interval's teacher generation says what it did, with its rate
    lines = [ln for ln in done.stderr.splitlines() if "teacher generation: done," in ln]
    assert [ln.split(":")[0] for ln in lines] == ["interval 0", "interval 1"], done.stderr[-3000:]
    assert all("answers" in ln and "tok/s" in ln for ln in lines)
