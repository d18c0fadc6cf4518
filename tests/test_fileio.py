"""A writer killed at any moment leaves the previous complete output, never none."""

import json
import subprocess
import sys

import numpy as np
import pytest

from speechquant.fileio import write_json
from speechquant.store import Store, StoreWriter, Utterance

# The process kills itself at the n-th call that moves a path (``KILL_AT``): wherever a
# writer has a moment between taking the old output away and putting the new one in
# place, one of these calls falls in it.
KILLED_WHILE_PUBLISHING = """
import os, signal
from speechquant import fileio

calls = 0

def counted(move):
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return move(*args, **kwargs)
    return call

os.replace, os.rename = counted(os.replace), counted(os.rename)
fileio._exchange = counted(fileio._exchange)  # the one-step folder swap
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_file_writer_killed_while_publishing_leaves_a_whole_file(tmp_path, kill_at):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})
    result = run(f"KILL_AT = {kill_at}" + KILLED_WHILE_PUBLISHING + f"fileio.write_json({str(target)!r}, {{'new': 2}})")
    assert result.returncode in (0, -9), result.stderr
    assert json.loads(target.read_text()) == ({"old": 1} if result.returncode else {"new": 2})


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


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_store_writer_killed_while_publishing_leaves_a_whole_store(tmp_path, kill_at):
    with StoreWriter(tmp_path / "dev", np.float32, (2,), {"kind": "test"}) as writer:
        writer.append(Utterance("old", "a", 0), np.ones((3, 2), np.float32))
    code = (
        f"KILL_AT = {kill_at}"
        + KILLED_WHILE_PUBLISHING
        + f"""
import numpy as np
from speechquant.store import StoreWriter, Utterance
with StoreWriter({str(tmp_path / "dev")!r}, np.float32, (2,), {{"kind": "test"}}) as writer:
    writer.append(Utterance("new", "b", 0), np.zeros((5, 2), np.float32))
"""
    )
    result = run(code)
    assert result.returncode in (0, -9), result.stderr
    assert [u.id for u in Store(tmp_path / "dev").utterances] == (["old"] if result.returncode else ["new"])


def test_a_folder_is_replaced_whole(tmp_path):
    for name in ("old", "new"):
        with StoreWriter(tmp_path / "dev", np.float32, (2,), {"kind": name}) as writer:
            writer.append(Utterance(name, "a", 0), np.ones((3, 2), np.float32))
    assert Store(tmp_path / "dev").meta["kind"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev"]  # the old folder went with the scratch
