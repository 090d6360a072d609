"""Benchmark: the distributed mode (issue 26), every measure against ``provision run`` on the same data.

    python bench/distributed.py [--people 100000 [1000000]] [--pipelines 8] [--pipeline-people 20000]
                                [--workers 1,2,4] [--machines 1,2,4,8] [--repeat 3] [--only overhead,pool]
                                [--json out.json]

A submitted run is one Celery task, or with ``--fan-out`` a coordinator task and its slices
(docs/distributed.md). Every process is timed from its start to its exit (bench/measure.py, which gives each its
own peak RSS), the two sides of each measure are interleaved on the same machine, and the sides
see the same data, with the state store in a fresh PostgreSQL database per run (workers need a
store they all reach). The pipeline is the quickstart's (CSV files -> SQLite), its manifest
copied with the data folder, the target and the state store written into it: a submitted run
carries only the manifest's path, and a worker reads no variable of the submitter's. The parts
(``--only`` takes their names):

1. ``overhead``: one pipeline of ``--people`` people, ``provision submit FILE --wait`` to one idle
   worker (``provision worker --concurrency 1``, started before and ready, then ``--settle``
   seconds idle; its start-up is reported in a row of its own, not in the submit's seconds)
   against ``provision run FILE``. Budget: at most 1.3x. The distributed side's peak RSS is that
   of the worker's pool process that ran the run (VmHWM, Linux), beside the submitting client's.
   At 1M people this is the issue's "1M people on 1 worker" (part 3 fans one pipeline out);
   such a run may hold its message past RabbitMQ's ``consumer_timeout`` (30 minutes by default):
   raise it first (docs/distributed.md), or the run is redelivered and the bench stops, saying so.
2. ``pool``: ``--pipelines`` K independent pipelines of ``--pipeline-people`` people (each its own
   copy of the data, target and state database), submitted at once (K ``submit --wait``) to W
   worker processes of ``--concurrency 1`` for each W of ``--workers``, timed until the last
   submit exits, against the same K pipelines run one after another by ``provision run``: the
   speed-up per worker count. Workers beyond the machine's CPUs share them, so such a row does not
   measure that many machines (they still gain where a run waits on PostgreSQL or the disk rather
   than computes: the notes say how busy a run kept its process). From the 1-worker rounds, the
   speed-up on N machines (``--machines``) is estimated: the
   measured task durations (the journal's started/finished of each task) packed on N workers
   longest first, plus the measured overheads (submit to the first task's start, the gap between
   two tasks on one worker, the last task's end to the last submit's exit).

3. ``fanout``: one pipeline of ``--people`` people whose run is fanned out into slices
   (``submit --fan-out --wait``) on each worker count of ``--workers`` (fresh workers, idle),
   against ``provision run`` on the same data: on 1 worker this is the fan-out's overhead (budget:
   at most 1.3x; the coordinator runs every slice itself there), on more the speed-up of one
   pipeline. From the 1-worker rounds' slices (the journal's rows under the run, each labelled
   with its phase) the speed-up on N machines is estimated: per phase, the slices' durations packed
   on N machines longest first, plus the measured wait of a slice in the queue; the coordinator's
   own steps stay serial.

Prints a Markdown table and notes, and with ``--json`` writes every row with its runs. Exits 0
when every budget measured is met, 1 otherwise. Needs RabbitMQ (``--broker``, default
PROVISION_BROKER_URL or guest on 127.0.0.1:5672) and PostgreSQL (``--postgresql``, a server URL
without a database; user postgres, trust, on 127.0.0.1:5432 by default); everything it makes
there (a queue, databases) is removed at the end, and every worker it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/ is not on it: bench/ and tests/bench/ would clash

from bench import measure as measure_module  # noqa: E402
from bench.measure import Measured, measure  # noqa: E402
from bench.state_1m import sampledata  # noqa: E402

MEASURE = str(Path(measure_module.__file__).resolve())  # the helper that times one process
PARTS = ("overhead", "pool", "fanout")
OVERHEAD_BUDGET = 1.3
DEFAULT_BROKER = os.environ.get("PROVISION_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432"
CONSUMER_TIMEOUT = 1800  # RabbitMQ's default consumer_timeout (s): a run holding its message longer is redelivered
READY = " ready."  # what a celery worker logs once it takes tasks


# ---- the world: databases, pipelines, workers -------------------------------------------------------


class Databases:
    """Fresh PostgreSQL databases on one server, each dropped by :meth:`drop` or at :meth:`close`."""

    def __init__(self, server: str):
        import sqlalchemy as sa

        self.server = server.rstrip("/")
        self.admin = sa.create_engine(f"{self.server}/postgres", isolation_level="AUTOCOMMIT")
        self.made: set[str] = set()

    def make(self) -> str:
        name = f"prov_bench_dist_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        self.made.add(name)
        return f"{self.server}/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.discard(name)

    def close(self) -> None:
        for name in sorted(self.made):
            with contextlib.suppress(Exception), self.admin.connect() as conn:  # the rest still go
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.clear()
        self.admin.dispose()


@dataclass(frozen=True)
class Pipeline:
    """One quickstart pipeline: its own manifest (data, target and state written into it), target
    file and state database."""

    name: str
    manifest: Path
    target: Path
    state: str

    def remove(self, databases: Databases) -> None:
        """Its state database and target go (a million people's are gigabytes); the manifest stays."""
        databases.drop(self.state)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.target}{suffix}").unlink(missing_ok=True)


