import numpy as np
import pytest

from speechquant.store import Store, StoreWriter, Utterance


def write_store(path, rows_list, dtype=np.float32, row_shape=(3,)):
    with StoreWriter(path, dtype, row_shape, {"kind": "test"}) as writer:
        for index, rows in enumerate(rows_list):
            writer.append(Utterance(f"u{index}", f"text {index}", 0, {"n": index}), rows)


def test_round_trip_is_memory_mapped_and_exact(tmp_path):
    rng = np.random.default_rng(0)
    rows_list = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 0, 7)]
    write_store(tmp_path / "s", rows_list)
    store = Store(tmp_path / "s")
    assert len(store) == 3
    assert isinstance(store.data, np.memmap)
    for index, rows in enumerate(rows_list):
        np.testing.assert_array_equal(store[index], rows)
    assert [u.n_frames for u in store.utterances] == [5, 0, 7]
    assert store.utterances[2].source == {"n": 2}
    assert store.meta["utterances"] == 3


def test_one_dimensional_audio_rows(tmp_path):
    write_store(tmp_path / "a", [np.arange(10, dtype=np.int16)], np.int16, ())
    assert Store(tmp_path / "a")[0].tolist() == list(range(10))


def test_failed_write_keeps_the_previous_store(tmp_path):
    write_store(tmp_path / "s", [np.ones((2, 3), np.float32)])
    with pytest.raises(RuntimeError), StoreWriter(tmp_path / "s", np.float32, (3,), {}) as writer:
        writer.append(Utterance("new", "x", 0), np.zeros((4, 3), np.float32))
        raise RuntimeError("killed")
    store = Store(tmp_path / "s")
    assert [u.id for u in store.utterances] == ["u0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary left behind


def test_wrong_row_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match="rows of shape"), StoreWriter(tmp_path / "s", np.float32, (3,), {}) as w:
        w.append(Utterance("u", "x", 0), np.zeros((4, 2), np.float32))


def test_missing_files_are_named(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(FileNotFoundError, match=r"data\.npy"):
        Store(tmp_path / "s")
