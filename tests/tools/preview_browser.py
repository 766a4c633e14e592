"""Check the 3D previews in a real ComfyUI + browser (a local developer check, not run by pytest or CI).

    python tests/tools/preview_browser.py OUT_DIR [--run]

Starts a real ComfyUI with this pack (../shared/tools/comfy_harness, after its setup.sh), opens
workflows/gsdit_dolly_zoom.json in headless Chromium and checks (preview_browser.js):
1. no page error or console error from /extensions/vid4d/;
2. the CameraPath preview canvas is not empty and its pixels change when a widget changes;
3. the scrubber's camera view differs from the orbit view;
4. the keyframe editor: adding keys writes the `keyframes` widget, an invalid entry shows a message and
   leaves the widget alone, and a saved-and-reloaded workflow keeps the keys (widget and editor);
5. with --run: after pressing Run, LiftGaussians' preview shows points and CameraPath borrows them.
PNG crops of each preview go to OUT_DIR. Exit 0 when every check passed.
"""

import os
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("COMFY_HARNESS_DIR", PACK.parent / "shared" / "tools" / "comfy_harness"))


def main(args: list[str]) -> int:
    if not args or args[0].startswith("-"):
        print(__doc__)
        return 2
    out = Path(args[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HARNESS))
    import comfy_harness as ch

    with ch.ComfyServer(packs=[str(PACK)], pack_name="vid4d") as server:
        env = dict(os.environ, NODE_PATH=os.path.join(ch.NODE_DIR, "node_modules"))
        workflow = PACK / "workflows" / "gsdit_dolly_zoom.json"
        cmd = ["node", str(Path(__file__).with_suffix(".js")), server.url, str(workflow), str(out), *(["--run"] if "--run" in args else [])]
        return subprocess.run(cmd, env=env, timeout=900).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
