"""Run work items in fixed shards, each in a fresh process that may crash or hang.

Why: espeak-ng segfaults on a few inputs and its output depends on what the same
process said before. A fresh process per fixed shard makes results independent of the
number of workers; a watcher turns a crash or a hang into a counted failure of one item
instead of a dead or stuck stage. Results come back in item order.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_CONTEXT = multiprocessing.get_context("fork")


@dataclass
class Outcome:
    """What became of one item: ``result`` if it worked, otherwise ``failure`` says why."""

    index: int
    item: Any
    result: Any = None
    failure: str | None = None


def _run_shard(task: Callable[[Any], Any], items: list[Any], connection: multiprocessing.connection.Connection) -> None:
    faulthandler.disable()  # a crash here is expected and reported by the parent, not dumped
    for item in items:
        try:
            connection.send(("ok", task(item)))
        except Exception as error:  # reported per item; the shard goes on
            connection.send(("error", f"{type(error).__name__}: {error}"))
    connection.close()


class _Shard:
    """One shard's items and the process currently working through them."""

    def __init__(self, number: int, first_index: int, items: list[Any]):
        self.number = number
        self.first_index = first_index
        self.items = items
        self.outcomes: list[Outcome] = []
        self.process: Any = None
        self.connection: multiprocessing.connection.Connection | None = None
        self.last_progress = time.monotonic()

    @property
    def done(self) -> bool:
        return len(self.outcomes) == len(self.items)

    def start(self, task: Callable[[Any], Any]) -> None:
        """Start a fresh process on the items that have no outcome yet."""
        receiver, sender = _CONTEXT.Pipe(duplex=False)
        remaining = self.items[len(self.outcomes) :]
        self.process = _CONTEXT.Process(target=_run_shard, args=(task, remaining, sender), daemon=True)
        self.process.start()
        sender.close()
        self.connection = receiver
        self.last_progress = time.monotonic()

    def record(self, result: Any = None, failure: str | None = None) -> None:
        self.last_progress = time.monotonic()
        position = len(self.outcomes)
        self.outcomes.append(Outcome(self.first_index + position, self.items[position], result, failure))

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.process = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_isolated(
    task: Callable[[Any], Any],
    items: Iterator[Any],
    shard_size: int,
    workers: int,
    item_timeout_s: float = 120.0,
) -> Iterator[Outcome]:
    """Yield an Outcome per item, in order; ``items`` may be endless (stop iterating to end).

    ``task`` runs in forked children, so it may use state built lazily per process.
    """
    running: list[_Shard] = []
    finished: dict[int, _Shard] = {}
    next_shard = 0
    next_to_yield = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) < workers:
                shard_items = [item for _, item in zip(range(shard_size), items, strict=False)]
                if not shard_items:
                    exhausted = True
                    break
                shard = _Shard(next_shard, next_shard * shard_size, shard_items)
                shard.start(task)
                running.append(shard)
                next_shard += 1
            while next_to_yield in finished:
                yield from finished.pop(next_to_yield).outcomes
                next_to_yield += 1
            if not running:
                return
            first_deadline = min(shard.last_progress for shard in running) + item_timeout_s
            ready = multiprocessing.connection.wait(
                [shard.connection for shard in running], timeout=max(0.0, first_deadline - time.monotonic())
            )
            for shard in list(running):
                if shard.connection in ready:
                    _receive(shard)
                elif time.monotonic() - shard.last_progress > item_timeout_s:
                    shard.stop()
                    shard.record(failure=f"no result within {item_timeout_s:g} s")
                if shard.process is None:
                    if shard.done:
                        running.remove(shard)
                        finished[shard.number] = shard
                    else:
                        shard.start(task)
    finally:
        for shard in running:
            shard.stop()


def _receive(shard: _Shard) -> None:
    """Take one message, or notice that the process died before finishing its items."""
    assert shard.connection is not None
    try:
        kind, payload = shard.connection.recv()
    except EOFError:
        shard.process.join()
        code = shard.process.exitcode
        shard.stop()
        if not shard.done:
            reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            shard.record(failure=f"worker crashed ({reason})")
        return
    if kind == "ok":
        shard.record(result=payload)
    else:
        shard.record(failure=payload)
    if shard.done:
        shard.stop()
