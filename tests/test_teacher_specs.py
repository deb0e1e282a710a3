"""The teacher as a spec (``data.teacher: {class_path, init_args}``): each spec builds its teacher
with the run's seed and sampling, a bad spec is refused before any model loads, and a recipe in
the spec form round-trips through ``--print_config``."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import yaml

from read_lightning.cli import lightning_main, main
from read_lightning.teachers import HFTeacherSpec, HTTPTeacherSpec, TeacherSpec, VLLMTeacherSpec
from read_lightning.teachers.generation import HFTeacher, HTTPTeacher
from read_lightning.training.data import CapabilityDataModule

ROOT = Path(__file__).parent.parent
HTTP_RECIPE = ROOT / "recipes" / "smollm2-135m-http.yaml"
SAMPLING = dict(temperature=0.7, top_p=0.8, max_new_tokens=24, seed=5)


@pytest.fixture()
def teacher_dir(tmp_path, tiny_model, tiny_tokenizer):
    tiny_model.save_pretrained(tmp_path / "teacher")
    tiny_tokenizer.save_pretrained(tmp_path / "teacher")
    return str(tmp_path / "teacher")


def _dm(teacher, **kw) -> CapabilityDataModule:
    return CapabilityDataModule(teacher=teacher, budget_tokens=10_000, **SAMPLING, **kw)


def test_an_hf_spec_builds_the_in_process_teacher_with_the_runs_sampling(teacher_dir, tiny_tokenizer):
    dm = _dm(HFTeacherSpec(teacher_dir, batch_size=3, engine="generate")).attach(tokenizer=tiny_tokenizer)
    teacher = dm._build_teacher()
    assert isinstance(teacher, HFTeacher) and teacher.batch_size == 3 and teacher.engine == "generate"
    assert (teacher.seed, teacher.temperature, teacher.top_p, teacher.max_new_tokens) == (5, 0.7, 0.8, 24)
    assert dm.teacher_name == teacher_dir and dm.teacher_backend == "hf"
    assert dm.generation_batch_size == 3  # the planner's prompt-length cache follows the spec's batch


def test_a_vllm_spec_builds_the_engine_with_the_runs_seed_and_sampling(monkeypatch, teacher_dir):
    import read_lightning.teachers.generation as generation

    built = {}

    class FakeVLLM:
        def __init__(self, model, **kw):
            built.update(model=model, **kw)

    monkeypatch.setattr(generation, "VLLMTeacher", FakeVLLM)
    spec = VLLMTeacherSpec(teacher_dir, dtype="bfloat16", engine_kwargs={"tensor_parallel_size": 2})
    assert isinstance(_dm(spec)._build_teacher(), FakeVLLM)
    assert built == {"model": teacher_dir, "dtype": "bfloat16", "tensor_parallel_size": 2,
                     "gpu_memory_utilization": 0.3, **SAMPLING}


def test_an_http_spec_builds_a_client_that_counts_with_the_students_tokenizer(tiny_tokenizer):
    spec = HTTPTeacherSpec("http://127.0.0.1:8000/v1", "served", timeout=7, concurrency=2)
    teacher = _dm(spec).attach(tokenizer=tiny_tokenizer)._build_teacher()
    assert isinstance(teacher, HTTPTeacher) and teacher.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert (teacher.model, teacher.timeout, teacher.concurrency, teacher.tokenizer) == ("served", 7.0, 2, tiny_tokenizer)
    assert (teacher.seed, teacher.temperature, teacher.top_p, teacher.max_new_tokens) == (5, 0.7, 0.8, 24)


def test_a_spec_is_a_small_picklable_value():
    spec = HTTPTeacherSpec("http://h:1", "m")
    assert pickle.loads(pickle.dumps(spec)) == spec and "url='http://h:1'" in repr(spec)
    assert isinstance(spec, TeacherSpec) and not spec.in_process and HFTeacherSpec("m").in_process


@pytest.mark.parametrize(("make", "message"), [
    (lambda: HTTPTeacherSpec("127.0.0.1:8000", "m"), r"url must start with http:// or https://, got '127.0.0.1:8000'"),
    (lambda: HTTPTeacherSpec("http://h", "m", timeout=0), r"HTTPTeacherSpec timeout must be .*got 0"),
    (lambda: HTTPTeacherSpec("http://h", ""), r"HTTPTeacherSpec model must name a model, got ''"),
    (lambda: HFTeacherSpec("m", dtype="float13"), r"unknown dtype 'float13'"),
    (lambda: HFTeacherSpec("m", engine="fast"), r"engine 'fast' is not one of"),
    (lambda: HFTeacherSpec("m", batch_size=0), r"HFTeacherSpec batch_size must be"),
    (lambda: VLLMTeacherSpec("m", engine_kwargs={"temperature": 0.0}),
     r"engine_kwargs sets 'temperature'=0.0; use data.temperature instead"),
    (lambda: VLLMTeacherSpec("m", engine_kwargs={"dtype": "half"}),
     r"sets 'dtype'='half'; use data.teacher.init_args.dtype instead"),
])
def test_a_bad_spec_value_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("option", [{"teacher_backend": "vllm"}, {"teacher_url": "http://h"},
                                    {"generation_batch_size": 32}, {"teacher_dtype": "bfloat16"}])
def test_a_string_form_option_beside_a_spec_is_refused(option):
    name, value = next(iter(option.items()))
    with pytest.raises(ValueError, match=rf"data.{name}={value!r} configures a teacher named by a string, "
                                         r"but data.teacher is HFTeacherSpec"):
        CapabilityDataModule(teacher=HFTeacherSpec("m"), budget_tokens=10_000, **option)


# --------------------------------------------------------------------------- through read-train fit
def _recipe(tmp_path: Path, spec: dict, **model) -> Path:
    doc = yaml.safe_load(HTTP_RECIPE.read_text())
    doc["data"]["teacher"] = spec
    doc["model"].update(model)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Fail the test if anything loads a model or a tokenizer."""
    import read_lightning.teachers.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    for name in ("load_model", "load_tokenizer", "resolve_model_path"):
        monkeypatch.setattr(models, name, refuse)


