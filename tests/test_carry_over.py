"""The unchanged files of the last output linked into the new one by threads (flows.publish.CarriedOver):
every file whose digest is the last one's is the very same file in the new output, and one gone from the last
output (deleted by hand) is reported for its writer to write anew, whatever folder it is in."""

from __future__ import annotations

import json

from flows.publish import _CODE, MANIFEST, CarriedOver, layout_fingerprint
from flows.spare_files import SpareFiles, write_into


def _last_output(out, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    manifest = {_CODE: layout_fingerprint()} | {rel: f"d-{rel}" for rel in files}
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_unchanged_files_in_many_folders_are_linked_and_the_ones_gone_are_reported(tmp_path):
    out, staging = tmp_path / "out", tmp_path / ".out.staging-1"
    # 300 folders: more than one linking job's share (64 folders), so several threads take part
    files = {f"sheets/街道/社区{i}/网格员{j}.xlsx": f"{i}-{j}".encode() for i in range(300) for j in range(2)}
    _last_output(out, files)
    gone = {"sheets/街道/社区7/网格员1.xlsx", "sheets/街道/社区150/网格员0.xlsx", "sheets/街道/社区299/网格员1.xlsx"}
    for rel in gone:
        (out / rel).unlink()
    changed = {"sheets/街道/社区8/网格员0.xlsx", "sheets/街道/社区200/网格员1.xlsx"}
    spares = SpareFiles(out)
    spares.take(staging)
    carried = CarriedOver(out, staging, spares)
    try:
        same = {rel: carried.over(rel, "new" if rel in changed else f"d-{rel}") for rel in files}
        linked = carried.link()
        for rel in changed:  # written while the others are linked
            write_into(carried.target(rel), b"changed")
        reported = linked()
    finally:
        carried.close()
    assert {rel for rel, kept in same.items() if not kept} == changed
    assert reported == gone
    for rel, data in files.items():
        if rel in gone:
            assert not (staging / rel).exists()
        elif rel in changed:
            assert (staging / rel).read_bytes() == b"changed"
        else:  # the last output's very file, not a copy
            assert (staging / rel).stat().st_ino == (out / rel).stat().st_ino
            assert (staging / rel).read_bytes() == data
