"""Wall time of ``python -m vid4d batch``: the same inputs sequentially (this process) and on a local Ray
instance with N workers, measured in the same run; prints the ratio.

    python tests/bench/bench_batch.py [--inputs 8 --workers 2 --frames 24 --width 192 --height 128]
    python tests/bench/bench_batch.py --workflow MY_WORKFLOW.json      # any workflow with a Vid4DLoadVideo

The default workflow needs no weights: Vid4DLoadVideo -> DenseTrack3D (DIS flow chain) -> Vid4DSaveVideo of
the track preview (animated webp, so the two engines' outputs can be compared byte for byte).
"""

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = {
    "1": {"class_type": "Vid4DLoadVideo", "inputs": {"video": "", "start_frame": 0, "frame_stride": 1, "max_frames": 0, "width": 0, "height": 0, "fit": "crop", "multiple_of": 8, "path": ""}},
    "2": {
        "class_type": "DenseTrack3D",
        "inputs": {"frames": ["1", 0], "method": "flow_chain", "ref_frame": 0, "fov": 60.0, "flow_preset": "medium", "reanchor_every": 4, "depth_smoothing": 0,
                   "depth_encoding": "disparity", "near": 1.0, "far": 10.0, "weights": "", "preview_grid": 16},
    },
    "3": {"class_type": "Vid4DSaveVideo", "inputs": {"images": ["2", 1], "filename_prefix": "tracks", "fps": ["1", 1], "format": "webp", "crf": 19, "contact_sheet": True}},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--workflow", type=Path, help="a workflow with a Vid4DLoadVideo node (default: a no-weights tracking workflow)")
    args = ap.parse_args()

    from vid4d.nodes import batch
    from vid4d.py import video as vio
    from vid4d.py.scene import sample_scene

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = tmp / "clips"
        clips.mkdir()
        for i in range(args.inputs):
            vio.write_video(sample_scene(args.frames, args.width, args.height, seed=i).frames, clips / f"shot{i:02d}.mp4", 12.0)
        workflow = args.workflow
        if workflow is None:
            workflow = tmp / "workflow.json"
            workflow.write_text(json.dumps(WORKFLOW))
        quiet = dict(say=lambda _: None)

        def progress():
            return batch.BatchProgress(stream=io.StringIO(), live=False)

        print(f"{args.inputs} inputs of {args.frames} frames {args.width}x{args.height}; workflow {workflow.name}")
        t = time.perf_counter()
        seq = batch.run_batch(workflow, [clips], tmp / "sequential", engine="sequential", progress=progress(), **quiet)
        t_seq = time.perf_counter() - t
        print(f"sequential (this process):      {t_seq:7.1f} s  ({seq.count('done')} done)")

        t = time.perf_counter()
        engine = batch.RayEngine(workers=args.workers)
        try:
            engine.start(args.inputs)
            t_start = time.perf_counter() - t
            ray = batch.run_batch(workflow, [clips], tmp / "ray", engine=engine, progress=progress(), **quiet)
        finally:
            engine.close()
        t_ray = time.perf_counter() - t
        print(f"Ray, {args.workers} workers:                {t_ray:7.1f} s  ({ray.count('done')} done; {t_start:.1f} s of it starting Ray and the workers)")
        for name, report in (("sequential", seq), ("Ray", ray)):
            print(f"  per input, {name}: " + " ".join(f"{r.seconds:.1f}" for r in report.results) + " s")
        print(f"ratio sequential / Ray:         {t_seq / t_ray:7.2f}x  (without the start-up: {t_seq / max(t_ray - t_start, 1e-9):.2f}x)")
        same = all(
            (tmp / "sequential" / r.name / rel).read_bytes() == (tmp / "ray" / r.name / rel).read_bytes()
            for r in seq.results
            for rel in r.outputs
            if not rel.endswith(".mp4")  # libx264 output is not byte-reproducible here
        )
        print(f"outputs identical: {'yes' if same else 'NO'}")
        if seq.count("done") != args.inputs or ray.count("done") != args.inputs:
            sys.exit("some inputs failed")


if __name__ == "__main__":
    main()