class World:
    """The bench's folder (a copy of manifests/ and mappings/), its databases, its queue and result
    backend, and the environment every provision process of the bench gets."""

    def __init__(self, root: Path, broker: str, server: str):
        self.root = root
        self.databases = Databases(server)
        shutil.copytree(REPO / "manifests", root / "manifests",
                        ignore=shutil.ignore_patterns("out", ".provision", "data"))
        shutil.copytree(REPO / "mappings", root / "mappings")
        self.template = (REPO / "manifests" / "quickstart.yaml").read_text(encoding="utf-8")
        for needed in ('state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"', "name: quickstart",
                       "${env:PROVISION_DATA:-data}", "sqlite:///${env:PROVISION_TARGET:-out/app.db}"):
            if needed not in self.template:
                raise SystemExit(f"manifests/quickstart.yaml no longer says {needed!r}: adapt bench/distributed.py")
        from kombu import Connection

        try:  # a worker would wait for a missing broker for ever; say it now
            with Connection(broker, connect_timeout=10) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:  # noqa: BLE001 - kombu's OperationalError, socket errors
            raise SystemExit(f"no broker answers at {broker.rsplit('@', 1)[-1]} ({exc}): start RabbitMQ, "
                             "or give --broker") from None
        self.token = secrets.token_hex(4)
        self.queue = f"provision-bench-{self.token}"
        self.backend = "db+" + self.databases.make()
        self.env = {**os.environ,
                    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                    "PROVISION_BROKER_URL": broker, "PROVISION_RESULT_BACKEND": self.backend,
                    "PROVISION_QUEUE": self.queue}
        self.count = 0
        self.workers: list[Worker] = []  # every worker started, stopped or not

    def pipelines(self, datas: list[Path], folder: Path) -> list[Pipeline]:
        """A fresh pipeline over each of ``datas``, their state databases made at once (PostgreSQL
        makes and drops a database slowly on a busy machine, and one at a time slower still)."""
        with ThreadPoolExecutor(max_workers=min(len(datas), 8)) as threads:
            states = list(threads.map(lambda _: self.databases.make(), datas))
        return [self.pipeline(data, folder, state) for data, state in zip(datas, states, strict=True)]

    def remove(self, pipelines: list[Pipeline]) -> None:
        """Their state databases and targets go, at once (outside every timing)."""
        with ThreadPoolExecutor(max_workers=min(len(pipelines), 8)) as threads:
            list(threads.map(lambda p: p.remove(self.databases), pipelines))

    def pipeline(self, data: Path, folder: Path, state: str) -> Pipeline:
        """A pipeline over ``data`` with its state in the database ``state``: its manifest beside
        the quickstart's (so its relative paths hold), its target in ``folder``."""
        self.count += 1
        name = f"quickstart-bench-{self.count}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}.db"
        text = (self.template.replace("name: quickstart", f"name: {name}", 1)
                .replace('state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"', f'state: "{state}"')
                .replace("${env:PROVISION_DATA:-data}", str(data.resolve()))
                .replace("sqlite:///${env:PROVISION_TARGET:-out/app.db}", f"sqlite:///{target.resolve()}"))
        manifest = self.root / "manifests" / f"{name}.yaml"
        manifest.write_text(text, encoding="utf-8")
        return Pipeline(name, manifest, target, state)

    def start_workers(self, count: int) -> list[Worker]:
        """``count`` ``provision worker --concurrency 1`` processes, started at once, each in a
        session of its own; returned once every one is ready."""
        started = [Worker.start(self, f"w{len(self.workers) + 1 + n}") for n in range(count)]
        self.workers += started
        for worker in started:
            worker.wait_ready()
        return started

    def close(self) -> None:
        stop_all(self.workers)
        self.databases.close()
        with contextlib.suppress(Exception):  # the queue goes with the bench (and any message left in it)
            from kombu import Connection

            with Connection(self.env["PROVISION_BROKER_URL"], connect_timeout=10) as conn:
                conn.default_channel.queue_delete(self.queue)
                conn.default_channel.queue_delete(f"{self.queue}.slices")


