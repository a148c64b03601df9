"""The unchanged files linked from the last output by a process of their own (flows.bulk_links)."""

from __future__ import annotations

import os

import pytest

from flows.bulk_links import link_all


def test_links_are_made_the_empty_files_replaced_and_the_gone_sources_named(tmp_path):
    last, new = tmp_path / "last", tmp_path / "new"
    (last / "街道").mkdir(parents=True)
    (new / "街道").mkdir(parents=True)
    for name in ("a.xlsx", "b 工作簿.xlsx"):
        (last / "街道" / name).write_bytes(name.encode())
    (new / "街道" / "b 工作簿.xlsx").write_bytes(b"")  # the pool's empty file, removed first
    gone = link_all([(str(last / "街道" / "a.xlsx"), str(new / "街道" / "a.xlsx"), False),
                     (str(last / "街道" / "gone.xlsx"), str(new / "街道" / "gone.xlsx"), False),
                     (str(last / "街道" / "b 工作簿.xlsx"), str(new / "街道" / "b 工作簿.xlsx"), True)])
    assert gone == {1} and not (new / "街道" / "gone.xlsx").exists()
    for name in ("a.xlsx", "b 工作簿.xlsx"):
        assert (new / "街道" / name).read_bytes() == name.encode()
        assert os.stat(new / "街道" / name).st_ino == os.stat(last / "街道" / name).st_ino
    assert link_all([]) == set()
    # A target already there (not the pool's, so not to be removed) is the run's failure, not a file to rewrite.
    with pytest.raises(OSError, match="linking 1 unchanged files"):
        link_all([(str(last / "街道" / "a.xlsx"), str(new / "街道" / "a.xlsx"), False)])
