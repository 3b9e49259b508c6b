"""The write-log contract: every log implementation passes this suite (`log` fixture)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.types import LogState

if TYPE_CHECKING:
    from chroma_serverless.ports import Log


def test_a_collection_never_written_has_an_empty_log(log: Log) -> None:
    assert log.state("c1") == LogState(head=0, folded=0, version=None)
    assert log.state("c1").tail == 0
    assert log.entries("c1", 0, 0) == []


def test_appends_are_numbered_in_order_per_collection(log: Log) -> None:
    assert [log.append("c1", b"a"), log.append("c1", b"b"), log.append("c2", b"x")] == [1, 2, 1]
    assert log.append("c1", b"c") == 3
    assert log.state("c1") == LogState(head=3, folded=0, version=None)
    assert log.entries("c1", 0, 3) == [b"a", b"b", b"c"]
    assert log.entries("c1", 1, 2) == [b"b"]
    assert log.entries("c2", 0, 1) == [b"x"]


def test_entries_of_any_size_round_trip(log: Log) -> None:
    """An add of a full batch (1,342 records of 384 floats and their documents) is a few MB:
    more than a DynamoDB item holds."""
    big = os.urandom(3 * 2**20)
    small = os.urandom(100)
    empty = b""
    assert [log.append("c1", e) for e in (big, small, empty)] == [1, 2, 3]
    assert log.entries("c1", 0, 3) == [big, small, empty]


def test_concurrent_appends_get_distinct_numbers_and_keep_their_entries(log: Log) -> None:
    def write(writer: int) -> list[tuple[int, bytes]]:
        done = []
        for i in range(12):
            entry = f"{writer}:{i}".encode()
            done.append((log.append("c1", entry), entry))
        return done

    with ThreadPoolExecutor(8) as pool:
        acknowledged = [pair for done in pool.map(write, range(8)) for pair in done]
    numbers = sorted(seq for seq, _ in acknowledged)
    assert numbers == list(range(1, 97))
    stored = log.entries("c1", 0, 96)
    assert all(stored[seq - 1] == entry for seq, entry in acknowledged)
    assert log.state("c1").head == 96


def test_the_fold_mark_moves_only_from_the_state_its_folder_read(log: Log) -> None:
    for entry in (b"a", b"b", b"c"):
        log.append("c1", entry)
    read = log.state("c1")
    assert log.mark("c1", read, folded=2, version=7)
    assert log.state("c1") == LogState(head=3, folded=2, version=7)
    assert not log.mark("c1", read, folded=3, version=8)  # another folder got there first
    assert log.state("c1") == LogState(head=3, folded=2, version=7)
    assert log.mark("c1", log.state("c1"), folded=3, version=8)
    assert log.state("c1").tail == 0


def test_the_mark_never_passes_the_head(log: Log) -> None:
    log.append("c1", b"a")
    assert not log.mark("c1", log.state("c1"), folded=2, version=3)
    assert log.state("c1") == LogState(head=1, folded=0, version=None)


def test_the_mark_can_move_the_version_alone(log: Log) -> None:
    """Maintenance that indexes or compacts makes a new version holding the same entries."""
    assert log.mark("c1", log.state("c1"), folded=0, version=4)
    assert log.state("c1") == LogState(head=0, folded=0, version=4)
    log.append("c1", b"a")
    assert log.state("c1") == LogState(head=1, folded=0, version=4)


def test_trimmed_entries_are_gone_and_the_rest_stay(log: Log) -> None:
    for entry in (b"a", os.urandom(2**20), b"c"):
        log.append("c1", entry)
    log.mark("c1", log.state("c1"), folded=2, version=1)
    log.trim("c1", 2)
    assert log.entries("c1", 2, 3) == [b"c"]
    assert log.append("c1", b"d") == 4
    assert log.entries("c1", 2, 4) == [b"c", b"d"]


def test_a_reader_behind_a_trim_is_told_so(log: Log) -> None:
    """A reader that read the state before a fold asks for entries since trimmed: it must not
    take them for abandoned slots (its read would miss acknowledged writes)."""
    for entry in (b"a", os.urandom(2**20), b"c"):
        log.append("c1", entry)
    stale = log.state("c1")
    log.mark("c1", stale, folded=2, version=1)
    log.trim("c1", 2)
    for after in (0, 1):
        with pytest.raises(LogTrimmedError):
            log.entries("c1", after, stale.head)


def test_one_lease_holder_at_a_time(log: Log) -> None:
    assert log.lease("c1", "a", 30)
    assert not log.lease("c1", "b", 30)
    assert log.lease("c1", "a", 30)  # renewed by its holder
    assert log.lease("c2", "b", 30)  # leases are per collection
    log.release("c1", "b")  # not b's: nothing happens
    assert not log.lease("c1", "b", 30)
    log.release("c1", "a")
    assert log.lease("c1", "b", 30)


def test_an_expired_lease_can_be_taken(log: Log) -> None:
    assert log.lease("c1", "a", 0.2)
    time.sleep(0.4)
    assert log.lease("c1", "b", 30)
    assert not log.lease("c1", "a", 30)


def test_concurrent_lease_takers_get_one_winner(log: Log) -> None:
    barrier = threading.Barrier(6)

    def take(holder: int) -> bool:
        barrier.wait()
        return log.lease("c1", f"h{holder}", 30)

    with ThreadPoolExecutor(6) as pool:
        assert sum(pool.map(take, range(6))) == 1


def test_leases_do_not_touch_the_log(log: Log) -> None:
    log.append("c1", b"a")
    log.lease("c1", "a", 30)
    log.release("c1", "a")
    assert log.state("c1") == LogState(head=1, folded=0, version=None)
    assert log.entries("c1", 0, 1) == [b"a"]


def test_drop_forgets_one_collection(log: Log) -> None:
    log.append("c1", b"a")
    log.append("c1", os.urandom(2**20))
    log.append("c2", b"x")
    log.mark("c1", log.state("c1"), folded=1, version=3)
    log.drop("c1")
    assert log.state("c1") == LogState()
    assert log.state("c2") == LogState(head=1, folded=0, version=None)
    assert log.entries("c2", 0, 1) == [b"x"]


def test_reset_forgets_every_collection(log: Log) -> None:
    log.append("c1", b"a")
    log.append("c2", b"x")
    log.reset()
    assert log.state("c1") == LogState()
    assert log.state("c2") == LogState()
    assert log.append("c1", b"b") == 1
    assert log.entries("c1", 0, 1) == [b"b"]
