"""A writer killed at any moment leaves the previous complete output, never none."""

import json
import subprocess
import sys

import numpy as np

from speechquant.fileio import write_json
from speechquant.store import Store, StoreWriter, Utterance

# Every call that could put the new output in place kills the process instead: the
# moment between removing the old output and publishing the new one, if there is one.
KILLED_WHILE_PUBLISHING = """
import os, pathlib, signal
from speechquant import fileio

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

os.replace = os.rename = pathlib.Path.rename = pathlib.Path.replace = fileio._exchange = die
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_a_file_writer_killed_while_publishing_leaves_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})
    result = run(KILLED_WHILE_PUBLISHING + f"fileio.write_json({str(target)!r}, {{'new': 2}})")
    assert result.returncode == -9
    assert json.loads(target.read_text()) == {"old": 1}


def test_a_writer_killed_mid_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"complete")
    code = f"""
import os, signal
from speechquant.fileio import atomic_path
with atomic_path({str(target)!r}) as temporary:
    temporary.write_bytes(b"half of a new")
    os.kill(os.getpid(), signal.SIGKILL)
"""
    assert run(code).returncode == -9
    assert target.read_bytes() == b"complete"


def test_a_store_writer_killed_while_publishing_leaves_the_previous_store(tmp_path):
    with StoreWriter(tmp_path / "dev", np.float32, (2,), {"kind": "test"}) as writer:
        writer.append(Utterance("old", "a", 0), np.ones((3, 2), np.float32))
    code = (
        KILLED_WHILE_PUBLISHING
        + f"""
import numpy as np
from speechquant.store import StoreWriter, Utterance
with StoreWriter({str(tmp_path / "dev")!r}, np.float32, (2,), {{"kind": "test"}}) as writer:
    writer.append(Utterance("new", "b", 0), np.zeros((5, 2), np.float32))
"""
    )
    assert run(code).returncode == -9
    assert [u.id for u in Store(tmp_path / "dev").utterances] == ["old"]


def test_a_folder_is_replaced_whole(tmp_path):
    for name in ("old", "new"):
        with StoreWriter(tmp_path / "dev", np.float32, (2,), {"kind": name}) as writer:
            writer.append(Utterance(name, "a", 0), np.ones((3, 2), np.float32))
    assert Store(tmp_path / "dev").meta["kind"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev"]  # the old folder went with the scratch
