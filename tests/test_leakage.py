"""Leakage: prompt normalisation, hash files from evaluation JSONL, the CLI entry, the filter."""

from __future__ import annotations

import json

import pytest

from read_lightning.prompts.leakage import (
    LeakageFilter,
    build_hash_set,
    iter_prompts,
    leakage_main,
    load_hash_set,
    normalize_prompt,
    prompt_hash,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 2+2?", "  what IS 2+2 "),
        ("Translate:\n\tgood   morning.", "translate: good morning"),
        ("\u201cQuoted prompt\u201d", "quoted prompt"),
        ("\uff37\uff48\uff41\uff54 is this", "what is this"),  # full-width letters (NFKC)
        ("STRASSE", "stra\u00dfe"),  # casefold
    ],
)
def test_normalisation_ignores_case_spacing_and_edge_punctuation(a, b):
    assert normalize_prompt(a) == normalize_prompt(b)
    assert prompt_hash(a) == prompt_hash(b)


def test_normalisation_keeps_inner_content():
    assert prompt_hash("What is 2+2?") != prompt_hash("What is 2-2?")
    assert prompt_hash("a b") != prompt_hash("ab")
    assert normalize_prompt("...Hello,   World!!!") == "hello, world"
    assert len(prompt_hash("x")) == 64


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_build_hash_set_auto_detects_fields_and_writes_a_file(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"question": "Capital of Spain?", "answer": "Madrid"}, {"prompt": "Add 2 and 3"}])
    b = _write(
        tmp_path / "b.jsonl",
        ["", {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "Hi there"}]}, {"input": "Sort 3 1 2", "text": "ignored"}],
    )
    out = tmp_path / "sub" / "hashes.txt"
    hashes = build_hash_set([a, b], out_path=out)
    assert hashes == {prompt_hash(t) for t in ("capital of spain", "add 2 and 3", "hi there", "sort 3 1 2")}
    assert load_hash_set(out) == hashes
    assert out.read_text().splitlines() == sorted(hashes)
    c = _write(tmp_path / "c.jsonl", [{"input": "x", "text": "y"}])
    assert list(iter_prompts(c)) == ["x"] and list(iter_prompts(c, field="text")) == ["y"]
    alpaca = _write(tmp_path / "d.jsonl", [{"instruction": "Name three primes.", "input": "", "output": "2, 3, 5"}])
    assert list(iter_prompts(alpaca)) == ["Name three primes."]  # an empty input is no prompt


def test_corrupt_rows_name_file_and_line(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"prompt": "fine"}, '{"prompt": "broken'])
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: corrupt JSONL row"):
        build_hash_set(bad)
    nofield = _write(tmp_path / "nofield.jsonl", [{"prompt": "ok"}, {"answer": 4}])
    with pytest.raises(ValueError, match=r"nofield\.jsonl:2: no text field .*keys \['answer'\]"):
        build_hash_set([nofield])
    with pytest.raises(ValueError, match=r"nofield\.jsonl:1: no text field 'question'"):
        build_hash_set([nofield], field="question")
    notobj = _write(tmp_path / "list.jsonl", ["[1, 2]"])
    with pytest.raises(ValueError, match=r"list\.jsonl:1: expected a JSON object"):
        build_hash_set([notobj])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        build_hash_set([tmp_path / "missing.jsonl"])
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(prompt_hash("a") + "\n# comment\n\nnot-a-hash\n")
    with pytest.raises(ValueError, match=r"hashes\.txt:4: not a SHA-256"):
        load_hash_set(hashes)


def test_leakage_main_writes_hashes_and_reports_errors(tmp_path, capsys):
    src = _write(tmp_path / "eval.jsonl", [{"problem": "Solve x + 1 = 2"}, {"problem": "Solve x + 2 = 5"}])
    out = tmp_path / "h.txt"
    assert leakage_main([str(src), "--out", str(out)]) == 0
    assert load_hash_set(out) == {prompt_hash("Solve x + 1 = 2"), prompt_hash("solve x + 2 = 5")}
    assert "wrote 2 prompt hashes" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.jsonl", ["{nope"])
    assert leakage_main([str(bad), "--out", str(tmp_path / "x.txt")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert not (tmp_path / "x.txt").exists()  # nothing half-written
    with pytest.raises(SystemExit):
        leakage_main([])  # argparse: files and --out are required


def test_filter_drops_leaked_prompts_and_counts_them(tmp_path):
    flt = LeakageFilter({prompt_hash("What is 2+2?")})
    assert "what is 2+2" in flt and "what is 3+3" not in flt
    assert flt.filter(["What is 2+2?", "What is 3+3?", "WHAT IS 2+2"]) == ["What is 3+3?"]
    assert flt.rejected == 2
    path = tmp_path / "h.txt"
    path.write_text(prompt_hash("x") + "\n")
    assert "X." in LeakageFilter(path)
