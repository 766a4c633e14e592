"""``python -m vid4d batch``: one workflow over many inputs on a local Ray cluster started once for this
module (2 CPUs, 2 workers), the sequential fallback, resuming, a corrupt input, Ctrl-C and a killed worker."""

import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import ray
import torch

from vid4d.nodes import batch
from vid4d.py import video as vio
from vid4d.py.scene import sample_scene

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "tests" / "data" / "batch_workflow.json"  # Vid4DLoadVideo -> Vid4DSaveVideo (+ contact sheet)
GOOD = ["take0", "take1", "take2"]
OUTPUTS = ["clip_00001.webp", "clip_00001_sheet.png"]  # (webp: libx264 here is not byte-reproducible)


class Quiet(batch.BatchProgress):
    def __init__(self):
        super().__init__(stream=io.StringIO(), live=False)


def _batch(inputs, out, **kw):
    kw.setdefault("progress", Quiet())
    kw.setdefault("say", lambda _: None)
    return batch.run_batch(WORKFLOW, inputs, out, **kw)


def _statuses(report):
    return {r.name: r.status for r in report.results}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four small videos, one of them corrupt."""
    folder = tmp_path_factory.mktemp("clips")
    for i, name in enumerate(GOOD):
        vio.write_video(sample_scene(8, 64, 48, seed=i).frames, folder / f"{name}.mp4", 8.0)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but not a video" * 40)
    return folder


@pytest.fixture(scope="module")
def engine():
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="warning")
    eng = batch.RayEngine(workers=2)
    eng.start(2)
    yield eng
    eng.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def first_run(engine, clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray_out")
    return out, _batch([clips], out, engine=engine)


def test_a_corrupt_input_fails_alone_and_the_others_finish_on_ray(first_run):
    out, report = first_run
    results = {r.name: r for r in report.results}
    assert [r.name for r in report.results] == ["corrupt", *GOOD]
    assert _statuses(report) == {"corrupt": "failed", "take0": "done", "take1": "done", "take2": "done"}
    assert report.exit_code == 1
    bad = results["corrupt"]
    assert "node 1 (Vid4DLoadVideo): could not decode" in bad.error and "corrupt.mp4" in bad.error
    assert not (out / "corrupt").exists() and "Traceback" in (out / "corrupt.error.txt").read_text()
    assert not list(out.glob("*.partial"))
    for name in GOOD:
        folder = out / name
        marker = json.loads((folder / batch.MARKER).read_text())
        assert results[name].outputs == marker["outputs"] == OUTPUTS
        assert vio.read_video(folder / OUTPUTS[0]).frames.shape[:3] == (8, 32, 48)  # width 48, 8-multiple height
        assert "[1] Vid4DLoadVideo" in (folder / batch.LOG_NAME).read_text()
    # Ran on the Ray workers (not this process), two processes serving four inputs: models load once per worker.
    workers = {r.worker for r in report.results}
    assert len(workers) <= 2 and not any(w.endswith(f":{os.getpid()}") for w in workers)
    summary = json.loads((out / batch.SUMMARY_NAME).read_text())
    assert [i["status"] for i in summary["inputs"]] == ["failed", "done", "done", "done"]
    table = batch.summary_table(report, out)
    assert table.splitlines()[0].split() == ["input", "status", "time", "outputs", "error"]
    assert table.splitlines()[-1] == "3 done, 1 failed"


def test_a_rerun_skips_the_finished_inputs(first_run, engine, clips):
    out, _ = first_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.webp")}
    again = _batch([clips], out, engine=engine)
    assert _statuses(again) == {"corrupt": "failed", "take0": "skipped", "take1": "skipped", "take2": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.webp")} == stamps
    assert all(r.note == "" for r in again.results)


def test_the_sequential_fallback_gives_identical_outputs(first_run, clips, tmp_path, monkeypatch):
    out, report = first_run
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    said = []
    seq = _batch([clips], tmp_path, say=said.append)
    assert any("Ray is not installed" in line and "one after another" in line for line in said)
    assert seq.engine.startswith("sequential") and _statuses(seq) == _statuses(report)
    assert {r.name: r.worker for r in seq.results}["take0"].endswith(f":{os.getpid()}")
    for name in GOOD:
        _same_outputs(tmp_path / name, out / name)


def _same_outputs(a: Path, b: Path):
    for rel in OUTPUTS:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), (a, rel)


def test_ship_mode_sends_inputs_and_outputs_through_ray(first_run, engine, clips, tmp_path):
    """What a cluster without a shared disk does: input bytes go to the worker, output files come back."""
    out, _ = first_run
    frames = tmp_path / "shots" / "frames"
    frames.mkdir(parents=True)
    for i, frame in enumerate(sample_scene(5, 64, 48, seed=7).frames):
        vio.save_image(frame, frames / f"{i:04d}.png")
    listing = tmp_path / "shots" / "list.txt"
    listing.write_text(f"# one clip and one folder of frames\n{clips / 'take1.mp4'}\nframes\n")
    engine.ship = True
    try:
        report = _batch([listing], tmp_path / "out", engine=engine)
    finally:
        engine.ship = False
    assert _statuses(report) == {"take1": "done", "frames": "done"}
    _same_outputs(tmp_path / "out" / "take1", out / "take1")
    assert vio.read_video(tmp_path / "out" / "frames" / OUTPUTS[0]).frames.shape[0] == 5


def test_a_killed_worker_is_restarted_and_its_input_retried(engine, clips, tmp_path):
    """A worker process killed (the kernel's OOM killer sends SIGKILL): Ray restarts it and retries the input once."""
    pids = [info["pid"] for info in ray.get([actor.hello.remote() for actor in engine.actors])]

    class Killer(Quiet):
        def started(self, name):
            super().started(name)
            os.kill(pids[0], signal.SIGKILL)  # the input just went to the first idle worker

    report = _batch([clips / "take0.mp4"], tmp_path, engine=engine, progress=Killer())
    (result,) = report.results
    assert result.status == "done", result.error
    assert int(result.worker.rsplit(":", 1)[1]) not in pids
    assert (tmp_path / "take0" / OUTPUTS[0]).is_file()


def test_ctrl_c_loses_only_the_inputs_in_flight(engine, clips, tmp_path):
    good = [clips / f"{n}.mp4" for n in GOOD]

    class CtrlC(Quiet):
        def started(self, name):
            super().started(name)
            if self.done >= 1:  # the third input was just sent to a worker
                raise KeyboardInterrupt

    report = _batch(good, tmp_path, engine=engine, progress=CtrlC())
    assert report.interrupted and report.exit_code == 130
    statuses = _statuses(report)
    assert statuses["take2"] == "cancelled" and "done" in statuses.values() and "failed" not in statuses.values()
    for name, status in statuses.items():
        assert (tmp_path / name / batch.MARKER).exists() == (status == "done")
    assert not list(tmp_path.glob("*.partial"))
    again = _batch(good, tmp_path, engine="sequential")  # (in this process: restarting the killed workers takes longer)
    assert {r.name: r.status for r in again.results} == {n: ("skipped" if statuses[n] == "done" else "done") for n in GOOD}


def test_ctrl_c_in_the_sequential_engine(clips, tmp_path):
    class CtrlC(Quiet):
        def running(self, lines):
            if "take1" in lines:
                raise KeyboardInterrupt

    report = _batch([clips / f"{n}.mp4" for n in GOOD], tmp_path, engine="sequential", progress=CtrlC())
    assert _statuses(report) == {"take0": "done", "take1": "cancelled", "take2": "not run"} and report.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take0", batch.SUMMARY_NAME]


def test_set_applies_to_every_input_and_force_redoes(clips, tmp_path):
    take0 = clips / "take0.mp4"
    assert _statuses(_batch([take0], tmp_path, engine="sequential")) == {"take0": "done"}
    gif = ["2.format=gif", "2.contact_sheet=false"]
    stale = _batch([take0], tmp_path, engine="sequential", overrides=gif)
    assert _statuses(stale) == {"take0": "skipped"} and "--force redoes it" in stale.results[0].note
    redone = _batch([take0], tmp_path, engine="sequential", overrides=gif, force=True)
    assert redone.results[0].outputs == ["clip_00001.gif"]
    assert sorted(p.name for p in (tmp_path / "take0").iterdir()) == ["clip_00001.gif", batch.MARKER, batch.LOG_NAME]


def test_the_command_line(clips, tmp_path, capsys):
    from vid4d.__main__ import main

    args = ["batch", str(WORKFLOW), str(clips / "take0.mp4"), str(clips / "corrupt.mp4"), "--out", str(tmp_path / "o"), "--sequential", "--set", "1.max_frames=4"]
    assert main(args) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "1 done, 1 failed" and lines[-4].split() == ["input", "status", "time", "outputs", "error"]
    assert vio.read_video(tmp_path / "o" / "take0" / OUTPUTS[0]).frames.shape[0] == 4
    assert main(["batch", str(ROOT / "workflows" / "vid4d_demo.json"), str(clips), "--out", str(tmp_path / "p"), "--sequential"]) == 2
    assert "no Vid4DLoadVideo (or LoadImage) node" in capsys.readouterr().err


def test_inputs_from_files_folders_and_lists(tmp_path):
    clips = tmp_path / "clips"
    (clips / "frames").mkdir(parents=True)
    (clips / "empty").mkdir()
    for name in ("a.mp4", "b.gif", "notes.md", "frames/0001.png", "frames/0002.png"):
        (clips / name).write_bytes(b"x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mov").write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\n\nother/a.mov\nclips/frames\n")
    items = batch.collect_inputs([clips, listing])
    assert [i.source for i in items] == [clips / "a.mp4", clips / "b.gif", clips / "frames", other / "a.mov"]
    names = [i.name for i in items]
    assert names[1:3] == ["b", "frames"] and names[0].startswith("a_") and names[3].startswith("a_") and names[0] != names[3]
    assert batch.collect_inputs([clips / "b.gif", clips / "b.gif"]) == [batch.BatchInput(clips / "b.gif", "b")]
    with pytest.raises(batch.BatchError, match="input not found"):
        batch.collect_inputs([tmp_path / "nope.mp4"])
    with pytest.raises(batch.BatchError, match="no video or image files"):
        batch.collect_inputs([clips / "empty"])


def test_a_dead_worker_is_summarised_as_that_inputs_failure():
    item = batch.BatchInput(Path("/clips/x.mp4"), "x")
    oom = batch._worker_failure(item, ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory."))
    assert oom.status == "failed" and "out of memory" in oom.error and "--workers" in oom.error
    died = batch._worker_failure(item, ray.exceptions.ActorDiedError())
    assert died.error.startswith("the worker died (also on its one retry)")


def test_oom_inside_a_node_is_reported(tmp_path, clips, monkeypatch):
    from vid4d.nodes import video

    def boom(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(video.vio, "write_video", boom)
    report = _batch([clips / "take0.mp4"], tmp_path, engine="sequential")
    assert report.results[0].error.startswith("out of memory: node 2 (Vid4DSaveVideo): CUDA out of memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take0.error.txt", batch.SUMMARY_NAME]


def test_progress_in_a_log_and_in_a_terminal():
    log = io.StringIO()
    plain = batch.BatchProgress(stream=log, live=False)
    plain.start(2)
    plain.started("a")
    plain.finished(batch.InputResult("a", "/a.mp4", "done", 1.5))
    plain.finished(batch.InputResult("b", "/b.mp4", "failed", 0.2, error="boom"))
    lines = log.getvalue().splitlines()
    assert lines[0].strip() == "a: started" and lines[1].startswith("[1/2] a: done in 1.50 s (ETA ")
    assert lines[2].startswith("[2/2] b: failed in 0.20 s: boom")
    term = io.StringIO()
    live = batch.BatchProgress(stream=term, live=True)
    live.start(2, skipped=3)
    live.started("a")
    live.running({"a": "[2/3] DenseTrack3D flow 4/16"})
    live.finished(batch.InputResult("a", "/a.mp4", "done", 1.0))
    live.close()
    text = term.getvalue()
    assert "batch (3 done before)" in text and "1/2" in text and "a: [2/3] DenseTrack3D flow 4/16" in text and "a: done in 1.00 s" in text
