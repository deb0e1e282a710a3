"""Files a resume or a cache reads back are replaced whole, also when several writers replace one at once."""

from __future__ import annotations

import threading

from read_lightning.core.jsonl import write_text_atomic


def test_writers_of_one_file_at_once_each_replace_it_whole(tmp_path):
    # Two runs of a comparison fill one cache (the probes' teacher references): with one shared
    # temporary name, one writer renamed the other's file away and the other failed (ENOENT).
    path, errors = tmp_path / "cache" / "references.jsonl", []
    texts = [f"{k}\n" * (1000 + 37 * k) for k in range(4)]

    def write(text: str) -> None:
        try:
            for _ in range(150):
                write_text_atomic(path, text)
        except OSError as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text() in texts  # one writer's whole file
    assert [p.name for p in path.parent.iterdir()] == ["references.jsonl"]  # no temporary left behind
