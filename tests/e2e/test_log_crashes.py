"""The write log under ``kill -9``: real OS processes (``python -c`` children), each building its
own store with its own clients, on the session's moto server over HTTP (the DynamoDB log beside
S3) or in a local directory (the SQLite log), SIGKILLed mid-write and mid-fold. A fresh store then
reads: every acknowledged write is there once, with its content (or a later acknowledged
write's), nothing acknowledged-deleted comes back, and the count agrees.

Each writer owns its ids and applies a known sequence of adds, upserts (merging metadata per key)
and deletes by id to them, reporting on stdout before (``begin``) and after (``ack``) each write:
what a read may show for a writer's ids is the outcome of its acknowledged prefix, or of that and
the one write it had begun (``judge``).

Also a writer stalled (SIGSTOP) between taking its sequence number and putting its entry, which
readers close as abandoned: its store must then fail and the write be appended again.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pytest

from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import DeleteRequest, Filter, GetRequest, RecordBatch
from tests import factories

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from chroma_serverless.ports import Log
    from chroma_serverless.types import Collection, LogState

ROOT = Path(__file__).resolve().parents[2]
CHILD = "import sys; from tests.e2e.test_log_crashes import child; child(sys.argv[1])"
DIMENSION = 4
ABANDON_AFTER = 3.0  # seconds before readers close a gap (the product's default)
LEASE_SECONDS = 2.0  # the lease a killed maintainer held: others take over after this
INLINE_BYTES = 400  # DynamoDB entries larger than this go to S3 (long documents: ``Op.long``)
STARTUP = 120.0  # seconds a child may take to import and build its store (2 cores, busy)

Place = dict[str, Any]  # where every process's store keeps its data (JSON, for the children)
Record = tuple[str | None, tuple[tuple[str, Any], ...], tuple[float, ...]]  # doc, metadata, vector
State = dict[str, Record]


# ---------------------------------------------------------------- where the stores are


def s3_place(request: pytest.FixtureRequest, abandon_after: float = ABANDON_AFTER) -> Place:
    from tests.support.moto import new_catalog_table, s3_storage_options

    moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return {
        "uri": f"s3://{bucket}/{uuid.uuid4().hex}",
        "options": s3_storage_options(moto),
        "log": {
            "kind": "dynamodb",
            "endpoint": moto.endpoint,
            "table": new_catalog_table(moto),
            "bucket": bucket,
            "prefix": f"log-{uuid.uuid4().hex[:12]}",
            "abandon_after": abandon_after,
            "inline_bytes": INLINE_BYTES,
        },
    }


def place_of(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if where == "s3":
        return s3_place(request)
    return {
        "uri": str(tmp_path / "records"),
        "options": {},
        "log": {"kind": "sqlite", "path": str(tmp_path / "log.sqlite3")},
    }


def aws(spec: dict[str, Any], service: str) -> Any:
    import boto3

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def open_log(spec: dict[str, Any]) -> Log:
    """A log of its own (its own clients or connection) on the place's log."""
    if spec["kind"] == "sqlite":
        from chroma_serverless.catalog.sqlite.log import SqliteLog

        return SqliteLog(spec["path"])
    from chroma_serverless.catalog.dynamodb.log import DynamoDbLog

    return DynamoDbLog(
        aws(spec, "dynamodb"),
        spec["table"],
        aws(spec, "s3"),
        spec["bucket"],
        spec["prefix"],
        inline_bytes=spec["inline_bytes"],
        abandon_after=spec["abandon_after"],
    )


def open_store(place: Place) -> LanceRecordStore:
    """A fresh store instance: nothing cached from any other."""
    return LanceRecordStore(place["uri"], place["options"], log=open_log(place["log"]))


def table_version(place: Place, collection_id: str) -> int:
    """The table's latest version, as LanceDB itself sees it (not the version the mark names)."""
    import lancedb

    return int(
        lancedb.connect(place["uri"], storage_options=place["options"])
        .open_table(collection_id)
        .version
    )


# ---------------------------------------------------------------- writes and what they leave


