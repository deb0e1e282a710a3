"""A corrupt JSONL row is reported at its file, line and true column, with the row itself."""

from __future__ import annotations

import pytest

from read_lightning.core.jsonl import read_json, read_jsonl


def test_a_row_missing_its_closing_brace_is_reported_where_it_ends(tmp_path):
    path = tmp_path / "rows.jsonl"
    row = '{"prompt": "x", "answer": "y"'
    path.write_text('{"a": 1}\n' + row + "\n")
    with pytest.raises(ValueError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: corrupt JSONL row")
    assert f"at column {len(row) + 1}, where the row ends" in message  # not "column 1" of the next line
    assert row in message


def test_a_bad_value_is_reported_at_its_column_and_a_long_row_is_cut_around_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    row = '{"a": "' + "x" * 200 + '", "b": tru}'
    path.write_text(row + "\r\n")
    with pytest.raises(ValueError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert f"{path}:1: corrupt JSONL row (Expecting value at column {row.index('tru') + 1})" in message
    assert '"b": tru}' in message and message.count("x") < 80 and "..." in message


def test_a_json_document_error_names_line_and_column(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(ValueError, match=r"summary\.json: not valid JSON \(Expecting value at line 4, column 1\)"):
        read_json(path)
