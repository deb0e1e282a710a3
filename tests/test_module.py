import json

import lightning as L
import pytest
import torch
from conftest import build_tiny_model
from test_data import make_dm

from read_lightning.training.module import DistillationModule, lr_factor
from read_lightning.training.run_state import RunState


def tiny_run(tok, tmp_path, epochs=3, student=None, teacher=None, precision="32-true", **module_kw):
    dm = make_dm(tok, budget_tokens=2400 * epochs, num_intervals=epochs)
    module = DistillationModule(lr=3e-3, warmup_fraction=0.0, **module_kw).attach(
        student=student or build_tiny_model(tok), tokenizer=tok, teacher=teacher
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        reload_dataloaders_every_n_epochs=1,
        default_root_dir=str(tmp_path),
        logger=L.pytorch.loggers.CSVLogger(str(tmp_path)),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        precision=precision,
    )
    trainer.fit(module, datamodule=dm)
    return trainer, module, dm


def test_training_lowers_the_loss_and_writes_a_loadable_student(tiny_tokenizer, tmp_path):
    trainer, module, dm = tiny_run(tiny_tokenizer, tmp_path)
    rows = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    ce = [float(r.split(",")[header.index("train/ce_loss")]) for r in rows[1:] if r.split(",")[header.index("train/ce_loss")]]
    assert len(ce) > 5 and sum(ce[-3:]) / 3 < 0.7 * sum(ce[:3]) / 3
    assert module.tokens_seen == dm.ledger.summary()["training"]
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(trainer.log_dir + "/student")
    for a, b in zip(saved.parameters(), module.student.parameters()):
        assert torch.equal(a, b.detach())
    ledger = json.loads((tmp_path / "lightning_logs" / "version_0" / "ledger.json").read_text())
    assert ledger["spent"] <= ledger["budget"]
    # Where the wall clock went: the teacher's generation is measured, the rest is training.
    time_split = json.loads((tmp_path / "lightning_logs" / "version_0" / "summary.json").read_text())["time"]
    assert set(time_split["seconds"]) == {"generation", "training_and_other"}
    generation = RunState.of(trainer).seconds("generation")  # the run's phase timers are its RunState's
    assert generation > 0 and time_split["seconds"]["generation"] == pytest.approx(generation, abs=0.01)
    assert sum(time_split["share"].values()) == pytest.approx(1.0, abs=1e-3)


def test_lean_logits_equal_full_forward(tiny_tokenizer):
    from read_lightning.training.batches import collate, encode_example

    model = build_tiny_model(tiny_tokenizer)
    batch = collate(
        [encode_example(tiny_tokenizer, "What is 1+1?", "two", "math", 64),
         encode_example(tiny_tokenizer, "Write code", "def f(): pass", "code", 64)],
        tiny_tokenizer.pad_token_id,
    )
    keep = batch["labels"][:, 1:] != -100
    module = DistillationModule(lean_logits=True)
    lean = module._logits_at(model, batch, keep)
    full = DistillationModule(lean_logits=False)._logits_at(model, batch, keep)
    assert lean.shape == (int(keep.sum()), len(tiny_tokenizer))
    assert torch.allclose(lean, full, atol=1e-5)
    assert module._lean_checked == {id(model): True}  # the lean path is kept for a plain decoder


def test_lean_logits_keep_a_models_own_logit_post_processing(tiny_tokenizer, caplog):
    # Gemma-2 soft-caps its logits inside forward: the lean projection alone would train the
    # student on uncapped logits, so the module notices and uses the full forward for it
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from read_lightning.training.batches import collate, encode_example

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
                          final_logit_softcapping=3.0, pad_token_id=tiny_tokenizer.pad_token_id,
                          eos_token_id=tiny_tokenizer.eos_token_id, bos_token_id=tiny_tokenizer.bos_token_id)
    model = Gemma2ForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)  # logits as large as a trained model's, so capping matters
    batch = collate([encode_example(tiny_tokenizer, "What is 1+1?", "two", "math", 64)], tiny_tokenizer.pad_token_id)
    keep = batch["labels"][:, 1:] != -100
    with caplog.at_level("WARNING", logger="read_lightning.training.module"):
        lean = DistillationModule(lean_logits=True)._logits_at(model, batch, keep)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][keep]
    assert full.abs().max() <= 3.0 and torch.allclose(lean, full, atol=1e-5)
    assert "Gemma2ForCausalLM post-processes its logits" in caplog.text