@dataclass(frozen=True)
class Op:
    """One write: an add, an upsert (its metadata key merged into the record's) or a delete by
    ids; its values follow from the ids and ``step`` (unique in a test)."""

    kind: str
    ids: tuple[str, ...]
    step: int
    long: bool = False  # a long document: the DynamoDB log keeps the entry in S3

    def document(self, record_id: str) -> str:
        text = f"{self.kind} {record_id} #{self.step}"
        return text + "." * 2 * INLINE_BYTES if self.long else text

    def vector(self, record_id: str) -> tuple[float, ...]:
        seed = zlib.crc32(f"{record_id}#{self.step}".encode())
        return tuple(factories.vectors(1, dimension=DIMENSION, seed=seed)[0].tolist())

    def metadata(self) -> dict[str, Any]:
        return {"added": self.step} if self.kind == "add" else {f"u{self.step % 3}": self.step}

    def batch(self) -> RecordBatch:
        ids = list(self.ids)
        if self.kind == "delete":
            return RecordBatch(ids=ids)
        metadatas: list[Any] = [self.metadata() for _ in ids]
        return RecordBatch(
            ids=ids,
            embeddings=np.array([self.vector(i) for i in ids], np.float32),
            metadatas=metadatas,
            documents=[self.document(i) for i in ids],
        )

    def perform(self, store: LanceRecordStore, collection: Collection) -> None:
        if self.kind == "delete":
            store.delete(collection, DeleteRequest(Filter(ids=list(self.ids))))
        else:
            getattr(store, self.kind)(collection, self.batch())


def workload(
    rng: random.Random, ids: list[str], n: int, first_step: int, long_every: int = 0
) -> list[Op]:
    """``n`` adds, upserts and deletes of one or two of ``ids``."""
    kinds = rng.choices(["add", "upsert", "delete"], weights=[4, 4, 2], k=n)
    return [
        Op(
            kind,
            tuple(rng.sample(ids, rng.randint(1, 2))),
            first_step + k,
            long=bool(long_every) and k % long_every == 0,
        )
        for k, kind in enumerate(kinds)
    ]


def states(ops: list[Op]) -> list[State]:
    """``states(ops)[p]``: the records the first ``p`` writes leave, applied one by one (an add
    of a present id is ignored; an upsert replaces the document and vector and merges the
    metadata per key)."""
    state: State = {}
    out = [dict(state)]
    for op in ops:
        for record_id in op.ids:
            if op.kind == "delete":
                state.pop(record_id, None)
            elif op.kind == "add":
                if record_id not in state:
                    metadata = tuple(sorted(op.metadata().items()))
                    state[record_id] = (op.document(record_id), metadata, op.vector(record_id))
            else:
                old = dict(state[record_id][1]) if record_id in state else {}
                merged = tuple(sorted({**old, **op.metadata()}.items()))
                state[record_id] = (op.document(record_id), merged, op.vector(record_id))
        out.append(dict(state))
    return out


def rows_of(store: LanceRecordStore, collection: Collection) -> list[list[Any]]:
    """Every record as ``[id, document, metadata, vector]`` (JSON, for the children's reports)."""
    got = store.get(collection, GetRequest(include=("documents", "metadatas", "embeddings")))
    assert got.documents is not None and got.metadatas is not None and got.embeddings is not None
    return [
        [record_id, got.documents[n], got.metadatas[n], [float(x) for x in got.embeddings[n]]]
        for n, record_id in enumerate(got.ids)
    ]


def state_of(rows: list[list[Any]]) -> tuple[State, list[str]]:
    """The records read, and the ids read more than once."""
    state: State = {}
    twice: list[str] = []
    for record_id, document, metadata, vector in rows:
        if record_id in state:
            twice.append(record_id)
        state[record_id] = (document, tuple(sorted((metadata or {}).items())), tuple(vector))
    return state, twice


def judge(seen: State, expected: list[State], low: int, high: int, ids: set[str]) -> str | None:
    """``None`` if the records of ``ids`` in ``seen`` are what the first ``p`` writes leave for
    some ``low <= p <= high`` (acknowledged: ``low``; begun: ``high``), else what is wrong."""
    mine = {k: v for k, v in seen.items() if k in ids}
    if any(mine == expected[p] for p in range(low, high + 1)):
        return None
    first, last = expected[low], expected[high]
    lost = sorted(k for k in first.keys() & last.keys() if k not in mine)
    resurrected = sorted(k for k in mine if k not in first and k not in last)
    wrong = {
        k: {"read": mine[k], "acknowledged": first.get(k), "begun": last.get(k)}
        for k in sorted(mine)
        if (k in first or k in last) and mine[k] not in (first.get(k), last.get(k))
    }
    mixed = "" if lost or resurrected or wrong else "; a mix of two writes' outcomes"
    return (
        f"writes acknowledged {low}, begun {high}: lost {lost}, present though deleted or never "
        f"added {resurrected}, wrong content {wrong}{mixed}"
    )