@dataclass
class Worker:
    """One ``provision worker --concurrency 1`` process (a celery main process and its pool process)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    launched: float  # perf_counter at Popen
    startup: float = 0.0  # seconds from Popen to "ready." in its log

    @classmethod
    def start(cls, world: World, name: str) -> Worker:
        log = world.root / f"{name}.log"
        command = [sys.executable, "-m", "runner", "worker", "--concurrency", "1",
                   "--name", f"bench-{name}-{world.token}@%h"]
        with open(log, "wb") as out:
            launched = time.perf_counter()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=world.root, env=world.env, start_new_session=True)
        return cls(name, process, log, launched)

    def wait_ready(self, timeout: float = 120) -> None:
        while READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.perf_counter() - self.launched > timeout:
                raise SystemExit(f"worker {self.name} did not start: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.02)
        self.startup = time.perf_counter() - self.launched

    def processes(self) -> list[dict[str, Any]]:
        """Its main process and pool process(es): pid, peak RSS (VmHWM, MB) and CPU seconds so far,
        from /proc (Linux; empty elsewhere)."""
        roles = [(self.process.pid, "main"), *((pid, "pool") for pid in children(self.process.pid))]
        return [{"worker": self.name, "role": role, **usage} for pid, role in roles
                if (usage := proc_usage(pid)) is not None]


def stop_all(workers: list[Worker]) -> None:
    """Stop each worker by its PID, its whole process group (SIGTERM, then SIGKILL after 5 s), all
    at once (a worker's warm shutdown takes about a second)."""
    from runner.demo.process import stop

    if workers:
        with ThreadPoolExecutor(max_workers=len(workers)) as threads:
            list(threads.map(lambda w: stop(w.process), workers))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def proc_usage(pid: int) -> dict[str, Any] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    ticks = os.sysconf("SC_CLK_TCK")
    return {"pid": pid, "peak_mb": hwm / 1024, "cpu": (int(fields[11]) + int(fields[12])) / ticks}


# ---- rounds: K pipelines one after another, or submitted at once to W workers -----------------------


@dataclass
class Round:
    """K pipelines, run one after another (``workers`` 0) or submitted at once to ``workers`` workers:
    the wall time of the whole, each process measured, each run's summary, and for a distributed
    round each task's journal row, its workers' start-up and processes."""

    workers: int
    wall: float
    runs: list[Measured]
    summaries: list[dict[str, Any]]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    startups: list[float] = field(default_factory=list)
    worker_processes: list[dict[str, Any]] = field(default_factory=list)
    began: float = 0.0  # epoch seconds at the round's start (the journal's clock)
    ended: float = 0.0

    @property
    def pool_peak_mb(self) -> float:
        """The highest peak RSS of a pool process (the processes that ran the runs)."""
        return max((p["peak_mb"] for p in self.worker_processes if p["role"] == "pool"), default=0.0)

    def as_json(self) -> dict[str, Any]:
        out = {"workers": self.workers, "wall": self.wall, "seconds": [m.seconds for m in self.runs],
               "cpu": [m.cpu for m in self.runs], "peak_mb": [m.peak_mb for m in self.runs]}
        if self.workers:
            out.update(worker_startup=self.startups, worker_processes=self.worker_processes,
                       tasks=[{k: t[k] for k in ("worker", "started", "finished", "duration", "attempts",
                                                 "run_seconds", "slices")} for t in self.tasks],
                       **self.overheads())
        else:
            out["run_seconds"] = [run_seconds(s) for s in self.summaries]
        return out

    def overheads(self) -> dict[str, float]:
        """Where a distributed round's wall time went besides the tasks: ``lead`` from the round's
        start (the submits' launch) to the first task's start, ``gap`` the mean time between two
        tasks on one worker (acknowledgement, result, the next message), ``tail`` from the last
        task's end to the last submit's exit."""
        first = min(t["t_started"] for t in self.tasks)
        last = max(t["t_finished"] for t in self.tasks)
        gaps: list[float] = []
        for worker in {t["worker"] for t in self.tasks}:
            mine = sorted((t for t in self.tasks if t["worker"] == worker), key=lambda t: t["t_started"])
            gaps += [b["t_started"] - a["t_finished"] for a, b in zip(mine, mine[1:], strict=False)]
        return {"lead": first - self.began, "gap": statistics.fmean(gaps) if gaps else 0.0,
                "tail": self.ended - last}


def run_command(pipeline: Pipeline) -> list[str]:
    return [sys.executable, "-m", "runner", "run", str(pipeline.manifest), "--output", "json"]


def submit_command(pipeline: Pipeline, timeout: float, fan_out: bool = False) -> list[str]:
    return [sys.executable, "-m", "runner", "submit", str(pipeline.manifest), "--wait", "--output", "json",
            "--timeout", f"{timeout:.0f}s", *(["--fan-out"] if fan_out else [])]


def sequential(world: World, pipelines: list[Pipeline]) -> Round:
    """The baseline: each pipeline by ``provision run``, one after another."""
    runs, began, start = [], time.time(), time.perf_counter()
    for p in pipelines:
        runs.append(measure(run_command(p), world.env))
    wall = time.perf_counter() - start
    return Round(0, wall, runs, [json.loads(m.out) for m in runs], began=began, ended=began + wall)


def distributed(world: World, pipelines: list[Pipeline], workers: int, settle: float, timeout: float,
                journal: Any, fan_out: bool = False) -> Round:
    """``workers`` fresh workers, ready and idle, then every pipeline submitted at once with
    ``submit --wait`` (``fan_out``: ``--fan-out``); timed until the last submit exits. The workers
    are stopped after."""
    pool = world.start_workers(workers)
    try:
        time.sleep(settle)
        began, start = time.time(), time.perf_counter()
        runs = measure_at_once([submit_command(p, timeout, fan_out) for p in pipelines], world.env)
        wall = time.perf_counter() - start
        processes = [usage for w in pool for usage in w.processes()]  # before they stop: /proc forgets
    finally:
        stop_all(pool)
    tasks = [tasks_of(journal, p) for p in pipelines]
    return Round(workers, wall, runs, [json.loads(m.out) for m in runs], tasks, [w.startup for w in pool],
                 processes, began, began + wall)


def measure_at_once(commands: list[list[str]], env: dict[str, str]) -> list[Measured]:
    """Every command started at once, each measured as bench/measure.py measures one (through its
    helper: its own seconds, CPU and peak RSS), each in a session of its own so that a bench
    interrupted meanwhile ends them (SIGTERM to each group) rather than leave them waiting."""
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        folder, started = Path(tmp), []
        try:
            for n, command in enumerate(commands):
                with open(folder / f"{n}.out", "wb") as out, open(folder / f"{n}.err", "wb") as err:
                    started.append(subprocess.Popen([sys.executable, "-S", MEASURE, str(folder / f"{n}.json"),
                                                     *command], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                                    env=env, cwd=REPO, start_new_session=True))
            for process in started:
                process.wait()
        except BaseException:
            for process in started:
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGTERM)
            raise
        measured = []
        for n, (command, process) in enumerate(zip(commands, started, strict=True)):
            if process.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): "
                                 f"{(folder / f'{n}.err').read_text(errors='replace')[-2000:]}")
            usage = json.loads((folder / f"{n}.json").read_text())
            measured.append(Measured(usage["seconds"], usage["cpu"], usage["peak_mb"],
                                     (folder / f"{n}.out").read_text()))
        return measured