def test_bf16_mixed_kd_trains_fp32_weights_through_the_fused_loss(tiny_tokenizer, tmp_path):
    # The recipe's CPU precision: autocast bf16 matmuls (the fused loss's projections included),
    # fp32 master weights and loss.
    teacher = build_tiny_model(tiny_tokenizer, num_layers=3, seed=2).requires_grad_(False)
    student = build_tiny_model(tiny_tokenizer)
    before = [p.detach().clone() for p in student.parameters()]
    trainer, module, _ = tiny_run(tiny_tokenizer, tmp_path, epochs=2, student=student, teacher=teacher,
                                  precision="bf16-mixed", kd_weight=1.0, kd_positions="all")
    assert all(p.dtype == torch.float32 for p in module.student.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, module.student.parameters()))
    rows = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    kd = [float(r.split(",")[header.index("train/kd_loss")]) for r in rows[1:] if r.split(",")[header.index("train/kd_loss")]]
    assert all(map(torch.isfinite, torch.tensor(kd))) and sum(kd[-3:]) < sum(kd[:3])


def test_logit_kd_trains_with_a_teacher_in_process(tiny_tokenizer, tmp_path):
    teacher = build_tiny_model(tiny_tokenizer, num_layers=3, seed=2).requires_grad_(False)
    before = [p.clone() for p in teacher.parameters()]
    trainer, module, _ = tiny_run(tiny_tokenizer, tmp_path, epochs=2, teacher=teacher, kd_weight=0.5, divergence="jsd")
    assert "teacher" not in dict(module.named_children())  # frozen, kept out of checkpoints
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    kd = trainer.logged_metrics["train/kd_loss"]
    assert torch.isfinite(kd) and kd > 0


def test_kd_on_every_position_reaches_the_prompt_tokens(tiny_tokenizer, monkeypatch):
    # With kd_positions=all the teacher's distribution is matched on the prompt tokens too: the
    # KD term sees every real position of the batch, CE only the answer.
    from read_lightning.training import module as module_lib
    from read_lightning.training.batches import collate, encode_example

    batch = collate([encode_example(tiny_tokenizer, "What is 1+1? Answer briefly.", "two", "math", 64),
                     encode_example(tiny_tokenizer, "Write code", "def f(): pass", "code", 64)],
                    tiny_tokenizer.pad_token_id)
    seen = {}

    def spy(hidden, weight, targets, teacher_hidden, teacher_weight, **kw):
        seen.update(rows=hidden.shape[0], answer=int((targets != -100).sum()), everywhere=kw["kd_everywhere"])
        return fused(hidden, weight, targets, teacher_hidden, teacher_weight, **kw)

    fused = module_lib.fused_linear_distillation
    monkeypatch.setattr(module_lib, "fused_linear_distillation", spy)
    for positions in ("answer", "all"):
        module = DistillationModule(kd_weight=0.5, kd_positions=positions).attach(
            student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer,
            teacher=build_tiny_model(tiny_tokenizer, seed=2).requires_grad_(False))
        module.log = lambda *a, **k: None
        module.optimizers = lambda: type("O", (), {"param_groups": [{"lr": 0.0}]})()
        module._trainer = type("T", (), {"world_size": 1})()
        module.training_step(batch, 0)
        real = int(batch["attention_mask"].sum()) - batch["attention_mask"].shape[0]  # positions that predict a token
        assert seen["answer"] == int((batch["labels"][:, 1:] != -100).sum())
        assert seen["rows"] == (real if positions == "all" else seen["answer"]) and seen["everywhere"] == (positions == "all")
    with pytest.raises(ValueError, match="kd_positions 'prompt'"):
        DistillationModule(kd_positions="prompt")


def test_kd_rejects_mismatched_vocabularies(tiny_tokenizer):
    module = DistillationModule(kd_weight=0.5)
    module._teacher_tokenizer = type("Tok", (), {"get_vocab": lambda self: {"a": 0}, "__len__": lambda self: 1})()
    with pytest.raises(ValueError, match="share a tokenizer"):
        module.attach(student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer,
                      teacher=build_tiny_model(tiny_tokenizer))


def test_constructor_rejects_bad_values():
    with pytest.raises(ValueError, match="'kl2'"):
        DistillationModule(divergence="kl2")
    with pytest.raises(ValueError, match="kd_weight"):
        DistillationModule(kd_weight=2.0)
    with pytest.raises(ValueError, match="warmup_fraction"):
        DistillationModule(warmup_fraction=1.0)