def check(store: LanceRecordStore, collection: Collection, expected: State) -> list[list[Any]]:
    """The store holds exactly ``expected``, each record once, and counts it; returns the rows."""
    rows = rows_of(store, collection)
    seen, twice = state_of(rows)
    assert twice == [], f"ids read twice: {twice}"
    lost = sorted(expected.keys() - seen.keys())
    back = sorted(seen.keys() - expected.keys())
    wrong = {k: (seen[k], expected[k]) for k in sorted(seen.keys() & expected.keys())}
    wrong = {k: pair for k, pair in wrong.items() if pair[0] != pair[1]}
    assert (lost, back, wrong) == ([], [], {}), (
        f"lost {lost}, present though deleted or never added {back}, "
        f"wrong content (read, expected) {wrong}"
    )
    assert store.count(collection) == len(expected)
    return rows


# ---------------------------------------------------------------- the children


def say(line: str) -> None:
    """One line on stdout, written before this returns (a pipe write of one short line is atomic,
    so a kill never leaves half a line)."""
    data = (line + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
    raise AssertionError("SIGKILL did not kill")


def child(config_json: str) -> None:
    """A child process: ``writer`` (performs ``ops``, saying ``begin i`` and ``ack i``),
    ``reader`` (answers each ``probe n`` on stdin with ``seen n <rows>``) or ``maintainer``
    (maintains the collection once), after applying ``patches`` (where it dies)."""
    config = json.loads(config_json)
    patch(config.get("patches", {}))
    place = config["place"]
    if config.get("inline_bytes") is not None:
        place["log"]["inline_bytes"] = config["inline_bytes"]
    store = open_store(place)
    collection = factories.collection(id=config["collection"], dimension=DIMENSION)
    say("ready")
    role = config["role"]
    if role == "writer":
        ops = [Op(o["kind"], tuple(o["ids"]), o["step"], o["long"]) for o in config["ops"]]
        if config.get("go"):
            sys.stdin.readline()
        for i, op in enumerate(ops):
            time.sleep(random.uniform(0, 2 * config.get("pace", 0)))
            say(f"begin {i}")
            op.perform(store, collection)
            say(f"ack {i}")
        say("done")
    elif role == "reader":
        for line in sys.stdin:
            if not line.startswith("probe "):
                break
            say(f"seen {line.split()[1]} {json.dumps(rows_of(store, collection))}")
    elif role == "maintainer":
        if config.get("go"):
            sys.stdin.readline()
        say("folding")
        store.maintain(collection)
        say("maintained")


def patch(patches: dict[str, Any]) -> None:
    """What a child changes in itself before it starts: a short lease, small fold commits, and
    where it SIGKILLs itself (``die``: a fold point; ``die_in_store``: the n-th time a writer has
    taken a sequence number, before it puts its entry) or stops (``stop_in_store``)."""
    from chroma_serverless.catalog.dynamodb.log import DynamoDbLog
    from chroma_serverless.catalog.sqlite.log import SqliteLog
    from chroma_serverless.records import folding, indexing
    from chroma_serverless.records.writes import Writes

    if "lease_seconds" in patches:
        folding.LEASE_SECONDS = patches["lease_seconds"]
    if "fold_entries" in patches:
        folding.FOLD_ENTRIES = patches["fold_entries"]
    if patches.get("chunks"):  # say each fold commit the mark names
        moved = folding.Folder._moved

        def saying(self: Any, *args: Any) -> Any:
            state = moved(self, *args)
            say(f"chunk {state.folded}")
            return state

        folding.Folder._moved = saying  # type: ignore[method-assign,assignment]
    if "die_in_store" in patches or patches.get("stop_in_store"):
        store = DynamoDbLog._store
        calls = [0]

        def storing(self: DynamoDbLog, collection_id: str, seq: int, item: Any) -> bool:
            calls[0] += 1
            if calls[0] == patches.get("die_in_store"):
                say(f"dying between number and entry {seq}")
                die()
            if patches.get("stop_in_store") and calls[0] == 1:
                say(f"took {seq}")
                os.kill(os.getpid(), signal.SIGSTOP)
            return store(self, collection_id, seq, item)

        DynamoDbLog._store = storing  # type: ignore[method-assign]
    points: dict[str, list[tuple[Any, str, bool]]] = {  # owner, attribute, die after calling it
        "fold-committed": [(Writes, "fold", True)],
        "between-commits": [(Writes, "_to_arrow", False)],  # a fold's delete commit is done
        "marked": [(DynamoDbLog, "mark", True), (SqliteLog, "mark", True)],
        "trim-half": [(DynamoDbLog, "_delete_items", False)],  # its S3 objects are deleted
        "index-committed": [(indexing, "maintain", True)],
    }
    for owner, name, after in points.get(patches.get("die", ""), []):
        setattr(owner, name, dying(getattr(owner, name), name, after))


def dying(original: Callable[..., Any], name: str, after: bool) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if after:
            original(*args, **kwargs)
        say(f"dying at {name}")
        die()

    return wrapper


class Child:
    """A child process (``child`` above) and the lines it said, read without blocking."""

    def __init__(self, config: dict[str, Any], errors: Path) -> None:
        self.errors = errors
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), str(ROOT / "layers/common"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        with errors.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
                env=env,
            )
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.lines: list[str] = []
        self.closed = False  # its stdout is at its end: it exited (or was killed)
        self._partial = b""

    def pump(self) -> list[str]:
        """The lines said since the last call."""
        new: list[str] = []
        while not self.closed:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
                break
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            new.extend(line.decode() for line in complete)
        self.lines.extend(new)
        return new

    def until(self, prefix: str, timeout: float, times: int = 1) -> str:
        """The ``times``-th line said starting with ``prefix``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if line.startswith(prefix)]
            if len(found) >= times:
                return found[times - 1]
            assert not self.closed, f"child ended before saying {prefix!r}: {self.describe()}"
            left = deadline - time.monotonic()
            assert left > 0, f"child did not say {prefix!r} in {timeout} s: {self.describe()}"
            select.select([self.fd], [], [], min(left, 0.5))
            self.pump()

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        while not self.closed:
            select.select([self.fd], [], [], 1)
            self.pump()
        return code

    def describe(self) -> str:
        errors = self.errors.read_text(errors="replace")[-4000:]
        return f"exit {self.process.poll()}, said {self.lines[-5:]}, stderr:\n{errors}"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Child]]:
    """Starts children; kills (by pid) those still running at the end."""
    children: list[Child] = []

    def start(config: dict[str, Any]) -> Child:
        started = Child(config, tmp_path / f"child{len(children)}.stderr")
        children.append(started)
        return started

    yield start
    for started in children:
        started.kill()
        started.process.wait(30)
        for pipe in (started.process.stdin, started.process.stdout):
            if pipe is not None:
                pipe.close()


def wait_stopped(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the child did not stop"
        time.sleep(0.01)


# ---------------------------------------------------------------- writers killed mid-write

WRITERS, OPS, IDS = 4, 30, 5
PACE = 0.02  # seconds a writer waits between writes, on average (reads come in between)


@pytest.mark.parametrize("where", ["s3", "local"])
def test_writers_killed_mid_write_lose_duplicate_and_resurrect_nothing(
    where: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    spawn: Callable[[dict[str, Any]], Child],
) -> None:
    """Four writer processes and a reader process on one collection. Writer 0 (on DynamoDB)
    kills itself between taking a sequence number and putting its entry (a gap, which readers
    close after ``abandon_after``); writers 1 and 2 (and 0 locally) are SIGKILLed by the
    parent at random moments; writer 3 finishes; writer 2 keeps its entries in S3. The reader is
    probed all along: each read shows, per writer, the outcome of at least every write
    acknowledged before the probe was sent and of no write not yet begun when it answered. At
    the end a fresh store reads the same, and so after a fold."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    place = place_of(where, request, tmp_path)
    collection = factories.collection(dimension=DIMENSION)
    owned = {w: [f"w{w}-{i}" for i in range(IDS)] for w in range(WRITERS)}
    ops = {w: workload(rng, owned[w], OPS, first_step=w * 1000) for w in range(WRITERS)}
    expected = {w: states(ops[w]) for w in range(WRITERS)}
    patches: dict[int, dict[str, Any]] = {w: {} for w in range(WRITERS)}
    kills = {w: rng.randint(2, OPS // 2) for w in (0, 1, 2)}  # the write it is killed in
    if where == "s3":
        patches[0] = {"die_in_store": kills.pop(0)}
    common = {"place": place, "collection": collection.id}
    writers = {
        w: spawn(
            {
                **common,
                "role": "writer",
                "ops": [asdict(op) for op in ops[w]],
                "patches": patches[w],
                "inline_bytes": 0 if w == 2 else None,
                "go": True,
                "pace": PACE,
            }
        )
        for w in range(WRITERS)
    }
    reader = spawn({**common, "role": "reader"})
    for started in [*writers.values(), reader]:
        started.until("ready", STARTUP)
    for started in writers.values():
        started.send("go")

    acked, begun = dict.fromkeys(writers, 0), dict.fromkeys(writers, 0)
    kill_at: dict[int, float] = {}
    problems: list[str] = []
    probe: tuple[int, dict[int, int]] | None = None  # the probe out: its number, acks before it
    probes, last = 0, False
    deadline = time.monotonic() + 150

    def drain() -> None:
        for w, writer in writers.items():
            for line in writer.pump():
                word, _, number = line.partition(" ")
                if word == "begin":
                    begun[w] = int(number) + 1
                    if kills.get(w) == int(number):  # in this write, or about to be
                        kill_at[w] = time.monotonic() + rng.uniform(0, 0.004)
                elif word == "ack":
                    acked[w] = int(number) + 1

    while True:
        drain()
        for w, at in list(kill_at.items()):
            if time.monotonic() >= at:
                writers[w].kill()
                del kill_at[w]
        for line in reader.pump():
            if not line.startswith("seen "):
                continue
            drain()  # every write begun before the read answered has said so by now
            _, number, payload = line.split(" ", 2)
            assert probe is not None and int(number) == probe[0]
            seen, twice = state_of(json.loads(payload))
            if twice:
                problems.append(f"read {number}: ids read twice {twice}")
            for w in writers:
                problem = judge(seen, expected[w], probe[1][w], begun[w], set(owned[w]))
                if problem:
                    problems.append(f"read {number}, writer {w}: {problem}")
            probe = None
        if probe is None:
            if last:
                break
            drain()
            last = all(writer.closed for writer in writers.values()) and not kill_at
            probes += 1
            probe = (probes, dict(acked))
            reader.send(f"probe {probes}")
        assert not reader.closed, f"the reader died: {reader.describe()}"
        assert time.monotonic() < deadline, f"stuck (seed {seed}): acked {acked}, begun {begun}"
        fds = [c.fd for c in [*writers.values(), reader] if not c.closed]
        select.select(fds, [], [], 0.02)
    reader.send("stop")
    assert reader.wait() == 0, reader.describe()

    assert problems == [], f"seed {seed}: {problems}"
    codes = {w: writer.wait() for w, writer in writers.items()}
    killed = {w for w in writers if w in kills or patches[w]}
    for w, writer in writers.items():  # a kill may come late, on a busy machine: after the end
        assert codes[w] in ((-signal.SIGKILL, 0) if w in killed else (0,)), writer.describe()
        assert codes[w] != 0 or acked[w] == OPS
    assert any(acked[w] < OPS for w in kills), "every kill came after the last write"
    if where == "s3":
        assert codes[0] == -signal.SIGKILL and acked[0] < patches[0]["die_in_store"]
        assert any(line.startswith("dying between number and entry") for line in writers[0].lines)
    assert probes >= 3

    def final(store: LanceRecordStore) -> list[list[Any]]:
        rows = rows_of(store, collection)
        seen, twice = state_of(rows)
        assert twice == [], f"ids read twice: {twice}"
        for w in writers:
            problem = judge(seen, expected[w], acked[w], begun[w], set(owned[w]))
            assert problem is None, f"seed {seed}, writer {w}: {problem}"
        assert set(seen) <= {i for ids in owned.values() for i in ids}
        assert store.count(collection) == len(seen)
        return rows

    rows = final(open_store(place))
    open_store(place).maintain(collection)  # folds whatever is left, past any gap
    assert open_log(place["log"]).state(collection.id).tail == 0
    assert state_of(final(open_store(place)))[0] == state_of(rows)[0]


# ---------------------------------------------------------------- maintainers killed mid-fold

TAIL = 24
KILLS = {
    "s3": [
        "fold-committed",
        "between-commits",
        "marked",
        "trim-half",
        "index-committed",
        "random",
    ],
    "local": ["fold-committed", "marked", "random"],
}


@dataclass
class Fold:
    """One collection whose maintainer is killed at ``kill``."""

    kill: str
    collection: Collection
    ops: list[Op]  # every write, all acknowledged: ``base`` folded, then the tail
    maintainer: Child | None = None
    before: LogState | None = None

    @property
    def base(self) -> list[str]:
        return [f"b{i}" for i in range(12)]


@pytest.mark.parametrize("where", ["s3", "local"])
def test_maintainers_killed_mid_fold_lose_duplicate_and_resurrect_nothing(
    where: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    spawn: Callable[[dict[str, Any]], Child],
) -> None:
    """Per kill point, a collection with a folded table and a tail of adds, upserts and deletes
    (all acknowledged), and a maintainer process holding a 2 s lease that folds it and is
    SIGKILLed: after its fold committed but before the mark moved (``fold-committed``), between
    the fold's delete and merge commits (``between-commits``), after the mark moved but before
    the log was trimmed (``marked``), half-way through the trim (``trim-half``: the entries' S3
    objects deleted, their items left), after the maintenance commits that follow the fold
    (``index-committed``), or by the parent at a random moment of a fold in many small commits
    (``random``). Fresh stores then read exactly what the writes leave (around the tail, then
    after another maintainer folded it), a second maintenance changes nothing, and the log goes
    on. The maintainers run at once, on one log."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    place = place_of(where, request, tmp_path)
    folds = [Fold(kill, factories.collection(dimension=DIMENSION), []) for kill in KILLS[where]]
    for fold in folds:
        patches: dict[str, Any] = {"lease_seconds": LEASE_SECONDS}
        if fold.kill == "random":
            patches |= {"fold_entries": 3, "chunks": True}
        else:
            patches["die"] = fold.kill
        config = {"place": place, "collection": fold.collection.id, "patches": patches}
        fold.maintainer = spawn({**config, "role": "maintainer", "go": True})

    log = open_log(place["log"])
    here = open_store(place)  # meanwhile, the writes
    for fold in folds:
        base = fold.base
        fold.ops = [Op("add", tuple(base[:6]), 0, long=True), Op("add", tuple(base[6:]), 1)]
        for op in fold.ops:
            op.perform(here, fold.collection)
        here.count(fold.collection)  # the first read folds: a table, and a mark naming it
        more = base + [f"n{i}" for i in range(6)]
        tail = workload(rng, more, TAIL - 1, first_step=2, long_every=3)
        tail.append(Op("delete", (base[0],), TAIL + 1))  # the fold both deletes and merges
        for op in tail:
            op.perform(here, fold.collection)
        fold.ops += tail
        fold.before = log.state(fold.collection.id)
        assert fold.before.tail == TAIL and fold.before.version is not None

    for fold in folds:
        assert fold.maintainer is not None
        fold.maintainer.until("ready", STARTUP)
        fold.maintainer.send("go")
    for fold in folds:
        assert fold.maintainer is not None
        if fold.kill == "random":
            fold.maintainer.until("chunk", 60, times=rng.randint(1, 5))
            time.sleep(rng.uniform(0, 0.03))
            fold.maintainer.kill()
        else:
            fold.maintainer.until("dying at", 60)
        assert fold.maintainer.wait() == -signal.SIGKILL, fold.maintainer.describe()
        assert "maintained" not in fold.maintainer.lines

    failures: list[str] = []
    for fold in folds:
        try:
            died_where_meant(place, log, fold)
            recovers(place, fold)
        except AssertionError as exc:
            failures.append(f"killed at {fold.kill}: {exc}")
    assert failures == [], f"seed {seed}: " + "\n".join(failures)


def died_where_meant(place: Place, log: Log, fold: Fold) -> None:
    """The log and the table as the dead maintainer left them (the test's premise)."""
    before, collection = fold.before, fold.collection
    assert before is not None and before.version is not None
    after = log.state(collection.id)
    latest = table_version(place, collection.id)
    if fold.kill in ("fold-committed", "between-commits"):
        assert after == before and latest > before.version  # committed, the mark not moved
    elif fold.kill == "index-committed":
        assert after.tail == 0 and after.version is not None and latest > after.version
    elif fold.kill in ("marked", "trim-half"):
        assert after.tail == 0 and after.folded == before.head
        if fold.kill == "marked":  # not trimmed
            assert None not in log.entries(collection.id, before.folded, after.folded)
        else:  # half trimmed: the long entries' objects are gone, so their items read trimmed
            with pytest.raises(LogTrimmedError):
                log.entries(collection.id, before.folded, after.folded)
            spec = place["log"]
            listed = aws(spec, "s3").list_objects_v2(
                Bucket=spec["bucket"], Prefix=f"{spec['prefix']}/{collection.id}/"
            )
            assert listed["KeyCount"] == 0  # the entries' S3 objects are gone
    else:
        assert before.folded < after.folded < before.head  # between the commits of its fold


def recovers(place: Place, fold: Fold) -> None:
    """Fresh stores read exactly what the writes leave, before and after another maintainer
    folds; a second maintenance changes nothing; later writes are read."""
    collection = fold.collection
    expected = states(fold.ops)[-1]
    check(open_store(place), collection, expected)  # the version marked and the tail over it
    open_store(place).maintain(collection)  # takes the dead one's lease, folds again
    assert open_log(place["log"]).state(collection.id).tail == 0
    rows = check(open_store(place), collection, expected)
    marked = open_log(place["log"]).state(collection.id)
    open_store(place).maintain(collection)  # nothing to fold: nothing changes
    again = open_log(place["log"]).state(collection.id)
    assert (again.head, again.folded) == (marked.head, marked.folded)
    assert state_of(check(open_store(place), collection, expected))[0] == state_of(rows)[0]
    base = fold.base
    more = [Op("delete", (base[1], "n0"), TAIL + 2), Op("add", ("z", base[2]), TAIL + 3)]
    for op in more:
        op.perform(open_store(place), collection)
    check(open_store(place), collection, states(fold.ops + more)[-1])


# ---------------------------------------------------------------- a writer stalled in a gap


@pytest.mark.parametrize(
    "meanwhile",
    [
        "closed",
        "trimmed",
    ],
)
def test_a_writer_stalled_between_number_and_entry_is_read_once_it_is_acknowledged(
    meanwhile: str,
    request: pytest.FixtureRequest,
    spawn: Callable[[dict[str, Any]], Child],
) -> None:
    """A writer process takes a sequence number and stops (SIGSTOP) before putting its entry;
    another write lands after the gap. A reader closes the gap as abandoned (``closed``), or a
    maintainer folds past it and trims the log (``trimmed``). Then the writer goes on: its put
    must fail and its write be appended again, so that once acknowledged it is read."""
    place = s3_place(request, abandon_after=0.5)
    collection = factories.collection(dimension=DIMENSION)
    first, late, after = Op("add", ("x",), 0), Op("add", ("late",), 1), Op("add", ("after",), 2)
    here = open_store(place)
    first.perform(here, collection)
    here.maintain(collection)
    writer = spawn(
        {
            "place": place,
            "collection": collection.id,
            "role": "writer",
            "ops": [asdict(late)],
            "patches": {"stop_in_store": True},
        }
    )
    gap = int(writer.until("took", STARTUP).split()[1])
    wait_stopped(writer.process.pid)
    after.perform(here, collection)
    log = open_log(place["log"])
    assert log.state(collection.id).head == gap + 1
    reader = open_store(place)
    if meanwhile == "closed":
        assert reader.count(collection) == 2  # waits out the gap and closes it
    else:
        reader.maintain(collection)
        assert log.state(collection.id).folded == gap + 1
    os.kill(writer.process.pid, signal.SIGCONT)
    writer.until("done", 60)
    assert writer.wait() == 0, writer.describe()

    expected = states([first, late, after])[-1]
    check(reader, collection, expected)  # the store that passed the gap reads it too
    check(open_store(place), collection, expected)
    open_store(place).maintain(collection)
    check(open_store(place), collection, expected)