def tasks_of(journal: Any, pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's newest task in the journal (``provision status``'s source): where and when it
    ran, with its slices (none until runs fan out). A task tried twice stops the bench: its time
    would be two runs' (RabbitMQ redelivers a message held past its consumer_timeout)."""
    rows = journal.runs(str(pipeline.manifest.resolve()), 1)
    if not rows or not rows[0]["started"] or not rows[0]["finished"]:
        raise SystemExit(f"{pipeline.name}: no finished task in the journal: {rows}")
    row = rows[0]
    if row["attempts"] != 1:
        raise SystemExit(f"{pipeline.name}: its task ran {row['attempts']} times (redelivered: a worker died, or "
                         f"the run held its message past RabbitMQ's consumer_timeout); its time means nothing")
    started, finished = journal_time(row["started"]), journal_time(row["finished"])
    return {"worker": row["worker"], "started": row["started"], "finished": row["finished"], "attempts": 1,
            "t_started": started, "t_finished": finished, "duration": finished - started,
            "run_seconds": run_seconds(row["summary"] or {}), "slices": row["slices"]}


def journal_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def run_seconds(summary: dict[str, Any]) -> float | None:
    """The run's own duration inside its process, from its summary's started and finished."""
    try:
        return (datetime.fromisoformat(summary["finished"].replace("Z", "+00:00"))
                - datetime.fromisoformat(summary["started"].replace("Z", "+00:00"))).total_seconds()
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def same_work(baseline: Round, other: Round, what: str) -> None:
    """Both rounds did the same work: every run's counts per object type equal the baseline's."""
    expected = [s.get("object_types") for s in baseline.summaries]
    found = [s.get("object_types") for s in other.summaries]
    if found != expected or any(s.get("status") != "ok" for s in baseline.summaries + other.summaries):
        raise SystemExit(f"{what}: the runs did not do the same work as provision run's:\n"
                         f"{json.dumps(expected)}\n{json.dumps(found)}")


def makespan(durations: list[float], machines: int, gap: float) -> float:
    """The tasks packed on ``machines`` workers longest first (each to the least loaded so far);
    a worker's second and later tasks each cost ``gap`` more. The busiest worker's load."""
    loads: list[tuple[float, int]] = [(0.0, 0)] * machines  # (seconds, tasks)
    for d in sorted(durations, reverse=True):
        n = min(range(machines), key=lambda i: loads[i][0] + (gap if loads[i][1] else 0.0))
        seconds, count = loads[n]
        loads[n] = (seconds + d + (gap if count else 0.0), count + 1)
    return max(s for s, _ in loads)


def estimate(one_worker: Round, machines: int) -> float:
    """The round's wall time on ``machines`` machines, one worker each: the lead and tail measured
    on one worker, plus the measured task durations packed on them (:func:`makespan`). On one
    machine this is the measured wall time."""
    o = one_worker.overheads()
    return o["lead"] + makespan([t["duration"] for t in one_worker.tasks], machines, o["gap"]) + o["tail"]


