"""Batch runs: one workflow over many inputs, on Ray (a local instance or a cluster), else in this process.

:func:`run_batch` is the one entry (``python -m vid4d batch``). Each input gets its own output folder
``<out>/<name>/`` (``name``: the input's file or folder name without extension). Its files are written
to ``<out>/<name>.partial/``, and only when the whole workflow succeeded does that folder get a
completion marker (:data:`MARKER`) and its final name, so a crash or Ctrl-C loses at most the inputs in
flight and a re-run skips what is done. A failed input leaves no partial files, only
``<out>/<name>.error.txt`` (its error, run log and traceback).

Engine: Ray actors (:class:`BatchWorker`), each one long-lived process that runs its inputs one after
another. Because the process outlives each input, the module-level model cache
(``models.loading.cached``) serves every input after the first: weights load once per worker. Without
Ray the inputs run one after another in this process through the same :func:`run_input`.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..py.video import ANIMATED_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from . import runtime
from . import workflow as wf

MARKER = "vid4d_batch.json"  # in <out>/<name>/ once that input is complete
LOG_NAME = "vid4d_log.txt"  # the runner's log of one input, next to its outputs
SUMMARY_NAME = "vid4d_batch_summary.json"  # in <out>/: every input's result of the last batch
PARTIAL_SUFFIX = ".partial"
ERROR_SUFFIX = ".error.txt"
MEDIA_EXTENSIONS = tuple(sorted(set(VIDEO_EXTENSIONS) | set(ANIMATED_EXTENSIONS) | set(IMAGE_EXTENSIONS)))
LIST_EXTENSION = ".txt"
FILE_MODES = ("auto", "shared", "ship")
WORKER_START_TIMEOUT_S = 600.0


class BatchError(ValueError):
    """A batch cannot start: no inputs, a workflow without an input node, Ray missing or unreachable."""


# ---------------------------------------------------------------- inputs
@dataclass(frozen=True)
class BatchInput:
    source: Path  # absolute path of a video/image file or a folder of frames
    name: str  # its output folder under --out


def collect_inputs(items: Iterable, exclude: Iterable = ()) -> list[BatchInput]:
    """Command-line inputs → the batch, in the order given, each with a unique output name.

    An item is a media file, a folder (each video/image file in it and each sub-folder holding images,
    i.e. a frame sequence, is one input) or a ``.txt`` list of paths (one a line, relative to the list's
    folder, ``#`` comments; a folder listed there is one input). ``exclude``: folders never taken as
    inputs (the output folder, when it lies inside an input folder).
    """
    skip = {Path(p).resolve() for p in exclude}
    paths: list[Path] = []
    for item in items:
        item = Path(item).expanduser()
        if not item.exists():
            raise BatchError(f"input not found: {item}")
        if item.is_dir():
            found = [p for p in _folder_inputs(item) if p.resolve() not in skip]
            if not found:
                raise BatchError(f"{item}: no video or image files (nor folders of frames) in this folder; extensions read: {', '.join(MEDIA_EXTENSIONS)}")
            paths += found
        elif item.suffix.lower() == LIST_EXTENSION:
            paths += _list_inputs(item)
        else:
            paths.append(item)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise BatchError("no inputs: give video/image files, folders of them, or a .txt list of paths")
    return _named(unique)


def _folder_inputs(folder: Path) -> list[Path]:
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS:
            found.append(p)
        elif p.is_dir() and p.suffix != PARTIAL_SUFFIX and not (p / MARKER).exists() and any(c.is_file() and c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir()):
            # (a batch's own output folders hold images too; they are never inputs)
            found.append(p)
    return found


def _list_inputs(path: Path) -> list[Path]:
    lines = (line.strip() for line in path.read_text().splitlines())
    entries = [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
    return [p if p.is_absolute() else path.parent / p for p in entries]


def _named(paths: list[Path]) -> list[BatchInput]:
    """Output names from file names; inputs that share one get a short hash of their path appended."""
    stems = [p.stem if p.is_file() or p.suffix.lower() in MEDIA_EXTENSIONS else p.name for p in paths]
    shared = {s for s in stems if stems.count(s) > 1}
    return [
        BatchInput(p, f"{s}_{hashlib.sha1(str(p).encode()).hexdigest()[:8]}" if s in shared else s)
        for p, s in zip(paths, stems)
    ]


# ---------------------------------------------------------------- the workflow every worker runs
@dataclass
class BatchSpec:
    """What every worker gets: the workflow as an API prompt with ``--set`` applied."""

    prompt: dict
    workflow: str  # the file it came from (for the marker and messages)
    input_dir: str  # where relative file names in the workflow resolve (the driver's working folder)
    signature: str  # hash of the prompt: a marker made by another workflow or --set is reported

    @classmethod
    def from_file(cls, path, overrides=(), input_dir=None) -> "BatchSpec":
        """Load and check a workflow once, before any input runs (bad JSON, unknown nodes, a bad
        ``--set``, no input node are errors of the batch, not of each input)."""
        from .. import NODE_CLASS_MAPPINGS

        prompt, classes, _ = wf.load_prompt(path, NODE_CLASS_MAPPINGS, overrides=list(overrides))
        if not wf.input_nodes(prompt):
            raise BatchError(
                f"{path}: the workflow has no Vid4DLoadVideo (or LoadImage) node, so batch has nothing to point each "
                "input at; start it from a Vid4DLoadVideo node (e.g. in place of Vid4DSampleScene) and run again"
            )
        probe = copy.deepcopy(prompt)
        wf.set_input_file(probe, Path("input"))
        wf.validate(probe, classes)
        text = json.dumps(prompt, sort_keys=True, default=str)
        return cls(prompt, str(path), str(Path(input_dir or Path.cwd()).resolve()), hashlib.sha256(text.encode()).hexdigest()[:16])


# ---------------------------------------------------------------- one input
@dataclass
class InputResult:
    name: str
    source: str
    status: str  # "done" | "failed" | "skipped" | "cancelled" | "not run"
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)  # files, relative to <out>/<name>/
    error: str = ""  # one line for the summary
    worker: str = ""  # host:pid that ran it
    note: str = ""
    details: str = ""  # log and traceback of a failure (for <name>.error.txt)
    files: dict | None = None  # the outputs themselves, when a worker without our disk sends them back


def run_input(spec: BatchSpec, item: BatchInput, folder: Path, report: Callable[[str], None] | None = None, source: Path | None = None) -> InputResult:
    """Run the workflow on one input, its outputs in ``folder`` (emptied first), its log in ``folder/LOG_NAME``.

    A failure of the input (bad file, OOM, any exception of a node) is returned as a "failed" result, never
    raised; Ctrl-C (KeyboardInterrupt) is raised. ``report(text)`` gets the current node as it changes
    (and a node's own progress, at most twice a second). ``source``: where the input is on this machine,
    when it is not ``item.source`` (a copy sent to a worker).
    """
    from .. import NODE_CLASS_MAPPINGS

    classes = {**wf.CORE_NODES, **NODE_CLASS_MAPPINGS}
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    current, last = [""], [0.0]

    def on_node(nid, class_type, index, count):
        current[0] = f"[{index + 1}/{count}] {class_type}"
        if report is not None:
            report(current[0])

    def printer(label, done, total):
        now = time.monotonic()
        if report is not None and (now - last[0] > 0.5 or done >= total):
            last[0] = now
            report(f"{current[0]} {label} {done}/{total}")

    prompt = copy.deepcopy(spec.prompt)
    wf.set_input_file(prompt, Path(source or item.source))
    start = time.perf_counter()
    error = details = ""
    with open(folder / LOG_NAME, "w") as log_file:

        def log(text):
            log_file.write(text + "\n")
            log_file.flush()

        runtime.configure_headless(input_dir=spec.input_dir, output_dir=folder, progress_printer=printer)
        try:
            wf.execute(prompt, classes, log=log, on_node=on_node)
        except Exception as exc:  # noqa: BLE001 - one input's failure is its result, never the batch's
            error = _one_line(exc)
            log(traceback.format_exc())
        finally:
            runtime.configure_headless()
    seconds = time.perf_counter() - start
    if error:
        gc.collect()  # the failed run's tensors, before the next input on this worker
        runtime.free_memory(drop_models=False)
        details = (folder / LOG_NAME).read_text()
    outputs = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != LOG_NAME)
    return InputResult(item.name, str(item.source), "failed" if error else "done", seconds, outputs, error, _where(), details=details)


def _where() -> str:
    """This process as ``host:pid`` (which worker ran an input)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory: {text}"
    return text


# ---------------------------------------------------------------- the output folder
def _staging(out: Path, item: BatchInput) -> Path:
    return out / (item.name + PARTIAL_SUFFIX)


def done_before(out: Path, item: BatchInput, spec: BatchSpec) -> InputResult | None:
    """A "skipped" result when ``<out>/<name>/`` has a completion marker and every output it lists."""
    folder = out / item.name
    try:
        marker = json.loads((folder / MARKER).read_text())
        outputs = list(marker["outputs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all((folder / rel).is_file() for rel in outputs):
        return None
    notes = []
    if marker.get("signature") != spec.signature:
        notes.append("made by another workflow or --set (--force redoes it)")
    if marker.get("source") != str(item.source):
        notes.append(f"made from {marker.get('source')}")
    return InputResult(item.name, str(item.source), "skipped", float(marker.get("seconds", 0.0)), outputs, worker=marker.get("worker", ""), note="; ".join(notes))


def finish(out: Path, item: BatchInput, result: InputResult, spec: BatchSpec) -> InputResult:
    """Record one input's result: a success gets its marker and its final folder name, a failure leaves
    only ``<name>.error.txt`` (an earlier complete result of that input is kept)."""
    staging, final, error_file = _staging(out, item), out / item.name, out / (item.name + ERROR_SUFFIX)
    if result.status == "done":
        if result.files is not None:  # sent back by a worker that does not share our disk
            shutil.rmtree(staging, ignore_errors=True)
            for rel, data in result.files.items():
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_bytes(data)
        marker = {
            "source": result.source,
            "workflow": spec.workflow,
            "signature": spec.signature,
            "outputs": result.outputs,
            "seconds": round(result.seconds, 3),
            "worker": result.worker,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)  # the rename is the commit: a crash before it leaves only <name>.partial
        error_file.unlink(missing_ok=True)
    else:
        shutil.rmtree(staging, ignore_errors=True)
        error_file.write_text(f"{result.source}\n{result.error}\n\n{result.details}")
    result.files = None
    result.details = ""
    return result


# ---------------------------------------------------------------- progress
class BatchProgress:
    """One bar over the batch (inputs done / total, ETA) and a line per running input with its current node.

    In a terminal a live tqdm bar; otherwise (a log file, CI) one line per started and finished input.
    """

    def __init__(self, stream=None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = _terminal_width(self.stream) > 0 if live is None else live
        self.total = self.done = 0
        self.bar = None
        self.slots: dict[str, object] = {}
        self.free: list = []
        self.start_time = time.monotonic()

    def start(self, total: int, skipped: int = 0, engine: str = "") -> None:
        self.total, self.start_time = total, time.monotonic()
        desc = f"batch ({skipped} done before)" if skipped else "batch"
        if self.live:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="input", file=self.stream, dynamic_ncols=True)

    def started(self, name: str) -> None:
        if self.bar is None:
            print(f"      {name}: started", file=self.stream, flush=True)
            return
        from tqdm import tqdm

        slot = self.free.pop() if self.free else tqdm(total=0, bar_format="{desc}", file=self.stream, position=len(self.slots) + 1, leave=False)
        self.slots[name] = slot
        slot.set_description_str(f"  {name}: starting")

    def running(self, lines: dict[str, str]) -> None:
        """``{input name: its current node}`` of the inputs in flight."""
        for name, text in lines.items():
            if name in self.slots:
                self.slots[name].set_description_str(f"  {name}: {text}")

    def finished(self, result: InputResult) -> None:
        self.done += 1
        text = f"{result.name}: {result.status} in {_seconds(result.seconds)}" + (f": {result.error}" if result.error else "")
        if self.bar is None:
            elapsed = time.monotonic() - self.start_time
            eta = elapsed / self.done * (self.total - self.done)
            print(f"[{self.done}/{self.total}] {text} (ETA {_duration(eta)})", file=self.stream, flush=True)
            return
        slot = self.slots.pop(result.name, None)
        if slot is not None:
            slot.set_description_str("")
            self.free.append(slot)
        self.bar.write(text, file=self.stream)
        self.bar.update(1)

    def close(self) -> None:
        for slot in list(self.slots.values()) + self.free:
            slot.close()
        self.slots, self.free = {}, []
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _terminal_width(stream) -> int:
    """Columns of the terminal behind ``stream``; 0 for a file, a pipe or a terminal of unknown size."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


# ---------------------------------------------------------------- engines
class _Cancelled(Exception):
    """Ctrl-C reached an engine: the inputs it had in flight (their staging folders removed)."""

    def __init__(self, in_flight: list[BatchInput]):
        super().__init__("interrupted")
        self.in_flight = in_flight


class SequentialEngine:
    """The inputs one after another in this process (no Ray installed, or ``--sequential``)."""

    description = "sequential (this process)"

    def start(self, count: int) -> None:
        pass

    def run(self, spec: BatchSpec, todo: list[BatchInput], out: Path, progress: BatchProgress, record: Callable) -> None:
        for item in todo:
            progress.started(item.name)
            try:
                result = run_input(spec, item, _staging(out, item), report=lambda text, name=item.name: progress.running({name: text}))
            except KeyboardInterrupt:
                shutil.rmtree(_staging(out, item), ignore_errors=True)
                raise _Cancelled([item]) from None
            record(item, result)

    def close(self) -> None:
        pass


class BatchWorker:
    """One Ray worker process. Runs one input at a time; its model cache outlives each input."""

    def __init__(self, threads: int = 0):
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        from .. import NODE_CLASS_MAPPINGS  # noqa: F401 - import the pack (torch, every node) once per process

    def hello(self) -> dict:
        from .. import __version__

        return {"version": __version__, "where": _where(), "pid": os.getpid(), "device": runtime.get_device().type}

    def run(self, spec: BatchSpec, item: BatchInput, board, staging: str | None = None, payload: dict | None = None) -> InputResult:
        where = _where()

        def report(text):
            board.set.remote(item.name, text, where)

        if payload is None:  # a shared disk: read the input and write the outputs in place
            return run_input(spec, item, Path(staging), report)
        with tempfile.TemporaryDirectory(prefix="vid4d_batch_") as tmp:
            for rel, data in payload.items():
                (Path(tmp) / "input" / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / "input" / rel).write_bytes(data)
            local = BatchSpec(spec.prompt, spec.workflow, str(Path(tmp) / "input"), spec.signature)
            copy_path = Path(tmp) / "input" / item.source.name
            result = run_input(local, item, Path(tmp) / "out", report, source=copy_path)
            if result.status == "done":
                result.files = {rel: (Path(tmp) / "out" / rel).read_bytes() for rel in result.outputs}
            # Messages name the input as the user knows it, not this worker's copy.
            result.error, result.details = (t.replace(str(copy_path), str(item.source)) for t in (result.error, result.details))
            return result


class ProgressBoard:
    """A tiny Ray actor where workers post their input's current node and the driver reads them all."""

    def __init__(self):
        self.lines: dict[str, tuple[str, str]] = {}  # input name -> (current node, host:pid)

    def set(self, name: str, text: str, where: str = "") -> None:
        self.lines[name] = (text, where)

    def read(self) -> dict:
        return dict(self.lines)


def _pack(source: Path) -> dict[str, bytes]:
    """An input's bytes for a worker that cannot read our disk: ``{relative path: bytes}``."""
    if source.is_dir():
        return {f"{source.name}/{p.name}": p.read_bytes() for p in sorted(source.iterdir()) if p.is_file()}
    return {source.name: source.read_bytes()}


def worker_env(local: bool) -> dict | None:
    """The Ray ``runtime_env`` that makes workers import this vid4d.

    An installed vid4d (``pip install -e .`` or a wheel) is found by any worker running the same Python
    environment, so nothing is needed. A vid4d found through a path entry (``PYTHONPATH``, the working
    folder) is passed on in the workers' ``PYTHONPATH`` when they run on this machine.
    """
    from .. import __file__ as package_file

    root = Path(package_file).parent.parent
    if not local or not (root / "vid4d" / "__init__.py").is_file():
        return None
    paths = [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _worker_failure(item: BatchInput, exc: Exception) -> InputResult:
    """A Ray error of one input (its worker died, was OOM-killed, or the call failed) as that input's result."""
    import ray

    text = str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    if isinstance(exc, ray.exceptions.OutOfMemoryError) or (isinstance(exc, ray.exceptions.RayActorError) and "memory" in text.lower()):
        error = "the worker was killed, most likely out of memory (also on its one retry); lower --workers or set --memory-per-task"
    elif isinstance(exc, ray.exceptions.RayActorError):
        error = f"the worker died (also on its one retry): {first}"
    else:
        error = f"{type(exc).__name__}: {first}"
    return InputResult(item.name, str(item.source), "failed", error=error, details=text)


class RayEngine:
    """Ray actors, a local instance sized to this machine or an existing cluster (``address``)."""

    def __init__(self, address=None, workers=None, cpus_per_task=1.0, gpus_per_task=None, memory_per_task=None, files="auto"):
        import ray  # noqa: F401 - ImportError here means: no Ray, run sequentially

        if files not in FILE_MODES:
            raise BatchError(f"files: expected one of {FILE_MODES}, got {files!r}")
        if cpus_per_task <= 0 or (gpus_per_task is not None and gpus_per_task < 0) or (workers is not None and workers < 1):
            raise BatchError("--workers must be at least 1, --cpus-per-task above 0 and --gpus-per-task 0 or more")
        self.address, self.workers, self.cpus, self.gpus, self.memory = address, workers, float(cpus_per_task), gpus_per_task, memory_per_task
        self.ship = files == "ship" or (files == "auto" and address is not None)
        self.actors: list = []
        self.board = None
        self.own_connection = False
        self.options: dict | None = None
        self.worker_cls = None
        self.target = 0
        self.devices: set[str] = set()  # what the workers compute on ("cpu", "cuda")
        self._description = "Ray"

    def start(self, count: int) -> None:
        """Connect (or use this process's Ray connection) and have up to ``count`` workers ready.

        Started again (another batch on the same engine), it keeps the workers it has, their models
        still loaded, and replaces those a Ctrl-C killed.
        """
        import ray

        if not ray.is_initialized():
            self._connect(ray)
        if self.options is None:
            self._shape(ray)
        new = [self.worker_cls.options(**self.options).remote(max(1, int(self.cpus))) for _ in range(min(self.target, count) - len(self.actors))]
        if self.board is None:
            self.board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
        self.actors += self._started(ray, new)

    def _shape(self, ray) -> None:
        """Resources per worker and how many workers, from the options and what the cluster has."""
        resources = ray.cluster_resources()
        have_cpus, have_gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        gpus = self.gpus if self.gpus is not None else (1.0 if have_gpus >= 1 else 0.0)
        fit = int(have_gpus // gpus) if gpus else int(have_cpus // self.cpus)
        self.target = max(1, self.workers or fit)
        if self.target > fit:
            print(f"note: {self.target} workers of {self.cpus:g} CPU / {gpus:g} GPU each do not all fit the cluster now ({have_cpus:g} CPUs, "
                  f"{have_gpus:g} GPUs); some wait for resources", file=sys.stderr)
        self.options = {"num_cpus": self.cpus, "num_gpus": gpus, "max_restarts": -1, "max_task_retries": 1}
        if self.memory:
            self.options["memory"] = int(self.memory * 2**30)
        env = worker_env(local=self.address is None)
        if env:
            self.options["runtime_env"] = env
        self.worker_cls = ray.remote(BatchWorker)
        where = "local Ray instance" if self.own_connection and self.address is None else f"Ray cluster at {self.address or ray.get_runtime_context().gcs_address}"
        self._description = f"Ray: up to {self.target} worker(s) of {self.cpus:g} CPU / {gpus:g} GPU on a {where}" + (
            ", inputs and outputs sent through Ray" if self.ship else ""
        )

    @property
    def description(self) -> str:
        return self._description + (f" (computing on {', '.join(sorted(self.devices))})" if self.devices else "")

    def _connect(self, ray) -> None:
        kwargs = {"log_to_driver": False, "logging_level": "warning"}
        try:
            if self.address is None:
                import torch

                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                cpus = os.cpu_count() or 1
                if self.workers:
                    cpus = max(cpus, math.ceil(self.workers * self.cpus))  # --workers N always starts N on this machine
                gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
                ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds for an unreachable cluster
            target = self.address or "a local instance"
            raise BatchError(f"could not start Ray ({target}): {type(exc).__name__}: {exc}") from exc
        self.own_connection = True

    def _started(self, ray, actors: list) -> list:
        """The workers of ``actors`` that started (each imports vid4d once) and run our vid4d version."""
        from .. import __version__

        if not actors:
            return []
        hellos = {actor.hello.remote(): actor for actor in actors}
        ready, waiting = ray.wait(list(hellos), num_returns=len(hellos), timeout=WORKER_START_TIMEOUT_S)
        if not ready and not self.actors:
            raise BatchError(f"no Ray worker started within {WORKER_START_TIMEOUT_S:.0f} s: the cluster lacks the CPUs/GPUs/memory asked per task")
        for ref in waiting:  # never scheduled: run on the workers that did start
            ray.kill(hellos[ref])
        try:
            infos = ray.get(ready)
        except ray.exceptions.RayError as exc:
            raise BatchError(f"the Ray workers could not start vid4d (is vid4d {__version__} installed on every node, with the same Python?): {exc}") from exc
        wrong = {i["version"] for i in infos if i["version"] != __version__}
        if wrong:
            raise BatchError(f"the Ray workers run vid4d {', '.join(sorted(wrong))} but this driver runs {__version__}: install the same version on every node")
        self.devices |= {i["device"] for i in infos}
        return [hellos[ref] for ref in ready]

    def run(self, spec: BatchSpec, todo: list[BatchInput], out: Path, progress: BatchProgress, record: Callable) -> None:
        import ray

        spec_ref = ray.put(spec)
        pending, idle = deque(todo), deque(self.actors)
        in_flight: dict = {}  # ObjectRef -> (actor, input)
        try:
            while pending or in_flight:
                while pending and idle:
                    item = pending.popleft()
                    payload = None
                    if self.ship:
                        try:
                            payload = _pack(item.source)
                        except OSError as exc:
                            record(item, InputResult(item.name, str(item.source), "failed", error=f"cannot read the input: {exc}"))
                            continue
                    actor = idle.popleft()
                    staging = None if self.ship else str(_staging(out, item))
                    in_flight[actor.run.remote(spec_ref, item, self.board, staging, payload)] = (actor, item)
                    progress.started(item.name)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.25)
                for ref in ready:
                    actor, item = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = _worker_failure(item, exc)
                    idle.append(actor)
                    record(item, result)
                running = {item.name for _, item in in_flight.values()}
                progress.running({k: text for k, (text, _) in ray.get(self.board.read.remote()).items() if k in running})
        except KeyboardInterrupt:
            # A running actor task cannot be cancelled, only its process killed; no marker is written for it.
            for actor, _ in in_flight.values():
                ray.kill(actor, no_restart=True)
            if in_flight:
                ray.wait(list(in_flight), num_returns=len(in_flight), timeout=10)
            for actor, item in in_flight.values():
                shutil.rmtree(_staging(out, item), ignore_errors=True)
                self.actors.remove(actor)
            raise _Cancelled([item for _, item in in_flight.values()]) from None

    def close(self) -> None:
        try:
            import ray

            if ray.is_initialized():
                for actor in self.actors + ([self.board] if self.board is not None else []):
                    ray.kill(actor, no_restart=True)
                if self.own_connection:
                    ray.shutdown()
        finally:
            self.actors, self.board = [], None


def make_engine(engine: str = "auto", say: Callable[[str], None] = print, **ray_options):
    """``auto``: Ray when installed, else sequential (and say so); ``ray``; ``sequential``."""
    if engine == "sequential":
        return SequentialEngine()
    if engine not in ("auto", "ray"):
        raise BatchError(f"engine: expected auto, ray or sequential, got {engine!r}")
    try:
        return RayEngine(**ray_options)
    except ImportError:
        if engine == "ray" or ray_options.get("address"):
            raise BatchError("Ray is not installed: pip install vid4d[cluster] (or pip install ray)") from None
        say("Ray is not installed (pip install vid4d[cluster]): running the inputs one after another in this process")
        return SequentialEngine()


# ---------------------------------------------------------------- the batch
@dataclass
class BatchReport:
    results: list[InputResult]
    engine: str
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if any(r.status == "failed" for r in self.results) else 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def run_batch(
    workflow,
    inputs: Iterable,
    out,
    *,
    overrides=(),
    force: bool = False,
    engine="auto",
    progress: BatchProgress | None = None,
    say: Callable[[str], None] = print,
    **ray_options,
) -> BatchReport:
    """Run ``workflow`` once per input into ``out/<name>/``; returns every input's result (in input order).

    ``ray_options``: ``address`` (``ray://HOST:10001``, ``auto``; default a local instance), ``workers``,
    ``cpus_per_task``, ``gpus_per_task``, ``memory_per_task`` (GiB), ``files`` (``shared``: workers
    read inputs and write outputs at the same paths; ``ship``: sent through Ray; ``auto``: shared for a
    local instance, ship for a cluster). Raises :class:`BatchError` / ``WorkflowError`` when the batch
    cannot start; a failing input is a "failed" result. ``engine``: ``auto`` (Ray when installed, else
    sequential), ``ray``, ``sequential``, or a started engine object to reuse across batches.
    """
    out = Path(out).expanduser().resolve()
    spec = BatchSpec.from_file(workflow, overrides)
    items = collect_inputs(inputs, exclude=[out])
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, InputResult] = {}
    todo = []
    for item in items:
        before = None if force else done_before(out, item, spec)
        if before is not None:
            results[item.name] = before
        elif not item.source.exists():
            results[item.name] = finish(out, item, InputResult(item.name, str(item.source), "failed", error=f"input not found: {item.source}"), spec)
        else:
            todo.append(item)
    progress = progress or BatchProgress()
    owned = isinstance(engine, str)  # an engine object passed in stays open (its workers keep their models)
    if not owned:
        runner = engine
    else:
        runner = make_engine(engine, say, **ray_options) if todo else SequentialEngine()
    interrupted = False

    def record(item, result):
        results[item.name] = finish(out, item, result, spec)
        progress.finished(results[item.name])

    try:
        if todo:
            runner.start(len(todo))
            say(f"{len(todo)} of {len(items)} input(s) to run ({len(items) - len(todo)} done before) with {runner.description}; outputs in {out}")
        progress.start(len(todo), skipped=len(items) - len(todo))
        runner.run(spec, todo, out, progress, record)
    except _Cancelled as cancelled:
        interrupted = True
        for item in cancelled.in_flight:
            results[item.name] = InputResult(item.name, str(item.source), "cancelled", note="Ctrl-C: runs again next time")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        if owned:
            runner.close()
    ordered = [results.get(i.name) or InputResult(i.name, str(i.source), "not run") for i in items]
    report = BatchReport(ordered, runner.description, interrupted)
    (out / SUMMARY_NAME).write_text(json.dumps({"workflow": str(workflow), "engine": report.engine, "interrupted": interrupted, "inputs": [asdict(r) for r in ordered]}, indent=1) + "\n")
    return report


def summary_table(report: BatchReport, out=None) -> str:
    """The table printed at the end: input, status, time, outputs, error."""
    rows = [("input", "status", "time", "outputs", "error")]
    for r in report.results:
        outputs = "" if not r.outputs else r.outputs[0] + (f" +{len(r.outputs) - 1}" if len(r.outputs) > 1 else "")
        message = r.error or r.note
        if r.status == "failed" and out is not None:
            message += f" (see {Path(out) / (r.name + ERROR_SUFFIX)})"
        rows.append((r.name, r.status, _seconds(r.seconds) if r.seconds else "", outputs, message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("done", "skipped", "failed", "cancelled", "not run") if report.count(s))
    return "\n".join([line.rstrip() for line in lines] + [counts + (" (interrupted)" if report.interrupted else "")])


def main(args) -> int:
    """``python -m vid4d batch`` (arguments parsed by ``__main__``)."""
    try:
        report = run_batch(
            args.workflow,
            args.inputs,
            args.out,
            overrides=args.overrides,
            force=args.force,
            engine="sequential" if args.sequential else "auto",
            address=args.address,
            workers=args.workers,
            cpus_per_task=args.cpus_per_task,
            gpus_per_task=args.gpus_per_task,
            memory_per_task=args.memory_per_task,
            files=args.files,
        )
    except (BatchError, wf.WorkflowError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report, args.out))
    return report.exit_code
