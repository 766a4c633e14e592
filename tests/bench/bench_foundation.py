"""Print timings and peak memory of the foundation pieces: pack import, sample scene, video I/O.

    python tests/bench/bench_foundation.py [--frames 49 --width 720 --height 480]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    args = ap.parse_args()

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import vid4d"], check=True)
    print(f"import vid4d (fresh interpreter, incl. torch): {time.perf_counter() - t:.2f} s")

    from vid4d.py import video as vio
    from vid4d.py.scene import sample_scene

    t = time.perf_counter()
    scene = sample_scene(args.frames, args.width, args.height)
    print(f"sample_scene {args.frames}x{args.width}x{args.height}: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    scene.tracks(0)
    print(f"ground-truth tracks: {time.perf_counter() - t:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        t = time.perf_counter()
        vio.write_video(scene.frames, path, 12.0)
        print(f"write mp4: {time.perf_counter() - t:.2f} s ({path.stat().st_size / 1e6:.2f} MB)")
        t = time.perf_counter()
        clip = vio.read_video(path, width=args.width // 2, multiple_of=16)
        print(f"read + resize to {clip.frames.shape[2]}x{clip.frames.shape[1]}: {time.perf_counter() - t:.2f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