# ---- rows -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One measure. ``kind`` ``ratio``: distributed seconds / baseline seconds (medians; ``value_min``
    of the minimums, the runs least hit by the machine's other work); ``speed-up``: baseline /
    distributed; ``seconds``: no baseline. ``budget`` None where the issue sets none (``met`` too)."""

    part: int
    what: str
    size: int
    seconds: list[float]
    baseline: str
    baseline_seconds: list[float]
    kind: str
    value: float | None
    value_min: float | None
    budget: float | None
    budget_text: str
    met: bool | None
    peak_rss_mb: float | None
    baseline_peak_rss_mb: float | None
    estimated: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def compared(part: int, what: str, size: int, ours: list[float], baseline: str, base: list[float], kind: str,
             budget: float | None = None, budget_text: str = "none (the issue sets none)", *,
             peak: float | None = None, base_peak: float | None = None, estimated: bool = False,
             **facts: Any) -> Row:
    if kind == "ratio":
        value, value_min = statistics.median(ours) / statistics.median(base), min(ours) / min(base)
    else:
        value, value_min = statistics.median(base) / statistics.median(ours), min(base) / min(ours)
    met = None if budget is None else value <= budget
    return Row(part, what, size, ours, baseline, base, kind, value, value_min, budget, budget_text, met, peak,
               base_peak, estimated, facts)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}" if values else "-"


def value_text(row: Row) -> str:
    if row.value is None:
        return "-"
    text = f"{row.value:.2f}x ({row.value_min:.2f}x)"
    return f"speed-up {text}" if row.kind == "speed-up" else text


def table(rows: list[Row]) -> str:
    """A Markdown table, ready for docs/distributed.md."""
    lines = ["| part | what | size | distributed s (min / median) | against | baseline s (min / median) "
             "| ratio or speed-up (median; min) | budget | met | peak RSS MB (distributed / baseline) |",
             "|---|---|---:|---:|---|---:|---:|---|---|---:|"]
    for r in rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "**no**")
        peak = "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}"
        if r.baseline_peak_rss_mb is not None:
            peak += f" / {r.baseline_peak_rss_mb:.0f}"
        lines.append(f"| {r.part} | {r.what} | {r.size:,} | {spread(r.seconds)} | {r.baseline} "
                     f"| {spread(r.baseline_seconds)} | {value_text(r)} | {r.budget_text} | {met} | {peak} |")
    return "\n".join(lines)


# ---- the parts --------------------------------------------------------------------------------------


def make_data(root: Path, people: int, groups: int | None) -> Path:
    data = root / f"data-{people}"
    sampledata("make", "--out", str(data), "--people", str(people), "--groups",
               str(groups or max(10, people // 100)), "--seed", "1")
    return data


def copy_data(made: Path, to: Path) -> Path:
    """The CSV files the quickstart reads, copied (the sample's SQLite hr.db is not)."""
    to.mkdir(parents=True)
    for name in ("people.csv", "groups.csv"):
        shutil.copyfile(made / name, to / name)
    return to


def overhead_rows(world: World, journal: Any, size: int, args: argparse.Namespace) -> list[Row]:
    """Part 1 at one size: ``repeat`` interleaved pairs, each side a fresh pipeline over the same data."""
    data = make_data(world.root, size, args.groups)
    print(f"part 1: {size:,} people, {args.repeat} interleaved pairs of provision run and submit --wait",
          flush=True)
    if size >= 500_000:
        print(f"  a run this size may hold its message longer than RabbitMQ's consumer_timeout "
              f"({CONSUMER_TIMEOUT // 60} min by default): raise it (docs/distributed.md), or the run is "
              "redelivered and this bench stops", flush=True)
    runs: list[Round] = []
    submits: list[Round] = []
    try:
        for n in range(args.repeat):
            for side in (("run", "submit") if n % 2 == 0 else ("submit", "run")):
                pipeline = world.pipeline(data, world.root / f"overhead-{size}-{n}-{side}", world.databases.make())
                try:
                    if side == "run":
                        runs.append(sequential(world, [pipeline]))
                    else:
                        submits.append(distributed(world, [pipeline], 1, args.settle, args.task_timeout, journal))
                finally:
                    pipeline.remove(world.databases)
            same_work(runs[-1], submits[-1], f"part 1 at {size:,} people")
            print(f"  pair {n + 1}: run {runs[-1].wall:.2f} s, submit --wait {submits[-1].wall:.2f} s "
                  f"(worker start-up {submits[-1].startups[0]:.2f} s, not in it)", flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    ours, base = [r.wall for r in submits], [r.wall for r in runs]
    breakdown = {
        "lead": [r.overheads()["lead"] for r in submits],  # submit started -> the worker started the task
        "task": [r.tasks[0]["duration"] for r in submits],  # the task on the worker (journal)
        "task_run": [r.tasks[0]["run_seconds"] for r in submits],  # the run inside it (its summary)
        "tail": [r.overheads()["tail"] for r in submits],  # the task ended -> submit exited
        "provision_run": base,
        "provision_run_run": [run_seconds(r.summaries[0]) for r in runs],  # the run inside provision run
    }
    startups = [r.startups[0] for r in submits]
    return [
        compared(1, "one pipeline: `provision submit --wait` to 1 idle worker (`--concurrency 1`), from the "
                    "submit's start to its exit", size, ours, "`provision run`", base, "ratio", OVERHEAD_BUDGET,
                 f"<= {OVERHEAD_BUDGET}x", peak=max(r.pool_peak_mb for r in submits),
                 base_peak=max(r.runs[0].peak_mb for r in runs),
                 submit_client_peak_mb=max(r.runs[0].peak_mb for r in submits),
                 worker_pool_cpu=[sum(p["cpu"] for p in r.worker_processes if p["role"] == "pool") for r in submits],
                 run_cpu=[r.runs[0].cpu for r in runs], breakdown=breakdown,
                 rounds={"run": [r.as_json() for r in runs], "submit": [r.as_json() for r in submits]}),
        Row(1, "worker start-up: `provision worker --concurrency 1` from its start to ready (not in the row "
               "above)", size, startups, "-", [], "seconds", None, None, None, "none", None,
            max(p["peak_mb"] for r in submits for p in r.worker_processes if p["role"] == "main"), None),
    ]


def pool_rows(world: World, journal: Any, args: argparse.Namespace, cpus: int) -> list[Row]:
    """Part 2: K pipelines one after another, and submitted at once to each worker count; rounds in
    an order rotated every repetition, so drift hits each alike."""
    k, people = args.pipelines, args.pipeline_people
    made = make_data(world.root, people, args.groups)
    datas = [copy_data(made, world.root / f"pool-data-{i}") for i in range(k)]
    shutil.rmtree(made)
    print(f"part 2: {k} pipelines of {people:,} people, one after another and on {', '.join(map(str, args.workers))} "
          f"worker(s), {args.repeat} repetition(s)", flush=True)
    rounds: dict[int, list[Round]] = {w: [] for w in (0, *args.workers)}
    for n in range(args.repeat):
        order = [0, *args.workers]
        order = order[n % len(order):] + order[:n % len(order)]
        for workers in order:
            pipelines = world.pipelines(datas, world.root / f"pool-{n}-{workers}")
            try:
                if workers == 0:
                    done = sequential(world, pipelines)
                else:
                    done = distributed(world, pipelines, workers, args.settle, args.task_timeout, journal)
            finally:
                world.remove(pipelines)
            rounds[workers].append(done)
            print(f"  repetition {n + 1}: " + (f"one after another {done.wall:.2f} s" if workers == 0 else
                                                f"{workers} worker(s) {done.wall:.2f} s"), flush=True)
        for workers in args.workers:
            same_work(rounds[0][-1], rounds[workers][-1], f"part 2, {workers} worker(s)")
    base = [r.wall for r in rounds[0]]
    base_peak = max(m.peak_mb for r in rounds[0] for m in r.runs)
    label = f"{k} pipelines"
    rows = []
    for workers in args.workers:
        done = rounds[workers]
        note = f"; {workers} > {cpus} CPUs: they share them" if workers > cpus else ""
        rows.append(compared(
            2, f"{label} submitted at once to {workers} worker(s) (`--concurrency 1` each), until all finish{note}",
            people, [r.wall for r in done], f"{label} by `provision run`, one after another", base, "speed-up",
            peak=max(r.pool_peak_mb for r in done), base_peak=base_peak, workers=workers,
            submit_client_peak_mb=max(m.peak_mb for r in done for m in r.runs),
            worker_startup=[max(r.startups) for r in done],
            rounds=[r.as_json() for r in done], baseline_rounds=[r.as_json() for r in rounds[0]]))
    if 1 in args.workers:
        one = rounds[1]
        for machines in args.machines:
            estimates = [estimate(r, machines) for r in one]
            rows.append(compared(
                2, f"estimated: {label} on {machines} machine(s), 1 worker each: the 1-worker task durations "
                   "packed longest first, plus the measured overheads", people, estimates,
                f"{label} by `provision run`, one after another", base, "speed-up", estimated=True,
                machines=machines, task_durations=[[t["duration"] for t in r.tasks] for r in one],
                overheads=[r.overheads() for r in one]))
    return rows


def fanout_rows(world: World, journal: Any, size: int, args: argparse.Namespace, cpus: int) -> list[Row]:
    """Part 3 at one size: one pipeline's run fanned out into slices (``submit --fan-out --wait``)
    on each worker count of ``--workers``, against ``provision run``, rounds interleaved; then the
    estimate on N machines from the 1-worker rounds' slices (the journal's rows under the run)."""
    data = make_data(world.root, size, args.groups)
    print(f"part 3: {size:,} people, one pipeline fanned out on {', '.join(map(str, args.workers))} worker(s), "
          f"against provision run, {args.repeat} repetition(s)", flush=True)
    rounds: dict[int, list[Round]] = {w: [] for w in (0, *args.workers)}
    try:
        for n in range(args.repeat):
            order = [0, *args.workers]
            order = order[n % len(order):] + order[:n % len(order)]
            for workers in order:
                pipeline = world.pipeline(data, world.root / f"fanout-{size}-{n}-{workers}", world.databases.make())
                try:
                    if workers == 0:
                        done = sequential(world, [pipeline])
                    else:
                        done = distributed(world, [pipeline], workers, args.settle, args.task_timeout, journal,
                                           fan_out=True)
                finally:
                    pipeline.remove(world.databases)
                rounds[workers].append(done)
                print(f"  repetition {n + 1}: " + ("provision run" if workers == 0 else f"{workers} worker(s)")
                      + f" {done.wall:.2f} s" + (f", {len(done.tasks[0]['slices'])} slices" if workers else ""),
                      flush=True)
            for workers in args.workers:
                same_work(rounds[0][-1], rounds[workers][-1], f"part 3, {workers} worker(s)")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    base = [r.wall for r in rounds[0]]
    base_peak = max(m.peak_mb for r in rounds[0] for m in r.runs)
    rows = []
    for workers in args.workers:
        done = rounds[workers]
        note = f"; {workers} > {cpus} CPUs: they share them" if workers > cpus else ""
        ratio = workers == 1
        rows.append(compared(
            3, f"one pipeline fanned out (`submit --fan-out --wait`) on {workers} worker(s), against `provision run`"
               + note, size, [r.wall for r in done], "`provision run`", base, "ratio" if ratio else "speed-up",
            OVERHEAD_BUDGET if ratio else None, f"<= {OVERHEAD_BUDGET}x" if ratio else "none (the issue sets none)",
            peak=max(r.pool_peak_mb for r in done), base_peak=base_peak, workers=workers,
            slices=[len(r.tasks[0]["slices"]) for r in done],
            slices_on=[sorted({sl["worker"] for sl in r.tasks[0]["slices"]}) for r in done],
            rounds=[r.as_json() for r in done]))
    if 1 in args.workers:
        gap = slice_gap([r for w in args.workers if w > 1 for r in rounds[w]])
        for machines in args.machines:
            estimates = [fanout_estimate(r, machines, gap) for r in rounds[1]]
            rows.append(compared(
                3, f"estimated: one pipeline fanned out on {machines} machine(s): the 1-worker round's slices packed "
                   "per phase, the rest serial", size, estimates, "`provision run`", base, "speed-up", estimated=True,
                machines=machines, slice_gap=gap,
                phases=[phase_durations(r) for r in rounds[1]]))
    return rows


def phase_durations(one: Round) -> dict[str, list[float]]:
    """phase -> the durations of its slices (the journal's started/finished), from the labels' "(phase N)"."""
    phases: dict[str, list[float]] = {}
    for sl in one.tasks[0]["slices"]:
        label = sl.get("label") or ""
        phase = label.rsplit("(phase ", 1)[-1].rstrip(")") if "(phase " in label else label
        if sl["started"] and sl["finished"]:
            phases.setdefault(phase, []).append(journal_time(sl["finished"]) - journal_time(sl["started"]))
    return phases


def fanout_estimate(one: Round, machines: int, gap: float) -> float:
    """A fanned-out run on ``machines`` machines: the 1-worker round's wall time with each phase's
    slices (run one after another there) packed on the machines instead, each slice ``gap`` later
    for the queue (measured where other workers took slices). Assumes the state's PostgreSQL and
    the target keep up with N writers."""
    phases = phase_durations(one)
    serial = one.wall - sum(sum(d) for d in phases.values())
    return serial + sum(makespan(d, machines, 0.0) + (gap if machines > 1 else 0.0) for d in phases.values())


def slice_gap(rounds: list[Round]) -> float:
    """The median time a slice waited in the queue before a worker (not its coordinator) started it."""
    waits = [journal_time(sl["started"]) - journal_time(sl["submitted"])
             for r in rounds for sl in r.tasks[0]["slices"]
             if sl["started"] and sl["submitted"] and sl["worker"] != r.tasks[0]["worker"]]
    return statistics.median(waits) if waits else 0.0


# ---- the command ------------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """Where the numbers come from: a shared machine's load says how far to trust the seconds."""
    return {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_average": os.getloadavg(), "platform": platform.platform(), "python": platform.python_version()}


def notes(rows: list[Row], args: argparse.Namespace, cpus: int) -> list[str]:
    """What the table cannot say: how part 1 is timed and where its time goes, and what part 2's
    estimate assumes."""
    out = []
    for r in rows:
        if r.part == 1 and r.kind == "ratio":
            b = r.facts["breakdown"]

            def med(key: str, b: dict[str, list[Any]] = b) -> str:
                values = [v for v in b[key] if v is not None]
                return f"{statistics.median(values):.2f} s" if values else "?"

            out.append(f"part 1 at {r.size:,} people: timed from the start of `provision submit --wait` to its exit, "
                       f"with the worker already started and idle ({args.settle:g} s after it was ready); its "
                       f"start-up is the row after. Medians: submit start to the worker starting the task "
                       f"{med('lead')}, the task {med('task')} (the run in it {med('task_run')}), the task's end "
                       f"to the submit's exit {med('tail')} (the result is polled every 0.5 s); `provision run` "
                       f"{med('provision_run')} (the run in it {med('provision_run_run')}).")
    if any(r.part == 2 for r in rows):
        out.append("part 2: each pipeline is one task on one worker (submitted without --fan-out): more workers "
                   "help many pipelines; part 3 fans one pipeline's run out.")
        if max(args.workers) > cpus:
            out.append(cpu_note(rows, cpus))
        if 1 not in args.workers:
            out.append("part 2: no estimate on N machines: it packs the task durations of the 1-worker rounds, "
                       "and --workers has no 1.")
    for r in rows:
        if r.part == 2 and r.estimated and r.facts["machines"] == 1:
            o = r.facts["overheads"]
            out.append("part 2, estimate: each task's duration is its started-to-finished in the journal, measured "
                       "in the 1-worker rounds (one task at a time on the machine, beside the waiting submits); medians of the "
                       f"overheads, lead (submits launched to the first task's start) "
                       f"{statistics.median(x['lead'] for x in o):.2f} s, gap between two tasks on a worker "
                       f"{statistics.median(x['gap'] for x in o):.2f} s, tail (last task's end to the last "
                       f"submit's exit) {statistics.median(x['tail'] for x in o):.2f} s. It assumes the shared "
                       "PostgreSQL (state stores, result backend) and RabbitMQ keep up with N machines, and that the "
                       "K submits start as fast as here.")
    for r in rows:
        if r.part == 3 and r.estimated and r.facts["machines"] == max(args.machines):
            out.append(f"part 3, estimate: per phase, the 1-worker round's slice durations (the journal) packed on N "
                       f"machines longest first, each phase waiting {r.facts['slice_gap']:.2f} s more for the queue "
                       "(the median wait of a slice a worker took in the multi-worker rounds); the coordinator's own "
                       "steps (recovery, reconciliation, the guard, the barriers) stay serial. It assumes the shared "
                       "PostgreSQL and the target keep up with N writers: here the target is one SQLite file, "
                       "which serialises every export.")
    return out


def cpu_note(rows: list[Row], cpus: int) -> str:
    """Part 2's worker counts beyond the machine's CPUs: what they measure, and whether they beat a
    worker per CPU here, with what a run's process did with its task's time."""
    measured = {r.facts["workers"]: r for r in rows if r.part == 2 and not r.estimated}
    most = max(measured)
    text = (f"part 2: this machine has {cpus} CPUs: {most} workers share them with each other, PostgreSQL, "
            f"RabbitMQ, the submits and the machine's other work, so the {most}-worker row does not measure "
            f"{most} machines (the estimated rows estimate them).")
    at_cpus = max((w for w in measured if w <= cpus), default=None)
    if at_cpus is None or measured[most].value is None or measured[at_cpus].value is None:
        return text
    share = ""
    if 1 in measured:
        busy = [(sum(p["cpu"] for p in r["worker_processes"] if p["role"] == "pool"),
                 sum(t["duration"] for t in r["tasks"])) for r in measured[1].facts["rounds"]]
        share = (f" In the 1-worker rounds a run's process was on a CPU for {sum(c for c, _ in busy):.0f} s of its "
                 f"tasks' {sum(d for _, d in busy):.0f} s ({sum(c for c, _ in busy) / sum(d for _, d in busy):.0%}); "
                 "the rest it waited (PostgreSQL, the SQLite target's disk, the machine's other processes), and "
                 "more workers fill those waits. On a busy machine more processes also take a larger share of "
                 "its CPUs from other work.")
    if measured[most].value > measured[at_cpus].value * 1.05:
        return (f"{text} Here {most} workers did beat {at_cpus} (speed-up {measured[most].value:.2f}x against "
                f"{measured[at_cpus].value:.2f}x): a run is not CPU-bound on one worker.{share}")
    return f"{text} Here {most} workers did not beat {at_cpus} (speed-up {measured[most].value:.2f}x against " \
           f"{measured[at_cpus].value:.2f}x).{share}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    def counts(text: str) -> list[int]:
        try:
            values = sorted({int(v) for v in text.split(",") if v.strip()})
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: numbers separated by commas") from None
        if not values or values[0] < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: at least one number, each 1 or more")
        return values

    def parts(text: str) -> list[str]:
        chosen = [p.strip() for p in text.split(",") if p.strip()]
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'nothing'}; known: {', '.join(PARTS)}")
        return chosen

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[100000], help="part 1's sizes (1000000: the issue's)")
    parser.add_argument("--groups", type=int, help="groups (default: one per 100 people, at least 10)")
    parser.add_argument("--pipelines", type=int, default=8, help="part 2's K pipelines")
    parser.add_argument("--pipeline-people", type=int, default=20000, help="part 2's size of each pipeline")
    parser.add_argument("--workers", type=counts, default=[1, 2, 4], help="parts 2 and 3's worker counts (default 1,2,4)")
    parser.add_argument("--machines", type=counts, default=[1, 2, 4, 8],
                        help="parts 2 and 3's estimate on N machines (default 1,2,4,8; needs 1 in --workers)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", type=parts, default=list(PARTS), help=f"parts to measure, from {', '.join(PARTS)}")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds a ready worker idles before the submits")
    parser.add_argument("--task-timeout", type=float, default=6 * 3600,
                        help="submit --wait --timeout, seconds (a dead worker must not hang the bench)")
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="RabbitMQ (default PROVISION_BROKER_URL, else guest "
                                                                 "on 127.0.0.1:5672)")
    parser.add_argument("--postgresql", default=DEFAULT_POSTGRESQL, help="a PostgreSQL server URL, no database")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.pipelines < 1 or min(args.people) < 1 or args.pipeline_people < 1:
        parser.error("--repeat, --pipelines, --people and --pipeline-people must be 1 or more")
    return args


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the bench as Ctrl-C does, through every ``finally``: its workers are stopped."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from runner.distributed.journal import Journal

    before = machine()
    cpus = int(before["cpus"])  # type: ignore[call-overload]
    rows: list[Row] = []
    worker_pids: list[int] = []
    with terminated_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        world = World(Path(tmp), args.broker, args.postgresql)
        journal = None
        try:
            journal = Journal(world.backend)
            if "overhead" in args.only:
                for size in args.people:
                    rows += overhead_rows(world, journal, size, args)
            if "pool" in args.only:
                rows += pool_rows(world, journal, args, cpus)
            if "fanout" in args.only:
                for size in args.people:
                    rows += fanout_rows(world, journal, size, args, cpus)
        finally:
            worker_pids = [w.process.pid for w in world.workers]
            if journal is not None and journal.engine is not None:
                journal.engine.dispose()  # its connections would keep the result backend's database from going
            world.close()
    after = machine()
    print(table(rows))
    for line in notes(rows, args, cpus):
        print(f"\n{line}")
    print(f"\nload average {before['load_average']} before, {after['load_average']} after; {after['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"machine": {"before": before, "after": after}, "people": args.people,
                                         "pipelines": args.pipelines, "pipeline_people": args.pipeline_people,
                                         "workers": args.workers, "machines": args.machines, "repeat": args.repeat,
                                         "settle": args.settle, "worker_pids": worker_pids,
                                         "rows": [r.as_json() for r in rows]}, indent=2, default=str))
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