def test_the_warm_up_spans_its_share_of_the_budget_not_one_step(tiny_tokenizer, tmp_path):
    from test_data import CountingTeacher

    trainer, module, dm = tiny_run(tiny_tokenizer, tmp_path, epochs=1)
    dm._interval_plan, dm.interval_steps = (200, 4), 1  # as if a new interval's first step were done
    # the schedule reads the spread progress, not the fraction spent
    assert module._budget_progress() == dm.training_progress < dm.ledger.fraction_spent
    # an interval whose generation is a third of its cost, warm-up over 20% of the budget: the
    # fraction spent puts the first step at 81% of the peak, the spread progress at about a third
    dm = make_dm(tiny_tokenizer, CountingTeacher(num_tokens=16), budget_tokens=2400 * 2, num_intervals=2)
    factors = []
    for batch in list(dm.train_dataloader()):
        dm.on_before_batch_transfer(batch, 0)
        factors.append(lr_factor(dm.training_progress, 0.2, 0.1))
    assert factors[0] < 0.4 and factors[1] < 0.7 and max(factors) > 0.95


def test_lr_schedule_warms_up_then_decays_to_floor():
    assert lr_factor(0.0, 0.1, 0.1) == pytest.approx(1e-3)
    assert lr_factor(0.05, 0.1, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(1.0, 0.1, 0.1) == pytest.approx(0.1)
    mids = [lr_factor(p, 0.1, 0.1) for p in (0.2, 0.5, 0.8)]
    assert mids == sorted(mids, reverse=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kd_weight": None}, r"kd_weight must be a number in \[0.0, 1.0\], got None"),
        ({"lr": float("nan")}, r"lr must be a number in \(0.0, inf\], got nan"),
        ({"temperature": 0}, r"temperature must be a number in \(0.0, inf\]"),
        ({"betas": (0.9,)}, r"betas must be two numbers"),
        ({"min_lr_ratio": "low"}, r"min_lr_ratio must be a number"),
        ({"dtype": "float13"}, r"unknown dtype 'float13'"),
        ({"student_layers": "1:2:3:4"}, r"layer spec '1:2:3:4'"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillationModule(**kwargs)


@pytest.mark.parametrize("divergence", ["forward_kl", "jsd"])
def test_fused_training_step_matches_the_full_logits(tiny_tokenizer, divergence):
    # The chunked loss (lean_logits) and the full-logit loss give the same loss and gradients.
    from read_lightning.training.batches import collate, encode_example

    batch = collate([encode_example(tiny_tokenizer, "What is 1+1? Answer briefly.", "two", "math", 64),
                     encode_example(tiny_tokenizer, "Write code", "def f(): pass", "code", 64)],
                    tiny_tokenizer.pad_token_id)
    teacher = build_tiny_model(tiny_tokenizer, seed=2).requires_grad_(False)
    results = []
    for lean in (True, False):
        module = DistillationModule(kd_weight=0.5, kd_positions="all", divergence=divergence, lean_logits=lean).attach(
            student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer, teacher=teacher)
        module.log = lambda *a, **k: None
        module.optimizers = lambda: type("O", (), {"param_groups": [{"lr": 0.0}]})()
        module._trainer = type("T", (), {"world_size": 1})()
        assert module._fused(batch, kd=True) is lean
        loss = module.training_step(batch, 0)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in module.student.named_parameters()}))
    (fused_loss, fused_grads), (full_loss, full_grads) = results
    assert torch.allclose(fused_loss, full_loss, atol=1e-5)
    for name, grad in full_grads.items():
        assert torch.allclose(fused_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_teacher_states_kept_from_generation_replace_the_teachers_forward(tiny_tokenizer):
    # Rows whose answers the teacher generated carry its states; the training step takes them
    # instead of running the teacher again, runs it only on the rows without (a row whose answer
    # re-tokenised differently), and gives the loss and gradients the teacher's forward gives.
    from read_lightning.teachers.generation import HFTeacher, TeacherStates
    from read_lightning.training.batches import Example, attach_teacher_states, collate, encode_example

    teacher_model = build_tiny_model(tiny_tokenizer, seed=2).requires_grad_(False)
    torch.manual_seed(0)
    for p in teacher_model.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.3)  # answers that vary token by token
    teacher = HFTeacher(teacher_model, tiny_tokenizer, max_new_tokens=6, temperature=0.0)
    prompts = ["What is 1+1? Answer briefly.", "Write code", "Name a colour."]
    teacher.keep_states = True
    answers = teacher.generate(prompts)
    examples = []
    for prompt, answer in zip(prompts, answers):
        # the row encode_example builds when the decoded answer re-tokenises to the same ids (a
        # random tiny model's bytes often do not: that is the row the planner leaves without states)
        n_prompt = len(answer.states.ids) - answer.num_tokens
        answer_ids = answer.states.ids[n_prompt:] + ([] if answer.finished else [tiny_tokenizer.eos_token_id])
        example = Example(answer.states.ids[:n_prompt] + answer_ids, [-100] * n_prompt + answer_ids, "math")
        assert attach_teacher_states(example, answer.states)
        assert example.teacher_hidden.shape == (len(example) - 1, teacher_model.config.hidden_size)
        examples.append(example)
    assert {a.finished for a in answers} == {False}  # cut rows: their last token's state was kept too
    examples[0].teacher_hidden = None  # as if it had re-tokenised differently
    # states that are not the row's own are refused: other ids, or too few positions
    other = encode_example(tiny_tokenizer, prompts[1], "something else entirely", "math", 64)
    assert not attach_teacher_states(other, answers[1].states)
    short = TeacherStates(ids=examples[2].input_ids, hidden=examples[2].teacher_hidden[:2])
    assert not attach_teacher_states(Example(examples[2].input_ids, examples[2].labels, "math"), short)

    with_states = collate(examples, tiny_tokenizer.pad_token_id)
    assert with_states["teacher_hidden_rows"].tolist() == [e.teacher_hidden is not None for e in examples]
    plain = {k: v for k, v in with_states.items() if not k.startswith("teacher_hidden")}
    fed = []
    teacher_model.model.register_forward_pre_hook(lambda m, args, kwargs: fed.append(kwargs["input_ids"].shape[0]),
                                                  with_kwargs=True)
    results = []
    for batch in (plain, with_states):
        module = DistillationModule(kd_weight=0.5, kd_positions="all").attach(
            student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer, teacher=teacher_model)
        assert module.takes_teacher_states(teacher_model) and not module.takes_teacher_states(build_tiny_model(tiny_tokenizer))
        module.log = lambda *a, **k: None
        module.optimizers = lambda: type("O", (), {"param_groups": [{"lr": 0.0}]})()
        module._trainer = type("T", (), {"world_size": 1})()
        module._fused(batch, kd=True)  # the once-per-model lean check runs the teacher on one row
        fed.clear()
        loss = module.training_step(batch, 0)
        loss.backward()
        results.append((fed[:], loss.detach(), {n: p.grad.clone() for n, p in module.student.named_parameters()}))
    (plain_fed, plain_loss, plain_grads), (kept_fed, kept_loss, kept_grads) = results
    assert plain_fed == [3] and kept_fed == [1]  # the teacher ran on the one row without states
    torch.testing.assert_close(kept_loss, plain_loss, atol=1e-5, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(kept_grads[name], grad, atol=1e-5, rtol=1e-4)


def test_a_run_distils_from_the_states_its_teacher_kept_while_generating(tiny_tokenizer, tmp_path, monkeypatch):
    # The data module asks its teacher to keep states only when the training module distils from
    # that very model; the training steps then read them off the batches.
    from read_lightning.teachers.generation import HFTeacher
    from read_lightning.training import module as module_lib

    carried = []
    original = module_lib.DistillationModule._teacher_hidden_at

    def spy(self, batch, keep):
        rows = batch.get("teacher_hidden_rows")
        carried.append(0 if rows is None else int(rows.sum()))
        return original(self, batch, keep)

    monkeypatch.setattr(module_lib.DistillationModule, "_teacher_hidden_at", spy)
    from read_lightning.training import data as data_lib

    for shared, cap in ((True, data_lib.TEACHER_STATES_MAX_BYTES), (False, data_lib.TEACHER_STATES_MAX_BYTES),
                        (True, 1_000)):
        # (an interval's states over the cap are not kept: the teacher runs in the step)
        monkeypatch.setattr(data_lib, "TEACHER_STATES_MAX_BYTES", cap)
        kept = shared and cap > 1_000
        carried.clear()
        teacher_model = build_tiny_model(tiny_tokenizer, seed=2).requires_grad_(False)
        generator = HFTeacher(teacher_model if shared else build_tiny_model(tiny_tokenizer, seed=2),
                              tiny_tokenizer, batch_size=4, max_new_tokens=16, temperature=0.0)
        dm = make_dm(tiny_tokenizer, teacher=generator, budget_tokens=2400, num_intervals=1)
        module = DistillationModule(lr=3e-3, warmup_fraction=0.0, kd_weight=0.5).attach(
            student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer, teacher=teacher_model)
        L.Trainer(max_epochs=1, default_root_dir=str(tmp_path / f"{shared}{cap}"), logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False).fit(module, datamodule=dm)
        assert generator.keep_states is kept
        assert carried and (sum(carried) > 0) is kept, carried