def test_a_spec_recipe_round_trips_through_print_config(tmp_path, capsys, no_model_loads):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(HTTP_RECIPE), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    teacher = yaml.safe_load(printed)["data"]["teacher"]
    assert teacher["class_path"] == "read_lightning.teachers.HTTPTeacherSpec"
    assert teacher["init_args"]["url"] == "http://127.0.0.1:8000" and teacher["init_args"]["timeout"] == 60
    again = tmp_path / "printed.yaml"
    again.write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(again), "--print_config"])
    assert capsys.readouterr().out == printed


def test_a_spec_recipe_builds_its_spec_and_names_the_model_once(tmp_path, no_model_loads):
    cli = lightning_main(["--config", str(HTTP_RECIPE), "--trainer.default_root_dir", str(tmp_path),
                          "--trainer.accelerator", "cpu"], run=False)
    spec = cli.datamodule.teacher_spec
    assert spec == HTTPTeacherSpec("http://127.0.0.1:8000", "HuggingFaceTB/SmolLM2-135M-Instruct", timeout=60,
                                   concurrency=8)
    assert cli.model.hparams.teacher == cli.datamodule.teacher_name == spec.model


def test_an_in_process_spec_gives_the_module_its_kd_teacher(tmp_path, no_model_loads):
    path = _recipe(tmp_path, {"class_path": "HFTeacherSpec", "init_args": {"model": "some/model"}}, kd_weight=1.0)
    cli = lightning_main(["--config", str(path), "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.datamodule.teacher_spec, HFTeacherSpec)
    assert cli.model.hparams.teacher == "some/model"


@pytest.mark.parametrize(("teacher", "model", "message"), [
    ({"class_path": "read_lightning.teachers.HTTPTeacherSpec", "init_args": {"url": "http://h", "model": "m",
                                                                             "timeout": -1}},
     {}, r"^read-train: data.teacher: HTTPTeacherSpec timeout must be a number in \(0.0, inf\], got -1.0$"),
    ({"class_path": "read_lightning.teachers.HTTPTeacherSpec", "init_args": {"url": "http://h", "model": "m",
                                                                             "temperature": 0.5}},
     {}, r"HTTPTeacherSpec does not accept 'temperature'.*\n  did you mean 'data.temperature'\?"),
    ({"class_path": "read_lightning.teachers.HTTPTeacherSpec", "init_args": {"url": "http://h", "model": "m"}},
     {"kd_weight": 1.0}, r"model.kd_weight=1.0 needs the teacher's logits in this process, but data.teacher is "
                         r"HTTPTeacherSpec"),
    ({"class_path": "read_lightning.teachers.HFTeacherSpec", "init_args": {"model": "a/b"}},
     {"teacher": "c/d"}, r"model.teacher 'c/d' and data.teacher \(HFTeacherSpec, model 'a/b'\) name two teachers"),
])
def test_a_bad_spec_is_refused_before_any_model_loads(tmp_path, capsys, no_model_loads, teacher, model, message):
    path = _recipe(tmp_path, teacher, **model)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err, flags=re.MULTILINE), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("class_path", "hint"), [
    ("read_lightning.teachers.NoSuchSpec", ""),
    ("HTTPTeacherSpc", " (did you mean 'HTTPTeacherSpec'?)"),
    ("read_lightning.teachers.models.load_model", ""),  # importable, but no TeacherSpec
])
def test_a_class_path_naming_no_teacher_spec_is_one_line_naming_it_and_the_specs(tmp_path, capsys, no_model_loads,
                                                                                 class_path, hint):
    # jsonargparse says it in seven lines of union alternatives, the value in the fifth
    path = _recipe(tmp_path, {"class_path": class_path, "init_args": {"url": "http://h", "model": "m"}})
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"read-train: data.teacher: class_path {class_path!r} in {path} is not a teacher spec{hint}; accepted: "
        "read_lightning.teachers.HFTeacherSpec, read_lightning.teachers.VLLMTeacherSpec, "
        "read_lightning.teachers.HTTPTeacherSpec (or their names alone), a subclass of "
        "read_lightning.teachers.TeacherSpec, or a model name instead of class_path\n")
    assert not (tmp_path / "runs").exists()
