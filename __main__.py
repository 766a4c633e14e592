"""Command line: ``python -m vid4d run|batch|demo|convert|nodes`` (see ``python -m vid4d -h``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent
DEMO_WORKFLOW = PACK_DIR / "workflows" / "vid4d_demo.json"


def _printer(label: str, done: int, total: int) -> None:
    end = "\n" if done >= total else "\r"
    print(f"      {label}: {done}/{total}", end=end, flush=True)


def _run(workflow: Path, out: Path, input_file=None, overrides=()) -> int:
    from . import NODE_CLASS_MAPPINGS
    from .nodes import runtime, workflow as wf

    out = out.resolve()
    runtime.configure_headless(input_dir=Path.cwd(), output_dir=out, progress_printer=_printer)
    print(f"running {workflow} (device: {runtime.get_device()}, outputs in {out})")
    try:
        result = wf.run_file(workflow, NODE_CLASS_MAPPINGS, input_file=input_file, overrides=list(overrides))
    except (wf.WorkflowError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, runtime.Interrupted):
        print("interrupted", file=sys.stderr)
        return 130
    total = sum(result.timings.values())
    print(f"done in {total:.1f}s")
    for path in result.files():
        print(f"wrote {path}")
        sheet = path.with_name(path.stem + "_sheet.png")
        if sheet.exists():
            print(f"wrote {sheet}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vid4d", description="Vid4D: run ComfyUI workflows of the Vid4D nodes headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a workflow file (UI or API format)")
    run.add_argument("workflow", type=Path)
    run.add_argument("--input", type=Path, help="a video/image file for the workflow's load node(s)")
    run.add_argument("--out", type=Path, default=Path("vid4d_output"), help="output folder (default ./vid4d_output)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE_ID.INPUT=VALUE", help="override an input, e.g. --set 1.num_frames=8 (repeatable)")
    batch = sub.add_parser("batch", help="run a workflow once per input (files, folders, .txt lists of paths), on Ray when installed")
    batch.add_argument("workflow", type=Path)
    batch.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="video/image files, folders of them (a sub-folder of frames is one input), or .txt lists of paths")
    batch.add_argument("--out", type=Path, default=Path("vid4d_batch"), help="output folder, one sub-folder per input (default ./vid4d_batch)")
    batch.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE_ID.INPUT=VALUE", help="override an input of every run (repeatable)")
    batch.add_argument("--force", action="store_true", help="redo inputs that are already done")
    batch.add_argument("--address", help="an existing Ray cluster: ray://HEAD:10001, or auto for the one started here with `ray start` (default: a local Ray instance)")
    batch.add_argument("--workers", type=int, help="Ray workers (default: as many as the CPUs/GPUs per task fit)")
    batch.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs per worker (default 1; also its torch threads)")
    batch.add_argument("--gpus-per-task", type=float, help="GPUs per worker (default 1 where the cluster has GPUs, else 0; 0.5 puts two on a GPU)")
    batch.add_argument("--memory-per-task", type=float, metavar="GB", help="memory Ray reserves per worker (schedules fewer workers per machine)")
    batch.add_argument("--files", choices=("auto", "shared", "ship"), default="auto", help="shared: workers read inputs and write --out at the same paths; ship: send them through Ray; auto: shared locally, ship with --address")
    batch.add_argument("--sequential", action="store_true", help="run the inputs one after another in this process, without Ray")
    demo = sub.add_parser("demo", help="run the main example on the built-in sample scene (video + contact sheet)")
    demo.add_argument("--out", type=Path, default=Path("vid4d_output"))
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE_ID.INPUT=VALUE")
    conv = sub.add_parser("convert", help="turn an API-format workflow into a UI-format one (for authoring examples)")
    conv.add_argument("api_json", type=Path)
    conv.add_argument("-o", "--output", type=Path)
    sub.add_parser("nodes", help="list the nodes of the pack")
    args = parser.parse_args(argv)

    if args.command == "run":
        return _run(args.workflow, args.out, args.input, args.overrides)
    if args.command == "batch":
        from .nodes import batch as batch_module

        return batch_module.main(args)
    if args.command == "demo":
        return _run(DEMO_WORKFLOW, args.out, None, args.overrides)
    if args.command == "convert":
        from . import NODE_CLASS_MAPPINGS
        from .nodes import workflow as wf

        ui = wf.api_to_ui(wf.load_workflow(args.api_json), NODE_CLASS_MAPPINGS)
        text = json.dumps(ui, indent=2)
        if args.output:
            args.output.write_text(text + "\n")
        else:
            print(text)
        return 0
    if args.command == "nodes":
        from . import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

        for name, cls in sorted(NODE_CLASS_MAPPINGS.items()):
            print(f"{name:24s} {NODE_DISPLAY_NAME_MAPPINGS.get(name, name):32s} {cls.CATEGORY}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
