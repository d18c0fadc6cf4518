import ctypes
import time

from speechquant.corpus.isolation import run_isolated


def flaky(item: int) -> int:
    if item == 3:
        ctypes.string_at(0)  # segfault, as espeak-ng does on some inputs
    if item == 5:
        time.sleep(60)  # hang
    if item == 7:
        raise ValueError("bad item")
    return item * 10


def test_crash_hang_and_error_each_cost_one_item_and_order_is_kept():
    outcomes = list(run_isolated(flaky, iter(range(12)), shard_size=4, workers=2, item_timeout_s=2))
    assert [o.index for o in outcomes] == list(range(12))
    failures = {o.item: o.failure for o in outcomes if o.failure}
    assert set(failures) == {3, 5, 7}
    assert "signal 11" in failures[3]
    assert "no result within" in failures[5]
    assert "ValueError: bad item" in failures[7]
    assert [o.result for o in outcomes if not o.failure] == [i * 10 for i in range(12) if i not in (3, 5, 7)]


def test_endless_input_stops_when_the_consumer_stops():
    outcomes = run_isolated(lambda x: x, iter(range(10**9)), shard_size=8, workers=2)
    assert [next(outcomes).result for _ in range(20)] == list(range(20))
    outcomes.close()
