"""Ask ComfyUI's real frontend how it reads our workflows (a developer tool, not run by the tests).

    python tests/tools/frontend_export.py IN.json OUT.json [IN2.json OUT2.json ...]

Starts a real ComfyUI with this pack (via ../shared/tools/comfy_harness, after its setup.sh), loads
each workflow (UI or API format) in headless Chromium and writes ``{"ui", "api", "frontend"}``:
the UI format the frontend would save and the API prompt its Run button would send. Use it to
author example workflows (load an API file, keep ``ui``) and to refresh
``tests/data/frontend_conversions.json`` after changing a shipped workflow.
"""

import os
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("COMFY_HARNESS_DIR", PACK.parent / "shared" / "tools" / "comfy_harness"))


def main(args: list[str]) -> int:
    if len(args) < 2 or len(args) % 2:
        print(__doc__)
        return 2
    sys.path.insert(0, str(HARNESS))
    import comfy_harness as ch

    with ch.ComfyServer(packs=[str(PACK)], pack_name="vid4d") as server:
        env = dict(os.environ, NODE_PATH=os.path.join(ch.NODE_DIR, "node_modules"))
        cmd = ["node", str(Path(__file__).with_suffix(".js")), server.url, *[str(Path(a).resolve()) for a in args]]
        return subprocess.run(cmd, env=env, timeout=600).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
