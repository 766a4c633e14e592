"""Dense 3D point tracks (D3D-PT in GS-DiT): every pixel of a reference frame followed through the video."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import sys
import threading
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .camera import intrinsics_from_fov, pixel_grid, unproject_pixels
from .checks import TensorData, check_finite, check_finite_number, check_positive_int, check_range, check_tensor
from .depth import DepthVideo
from .flow import check_dis_size, check_preset, cv2_threads, dis_flow_grey, fb_check, finest_scale, grey_u8, sample_chw
from .workers import Pool


@dataclass
class Tracks3D(TensorData):
    """Where each pixel of frame ``ref_frame`` is in every frame, at what depth, and whether it is seen.

    Attributes:
        uv: ``[T, H, W, 2]`` pixel position (x, y) in frame t of reference pixel (row, col).
        depth: ``[T, H, W]`` its camera-space depth (z) in frame t.
        visibility: ``[T, H, W]`` bool, or float confidence in 0..1.
        intrinsics: ``[3, 3]`` or ``[T, 3, 3]`` of the source camera.
        ref_frame: index of the reference frame, ``0 <= ref_frame < T``.
        depth_known: False when the tracks were made without depth (``depth`` is then the
            placeholder plane z = 1 and carries no information; the camera solve then works from the
            2D tracks alone, see :func:`vid4d.py.solve.solve_camera`).
    """

    uv: torch.Tensor
    depth: torch.Tensor
    visibility: torch.Tensor
    intrinsics: torch.Tensor
    ref_frame: int = 0
    depth_known: bool = True

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("Tracks3D.uv", self.uv, ("T", "H", "W", 2), dims=dims)
        check_tensor("Tracks3D.depth", self.depth, ("T", "H", "W"), dims=dims)
        check_tensor("Tracks3D.visibility", self.visibility, ("T", "H", "W"), kind="bool_or_float", dims=dims)
        check_tensor("Tracks3D.intrinsics", self.intrinsics, [(3, 3), ("T", 3, 3)], dims=dims)
        if self.visibility.is_floating_point():
            check_range("Tracks3D.visibility", self.visibility, 0.0, 1.0)
        if isinstance(self.ref_frame, bool) or not isinstance(self.ref_frame, int) or not 0 <= self.ref_frame < dims["T"]:
            raise ValueError(f"Tracks3D.ref_frame: expected an index in [0, {dims['T']}), got {self.ref_frame!r}")
        if not isinstance(self.depth_known, bool):
            raise ValueError(f"Tracks3D.depth_known: expected True or False, got {self.depth_known!r}")

    @property
    def num_frames(self) -> int:
        return int(self.uv.shape[0])

    @property
    def height(self) -> int:
        return int(self.uv.shape[1])

    @property
    def width(self) -> int:
        return int(self.uv.shape[2])

    def xyz(self) -> torch.Tensor:
        """``[T, H, W, 3]`` camera-space points of frame t's camera: depth · K⁻¹ [u, v, 1]."""
        return unproject_pixels(self.uv, self.depth, self.intrinsics)

    def visible(self, threshold: float = 0.5) -> torch.Tensor:
        """``[T, H, W]`` bool visibility (float confidences thresholded)."""
        return self.visibility if self.visibility.dtype == torch.bool else self.visibility >= threshold


# ---------------------------------------------------------------------------------------------------
# Dense tracking
# ---------------------------------------------------------------------------------------------------

METHODS = ("auto", "flow_chain", "dot_raft")

DOT_VISIBILITY_THRESHOLD = 0.8  # DOT's test-time threshold on the refiner's visibility probability

# Forward-backward test (Sundaram et al. 2010): |f + b|² < α (|f|² + |b|²) + β.
_FB_ALPHA = 0.01
_FB_BETA = 0.5  # px²: ~0.7 px of slack, over ten times DIS's per-pair error at "medium"

# Re-anchoring accepts the direct ref → t position of a track when it passes the forward-backward
# test and lies within _GATE_BASE + _GATE_PER_FRAME · n px of the chained one, n = frames since the
# track was last anchored (0 at the reference). Chaining drifts by well under 0.5 px a frame, so a
# direct match farther away than that is a wrong match, not a correction. A hidden track coasts
# (constant velocity) and may be off by a fraction of its motion, which scales with the image, so
# its gate widens by _RECOVER_PER_FRAME · max(H, W) more per frame.
_GATE_BASE = 1.0
_GATE_PER_FRAME = 0.5
_RECOVER_PER_FRAME = 0.01
# Colour checks at re-anchoring (mean absolute RGB difference over 3x3, 0..1, reference pixel vs
# frame t at the track): a hidden track is recovered only below _RECOVER_PHOTO (inside an occluded
# region both DIS flows are filled in smoothly from the surroundings and can agree with each other);
# a visible track the direct flow does not confirm is dropped above _VISIBLE_PHOTO (looser: lighting
# may change over a long range). Measured on the sample scene at 256x160: visibility accuracy 0.931
# without them, 0.947 with the recovery check (and the splatted backward seed), 0.952 with both.
_RECOVER_PHOTO = 0.08
_VISIBLE_PHOTO = 0.15

# Depth sampling: neighbours within this relative depth of the one nearest the predicted depth are
# the track's surface (the sample scene's objects are ≥ 17 % apart, a steep floor ≤ 6 % per pixel).
_SURFACE_RTOL = 0.10
# A visible track whose depth map reads nearer than this fraction below its predicted depth at all 4
# neighbours has something in front of it (monocular depth flickers by a few % between frames).
_OCCLUDER_GAP = 0.25
# An occluded track's carried depth stays within these factors of its last visible depth.
_CARRY_MIN, _CARRY_MAX = 0.5, 2.0


def track_2d(
    frames,
    ref_frame: int = 0,
    *,
    preset: str = "medium",
    reanchor_every: int = 4,
    progress=None,
    refiner=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense 2D tracks of every pixel of ``ref_frame`` (see :func:`track_dense` for the method).

    Args:
        frames: ``[T, H, W, 3]`` float RGB in 0..1, T ≥ 2 (a list of equal-size ``[H, W, 3]`` frames is stacked).
        ref_frame: the frame whose pixels are tracked.
        preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``.
        reanchor_every: re-anchor on the direct ref → t flow every this many frames (0 = never: plain chaining).
        progress: ``progress(done)`` after each of the T frames (done = 1..T); may raise to cancel.
        refiner: optional DOT-style refiner (see :func:`track_dense`); used when given.

    Returns:
        ``uv [T, H, W, 2]`` float32 positions (x, y) in frame t of reference pixel (row, col), and
        ``visibility [T, H, W]`` bool. Both on the CPU.
    """
    frames = _check_frames(frames)
    num, height, width = frames.shape[:3]
    ref_frame = _check_ref(ref_frame, num)
    uv = torch.empty(num, height, width, 2)
    vis = torch.empty(num, height, width, dtype=torch.bool)
    with contextlib.closing(_iter_tracks(frames, ref_frame, preset, reanchor_every, refiner)) as steps, _Pipeline() as copies:
        for done, (t, _, pos, seen) in enumerate(steps, start=1):
            copies.submit(_store, uv, vis, t, pos, seen)  # the strided copy off the chain's thread
            if progress is not None:
                progress(done)
    return uv, vis


def _store(uv: torch.Tensor, vis: torch.Tensor, t: int, pos: torch.Tensor, seen: torch.Tensor) -> None:
    uv[t], vis[t] = pos, seen


def track_dense(
    frames,
    depth=None,
    ref_frame: int = 0,
    method: str = "auto",
    *,
    intrinsics: torch.Tensor | None = None,
    fov: float = 60.0,
    preset: str = "medium",
    reanchor_every: int = 4,
    depth_smoothing: int = 0,
    progress=None,
    refiner=None,
) -> Tracks3D:
    """Dense 3D point tracks (GS-DiT's D3D-PT): every pixel of ``ref_frame`` followed through the video.

    Methods:
        ``"flow_chain"`` (no weights): DIS optical flow between consecutive frames, composed outward
        from the reference (forward in time, then backward when ``ref_frame > 0``) by bilinear sampling
        of each pair's flow at every track's sub-pixel position. A track stays visible while the
        forward-backward test (Sundaram et al., α 0.01, β 0.5 px², 1.5 px² where the backward
        flow is the coarser one) passes between consecutive frames and it is inside the image; a
        hidden track coasts from its last anchoring at the mean motion
        between its last two anchorings (its last per-frame motions are often already the occluder's,
        the flow being smooth across the edge).

        Every ``reanchor_every`` frames (default 4) the direct flow ref → t and its backward flow
        t → ref re-anchor the tracks. DIS gets the chained displacement as its seed (and the backward
        flow that displacement inverted by splatting), without which it fails beyond ~20 px of motion.
        Where the direct match is forward-backward consistent and near the chained position it
        replaces it, so error does not accumulate; a hidden track matched consistently near where it
        coasted to, in its own colour, is recovered (visible again). A visible track is declared hidden
        when the pixel it sits on is matched consistently to a *different* reference pixel, or its
        colour no longer matches: the tracks a smooth flow dragged along with an occluder, which the
        pairwise test cannot see.

        ``"dot_raft"``: the flow_chain tracks of each frame refined ref → t by ``refiner`` (DOT's
        learned RAFT refiner, initialised with them); visibility = refiner probability ≥ 0.8 (DOT's
        threshold) and inside the image. ``"auto"``: dot_raft when a refiner is given, else flow_chain.

    Depth ("loosely coupled", as in GS-DiT): each track's depth in frame t is read from ``depth[t]`` at
    its sub-pixel position, only while it is visible, and only from the surface it is on: of the 4
    neighbouring pixels, the one whose depth is nearest the track's predicted depth (previous depth +
    last depth velocity) and those within 10 % of it are averaged with their bilinear weights, so a
    track on a depth edge never gets an in-between depth (see :func:`sample_surface_depth`). When all
    4 neighbours are more than 25 % nearer than predicted, something is in front of the track: it is
    marked hidden (so with depth, visibility can be stricter than :func:`track_2d`'s). A hidden or
    out-of-frame track carries its depth forward by its last visible depth velocity (constant when
    it has none), kept within 0.5×..2× its last visible depth, and never reads the occluder's depth.
    ``depth_smoothing`` = w > 1 then replaces each visible sample by the mean of the track's visible
    samples in the centred window of w frames (rounded up to odd). Without depth every depth is 1.0
    (a fronto-parallel plane one unit away): the 2D tracks are unaffected.

    Cost: frames are streamed pairwise, so memory is the output plus O(H W) whatever T. With
    ``preset="medium"`` the direct (re-anchoring) forward flow runs at medium and the others at fast
    (``_PASSES``; small frames: the consecutive forward flows at medium too). While it runs, torch and OpenCV are set to one
    thread each; DIS flows run side by side from Python threads, the consecutive pairs (and the grey
    frames they need) a few frames ahead of the chain (restored afterwards; see ``_dis_threads``),
    and the output copies and depth sampling of each frame on a thread of their own behind it.

    Args:
        frames: ``[T, H, W, 3]`` float RGB in 0..1, T ≥ 2 (a list of equal-size frames is stacked).
        depth: None, ``[T, H, W]`` camera-space z (≤ 0 = unknown) or a :class:`DepthVideo` (its
            ``valid`` mask honoured) of the same size.
        ref_frame: index of the reference frame.
        method: one of :data:`METHODS`.
        intrinsics: ``[3, 3]`` or ``[T, 3, 3]``; default from ``fov`` (horizontal, degrees).
        preset: DIS preset ``"ultrafast"``, ``"fast"`` or ``"medium"``.
        reanchor_every: frames between re-anchorings (0 = plain chaining, which drifts).
        depth_smoothing: temporal window of the per-track depth smoothing in frames (0 or 1 = off).
        progress: ``progress(done)`` once per frame (done = 1..T); it may raise to cancel.
        refiner: ``refiner(src [3,H,W], dst [3,H,W], flow_init [2,H,W], vis_init [H,W]) -> (flow [2,H,W], vis [H,W])``.

    Returns:
        :class:`Tracks3D` on the CPU with bool visibility. All-constant frames (no texture) give zero
        motion and full visibility.

    Raises:
        ValueError: one frame, frames of different sizes, NaN/inf, ``ref_frame`` out of range, a depth
            of another length or size, an unknown method/preset, or ``"dot_raft"`` without a refiner.
    """
    frames = _check_frames(frames)
    num, height, width = frames.shape[:3]
    ref_frame = _check_ref(ref_frame, num)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if method == "dot_raft" and refiner is None:
        raise ValueError("method 'dot_raft' needs the DOT refiner weights (movi_f_raft_patch_4_alpha.pth): load them and pass refiner=, or use method 'flow_chain'")
    if method == "flow_chain":
        refiner = None
    if refiner is not None and not callable(refiner):
        raise ValueError(f"refiner: expected a callable, got {type(refiner).__name__}")
    depth_maps, depth_valid = _check_depth(depth, num, height, width)
    depth_smoothing = check_positive_int("depth_smoothing", depth_smoothing, minimum=0)
    if intrinsics is None:
        intrinsics = intrinsics_from_fov(check_finite_number("fov", fov), width, height)
    else:
        intrinsics = check_tensor("intrinsics", intrinsics, [(3, 3), (num, 3, 3)]).detach().to("cpu", torch.float32)

    uv = torch.empty(num, height, width, 2)
    vis = torch.empty(num, height, width, dtype=torch.bool)
    z = torch.ones(num, height, width)
    carriers: dict[int, _DepthCarrier] = {}

    def store(t: int, prev, pos: torch.Tensor, seen: torch.Tensor) -> None:
        uv[t], vis[t] = pos, seen
        if depth_maps is None:
            return
        if prev is None:
            z[t] = _reference_depth(depth_maps[t], None if depth_valid is None else depth_valid[t])
            return
        direction = 1 if t > ref_frame else -1
        if direction not in carriers:
            carriers[direction] = _DepthCarrier(z[ref_frame])
        z[t], vis[t] = carriers[direction].step(depth_maps[t], None if depth_valid is None else depth_valid[t], pos, seen)

    # The output copies and the depth of frame t do not feed the chain, so they run on a thread of
    # their own (in frame order) while the chain moves on: the cores are otherwise idle while the
    # chain waits for a flow.
    with contextlib.closing(_iter_tracks(frames, ref_frame, preset, reanchor_every, refiner)) as steps, _Pipeline() as jobs:
        for done, (t, prev, pos, seen) in enumerate(steps, start=1):
            jobs.submit(store, t, prev, pos, seen)
            if progress is not None:
                progress(done)
    if depth_maps is not None and depth_smoothing > 1:
        z = _smooth_visible(z, vis, depth_smoothing)
    return Tracks3D.from_checked(uv=uv, depth=z, visibility=vis, intrinsics=intrinsics, ref_frame=ref_frame, depth_known=depth_maps is not None)


# --- validation ------------------------------------------------------------------------------------


def _check_frames(frames) -> torch.Tensor:
    """``[T, H, W, 3]`` float CPU frames, T ≥ 2, finite; a list/tuple of equal-size frames is stacked."""
    if isinstance(frames, (list, tuple)):
        if not frames or not all(isinstance(f, torch.Tensor) for f in frames):
            raise ValueError("frames: expected a tensor [T, H, W, 3] or a non-empty list of [H, W, 3] tensors")
        sizes = sorted({tuple(f.shape) for f in frames})
        if len(sizes) > 1:
            raise ValueError(f"frames: all frames must have the same size [H, W, 3], got {len(sizes)} different sizes: {[list(s) for s in sizes[:4]]}")
        frames = torch.stack(list(frames))
    check_tensor("frames", frames, (None, None, None, 3), finite=False)
    if frames.shape[0] < 2:
        raise ValueError(f"frames: tracking needs at least 2 frames, got {frames.shape[0]}")
    check_dis_size(frames.shape[1], frames.shape[2])
    check_finite("frames", frames)  # before the copy: a node already scanned this very tensor
    return frames.detach().to("cpu")


def _check_ref(ref_frame, num: int) -> int:
    if isinstance(ref_frame, bool) or not isinstance(ref_frame, int) or not 0 <= ref_frame < num:
        raise ValueError(f"ref_frame: expected a frame index in [0, {num}), got {ref_frame!r}")
    return ref_frame


def _check_depth(depth, num: int, height: int, width: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Depth maps ``[T, H, W]`` (CPU float32) and a DepthVideo's valid mask (or None), or (None, None).

    Depth ≤ 0 counts as unknown wherever it is sampled; nothing T-sized is allocated here.
    """
    if depth is None:
        return None, None
    valid, checked = None, isinstance(depth, DepthVideo)  # a DepthVideo checked its values when it was built
    if checked:
        depth, valid = depth.depth, depth.valid
    check_tensor("depth", depth, (None, None, None), finite=False)
    if tuple(depth.shape) != (num, height, width):
        raise ValueError(f"depth: expected [T, H, W] = [{num}, {height}, {width}] to match the frames, got {list(depth.shape)}")
    if not checked:
        check_finite("depth", depth)
    depth = depth.detach().to("cpu", torch.float32)
    return depth, None if valid is None else valid.detach().to("cpu")


# --- the chained tracker ---------------------------------------------------------------------------
#
# Internally positions and flows are channel-first planes ``[2, H, W]`` (x, y): elementwise work on
# separate planes runs several times faster on the CPU than on a trailing dimension of size 2.


def _iter_tracks(frames: torch.Tensor, ref: int, preset: str, reanchor_every: int, refiner):
    """Yield ``(t, prev, uv [H, W, 2], vis [H, W] bool)`` for every frame: ``ref`` first (prev None),
    then ref+1 .. T-1, then ref-1 .. 0 (prev = the frame processed before t in its direction).

    Memory is O(H W) whatever T: frames are converted to grey as the chain reaches them, and only the
    flows of the next ``_LOOKAHEAD`` frames exist at any time. Use it under ``contextlib.closing`` so an
    early exit (a cancelled progress callback) restores the thread settings at once.
    """
    check_preset(preset)
    reanchor_every = check_positive_int("reanchor_every", reanchor_every, minimum=0)
    num, height, width = frames.shape[:3]
    grid = pixel_grid(height, width).permute(2, 0, 1).contiguous()
    yield ref, None, grid.permute(1, 2, 0), torch.ones(height, width, dtype=torch.bool)
    steps = [(prev, t) for order in (range(ref + 1, num), range(ref - 1, -1, -1)) for prev, t in zip([ref, *order], order)]
    passes = _schedule(preset, height, width)
    with _dis_threads() as pools:
        frame_ref = frames[ref].float().permute(2, 0, 1).contiguous()
        greys = _Greys(frames)
        grey_ref = greys.get(ref)
        pending = collections.deque()

        def submit(i: int) -> None:
            # The pair flows do not depend on the tracks: they run ahead (on their own threads, which
            # also make the grey frames) while this frame's sampling, re-anchoring and refinement happen.
            prev, t = steps[i]
            pending.append(_submit_pair(pools.pairs, greys, prev, t, passes))

        chain = None
        for i, (prev, t) in enumerate(steps):
            while len(pending) < _LOOKAHEAD and i + len(pending) < len(steps):
                submit(i + len(pending))
            if prev == ref:  # a new direction
                chain = _Chain(grid, frame_ref, grey_ref, passes, reanchor_every, pools)
            f, b = (_planar(x.result()) for x in pending.popleft())
            pos, vis = chain.step(frames[t], greys.get(t), f, b, abs(t - ref))
            if prev != ref:
                greys.drop(prev)  # its pair flows are done
            if refiner is not None:
                with _torch_threads(pools.torch_threads):  # a CPU refiner gets the CPU back
                    pos, vis = _refine(refiner, frame_ref, frames[t], pos - grid, vis, grid)
            yield t, prev, pos.permute(1, 2, 0), vis


class _Pipeline:
    """One worker thread running jobs in submission order, at most ``limit`` queued (so what they hold
    stays bounded); leaving the context waits for them and re-raises the first error (on an error
    inside the context the jobs not started are dropped)."""

    limit = 4

    def __enter__(self):
        self.pool, self.futures = Pool(1, thread_name_prefix="vid4d-track"), []
        return self

    def submit(self, fn, *args) -> None:
        running = []
        for future in self.futures:
            if not future.done():
                running.append(future)
            elif future.exception() is not None:
                future.result()  # a job failed: stop now
        while len(running) >= self.limit:
            running.pop(0).result()
        self.futures = [*running, self.pool.submit(fn, *args)]

    def __exit__(self, kind, *exc):
        self.pool.shutdown(wait=True, cancel_futures=kind is not None)
        if kind is None:
            for future in self.futures:
                future.result()


def _planar(flow) -> torch.Tensor:
    """DIS's ``[H, W, 2]`` numpy flow as a ``[2, H, W]`` tensor (a view)."""
    return torch.from_numpy(flow).permute(2, 0, 1)


@dataclass(frozen=True)
class _Schedule:
    """The DIS preset of each flow the chained tracker computes, and the slack of its pairwise test.

    The forward flows (consecutive, and the direct ref → t one that re-anchors) carry the tracks, so
    their accuracy is the tracks'; the backward flows only test them for consistency and may be
    coarser, the pairwise test then allowing for their larger error.
    """

    pair_forward: str
    pair_backward: str
    direct_forward: str
    direct_backward: str
    pair_beta: float = _FB_BETA


# "medium" at 720x480 (2-core CPU, one thread per flow): a medium flow costs ~27 ms, a fast one ~8 ms
# (finest scales 1 and 2). Backward flows at "fast" took the tracker from 2.5 to 1.25 medium flows per
# frame; on the sample scene at 720x480x24 against its exact tracks: median error at frame 23 0.197 px
# either way (homography sequence: 0.127 px either way), visibility accuracy 0.9508 / occluded recall
# 0.988 with all four at medium; with the fast backward flows 0.9417 / 0.992 at the pairwise slack
# 0.5 px², 0.9488 / 0.987 at 1.5 px², 0.9497 / 0.986 at 2 px².
# The consecutive forward flows at "fast" as well (issue 16: the one medium flow per frame alone capped
# the tracker at ~28 frames/s): the drift of up to 3 chained fast flows is undone at every re-anchoring
# by the direct flow, still at medium. Same clip: frame 23 error 0.248 px (homography 0.263, frame 8
# 0.054 either way), visibility accuracy 0.9419, occluded recall 0.982; 25.7 → 30-36 frames/s. Every
# 2 frames would keep the error (0.188 / 0.134 px) at 19 frames/s, every 3 0.217 / 0.192 px at 26.
# Small frames, where the direct flow works at full resolution (finest scale 0) and flows are cheap,
# keep medium consecutive flows (see _schedule).
_PASSES = {
    "medium": _Schedule("fast", "fast", "medium", "fast", pair_beta=1.5),  # (the slack where small frames make the pair forward medium)
    "fast": _Schedule("fast", "fast", "fast", "fast"),
    "ultrafast": _Schedule("ultrafast", "ultrafast", "ultrafast", "ultrafast"),
}


def _schedule(preset: str, height: int, width: int) -> _Schedule:
    """The schedule of ``preset`` at this image size. Where the direct forward flow works at full
    resolution (small frames) the consecutive forward flows are at its preset too; where the backward
    preset then works at the same finest scale as the forward one they are the same flow, so the
    pairwise test keeps its usual slack."""
    passes = _PASSES[preset]
    if finest_scale(passes.direct_forward, height, width) == 0:
        passes = dataclasses.replace(passes, pair_forward=passes.direct_forward)
    if finest_scale(passes.pair_backward, height, width) == finest_scale(passes.pair_forward, height, width):
        return dataclasses.replace(passes, pair_beta=_FB_BETA)
    return passes


_LOOKAHEAD = 6  # frames whose pair flows are computed ahead of the chain (keep the cores busy while it waits for a re-anchoring flow)


def _submit_pair(pool, greys, src: int, dst: int, passes):
    """Futures of the forward (src → dst) and backward (dst → src) DIS flows, running concurrently."""
    return (
        pool.submit(lambda: dis_flow_grey(greys.get(src), greys.get(dst), passes.pair_forward)),
        pool.submit(lambda: dis_flow_grey(greys.get(dst), greys.get(src), passes.pair_backward)),
    )


class _Greys:
    """The frames' uint8 greys (what DIS takes), each made once by whichever thread asks first."""

    def __init__(self, frames: torch.Tensor):
        self.frames, self.done, self.lock, self.locks = frames, {}, threading.Lock(), {}

    def get(self, index: int):
        grey = self.done.get(index)
        if grey is not None:
            return grey
        with self.lock:
            lock = self.locks.setdefault(index, threading.Lock())
        with lock:
            if index not in self.done:
                self.done[index] = grey_u8(self.frames[index])
            return self.done[index]

    def drop(self, index: int) -> None:
        self.done.pop(index, None)
        self.locks.pop(index, None)


@contextlib.contextmanager
def _torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _dis_threads():
    """Thread pools for DIS with OpenCV and torch at one thread each while they live (restored after).

    Measured on this project's 2-core CPU: one DIS call takes the same time with OpenCV at 1 or 2
    threads, while two calls side by side from Python threads take ~0.6x the time of two in a row; so
    the forward and backward flows of a pair run concurrently, and pairs run ahead of the chain. The
    direct (re-anchoring) flows get a pool of their own: the chain waits for them, so they must not
    queue behind the pairs computed ahead (which keep the cores busy meanwhile). torch stays at one
    thread: its OpenMP workers spin-wait between operations and starved the DIS threads (a 480x720
    clip ran up to 4x slower with torch at 2 threads). The pair threads run at a lower scheduling
    priority (Linux): they are ahead of the chain, so when the cores are short the chain and the flows
    it waits for go first (+10-15 % frames/s at 480x720, see tests/bench/bench_tracking.py).
    """
    torch_threads = torch.get_num_threads()
    workers = 2 if torch_threads >= 2 else 1
    with (
        _torch_threads(1),
        cv2_threads(1),
        Pool(workers, thread_name_prefix="vid4d-dis", initializer=_lower_priority) as pairs,
        Pool(workers, thread_name_prefix="vid4d-direct") as direct,
    ):
        yield types.SimpleNamespace(pairs=pairs, direct=direct, torch_threads=torch_threads)


_BACKGROUND_NICENESS = 10  # added to the thread's niceness (the range ends at 19)


def _lower_priority() -> None:
    """Lower the calling thread's scheduling priority (Linux, where a thread has its own niceness; it
    dies with its pool). Elsewhere ``setpriority`` would apply to the whole process: nothing is done."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + _BACKGROUND_NICENESS))
        except OSError:
            pass  # a sandbox that refuses it: same results, only the scheduling differs


def _inside(xy: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[H, W]`` bool: planar positions ``[2, H, W]`` inside the image (see :func:`.flow.inside`)."""
    x, y = xy[0], xy[1]
    out = x >= 0  # and-ed in place: no temporary per comparison pair
    out &= x <= width - 1
    out &= y >= 0
    out &= y <= height - 1
    return out


def _at(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """``field [C, H', W']`` sampled bilinearly at planar positions ``xy [2, H, W]`` → ``[C, H, W]``."""
    return sample_chw(field, xy[0], xy[1])


class _Chain:
    """State of one direction of the chained tracker: every reference pixel's position in the last frame."""

    def __init__(self, grid: torch.Tensor, frame_ref: torch.Tensor, grey_ref, passes, reanchor_every: int, pools):
        self.grid, self.frame_ref, self.grey_ref = grid, frame_ref, grey_ref
        self.passes, self.every, self.pool = passes, reanchor_every, pools.direct
        self.height, self.width = grid.shape[1:]
        self.pos = grid.clone()  # [2, H, W] position in the last frame
        self.vis = torch.ones(self.height, self.width, dtype=torch.bool)
        self.since = torch.zeros(self.height, self.width)  # frames since last anchored
        self.anchor_pos = grid.clone()  # position at the last successful anchoring
        self.anchor_vel: torch.Tensor | None = None  # mean per-frame motion between the last two anchorings

    def step(self, frame_t: torch.Tensor, grey_t, f: torch.Tensor, b: torch.Tensor, distance: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance to frame t (``[H, W, 3]``, its grey, ``distance`` frames from the reference) given the
        flows ``f`` (previous → t) and ``b`` (t → previous), ``[2, H, W]``: positions and visibility."""
        f_p = _at(f, self.pos)  # each track's motion, read at its sub-pixel position
        moved = self.pos + f_p
        ok = fb_check(f_p, _at(b, moved), _FB_ALPHA, self.passes.pair_beta, dim=0) & self.vis
        if self.anchor_vel is None:
            self.anchor_vel = f_p
        self.since += 1
        # Visible and consistent: follow the flow. Otherwise (occluded, left the image) coast from the
        # last anchoring at the mean motion between the last two anchorings: the last per-frame
        # motions of a track about to be covered are often already the occluder's (the flow is smooth
        # across the edge), the anchored ones are checked against the direct flow.
        self.pos = torch.where(ok, moved, self._coast())
        self.vis = ok & _inside(self.pos, self.width, self.height)
        if self.every and distance % self.every == 0:
            self._reanchor(frame_t, grey_t)
        return self.pos, self.vis

    def _coast(self) -> torch.Tensor:
        """``[2, H, W]`` positions extrapolated from the last anchoring."""
        return self.anchor_pos + self.anchor_vel * self.since

    def _reanchor(self, frame_t: torch.Tensor, grey_t) -> None:
        """Check the chained tracks against the direct ref → t flow: correct, recover, or declare occluded."""
        frame_t = frame_t.float().permute(2, 0, 1).contiguous()
        disp = self.pos - self.grid
        # Long-range DIS needs a seed (from zero it fails beyond ~20 px of motion; DIS tries the seed
        # as a candidate for every patch at every scale): the chained displacement for the forward
        # flow, its inverse for the backward one.
        fwd = self.pool.submit(dis_flow_grey, self.grey_ref, grey_t, self.passes.direct_forward, disp.permute(1, 2, 0).numpy())
        seed_back = _seed_back(disp, self.pos, self.vis, self.grid, finest_scale(self.passes.direct_backward, self.height, self.width)).numpy()
        bwd = self.pool.submit(dis_flow_grey, grey_t, self.grey_ref, self.passes.direct_backward, seed_back)
        direct, back = _planar(fwd.result()), _planar(bwd.result())
        # How far a direct match may be from where the chain put the track: chaining drifts slowly; a
        # coasting (hidden) track may be off by a fraction of its motion, which scales with the image.
        recover = _GATE_PER_FRAME + _RECOVER_PER_FRAME * max(self.width, self.height)
        gate = _GATE_BASE + torch.where(self.vis, _GATE_PER_FRAME, recover) * self.since

        # Correction / recovery: the direct match of the reference pixel, where consistent and near the
        # chain. A hidden track must also look like itself there: inside an occluded region both DIS
        # flows are filled in smoothly from the surroundings and can agree with each other.
        target = self.grid + direct
        ok = fb_check(direct, _at(back, target), _FB_ALPHA, _FB_BETA, dim=0) & _inside(target, self.width, self.height)
        recovering = ok & ~self.vis
        if bool(recovering.any()):
            ok &= self.vis | (_photometric_error(self.frame_ref, frame_t, target, recovering) <= _RECOVER_PHOTO)
        accept = ok & ((target - self.pos).square().sum(0) <= gate.square())

        # Ownership: the pixel of frame t a visible track sits on, matched consistently back to a
        # *different* reference pixel, shows that pixel's surface, not the track's. This catches tracks
        # that a smooth flow dragged along with an occluder (forward and backward flows then agree
        # with each other, so the pairwise test cannot see it). So does a colour that no longer
        # matches the reference pixel's (a looser threshold: lighting may change over a long range).
        # Only the tracks the direct flow did not confirm are tested (the tests are per track, so
        # evaluating them at those positions alone gives the same answer for a fraction of the work).
        held = self.vis & ~accept & _inside(self.pos, self.width, self.height)
        lost = torch.zeros_like(held)
        if bool(held.any()):
            pick = held.reshape(-1).nonzero().squeeze(1)
            pos = self.pos.reshape(2, -1)[:, pick]
            back_q = sample_chw(back, pos[0], pos[1])
            owner = pos + back_q
            far = (owner - self.grid.reshape(2, -1)[:, pick]).square().sum(0) > gate.reshape(-1)[pick].square()
            claimed = fb_check(back_q, sample_chw(direct, owner[0], owner[1]), _FB_ALPHA, _FB_BETA, dim=0) & far
            stray = _photometric_error(self.frame_ref, frame_t, self.pos, held).reshape(-1)[pick] > _VISIBLE_PHOTO
            lost.view(-1)[pick] = claimed | stray

        since = self.since.clamp_min(1)
        self.pos = torch.where(accept, target, torch.where(lost, self._coast(), self.pos))
        self.vis = (self.vis | accept) & ~lost
        self.anchor_vel = torch.where(accept, (target - self.anchor_pos) / since, self.anchor_vel)
        self.anchor_pos = torch.where(accept, target, self.anchor_pos)
        self.since = torch.where(accept, torch.zeros_like(self.since), self.since)


def _photometric_error(frame_ref: torch.Tensor, frame_t: torch.Tensor, xy: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """``[H, W]`` mean absolute colour difference (0..1), averaged over 3x3, between the reference
    frame ``[3, H, W]`` and frame t ``[3, H, W]`` sampled at the planar positions ``xy``.

    With ``where`` (``[H, W]`` bool) the result is computed (exactly) only there: frame t is sampled at
    those positions and their 3x3 neighbours' alone; elsewhere it is 0.
    """
    height, width = xy.shape[1:]
    if where is None:
        diff = (frame_ref - _at(frame_t, xy)).abs().mean(0)
    else:
        band = _dilate3(where).reshape(-1).nonzero().squeeze(1)
        at = xy.reshape(2, -1)[:, band]
        diff = torch.zeros(height * width)
        diff[band] = (frame_ref.reshape(3, -1)[:, band] - sample_chw(frame_t, at[0], at[1])).abs().mean(0)
        diff = diff.view(height, width)
    return _mean3(diff)


def _dilate3(mask: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` bool: the mask grown by one pixel in all 8 directions."""
    rows = mask.clone()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.clone()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _mean3(x: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` mean over each pixel's 3x3 neighbourhood inside the image (avg_pool2d with
    ``count_include_pad=False``, which is ~5x slower at this size): the nine neighbours summed in
    row-major order, divided by their count."""
    height, width = x.shape
    p = F.pad(x[None], (1, 1, 1, 1))[0]
    total = p[:height, :width].clone()
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                total += p[dy : dy + height, dx : dx + width]
    rows = torch.full((height, 1), 3.0)
    rows[0] = rows[-1] = 2.0
    cols = torch.full((1, width), 3.0)
    cols[:, 0] = cols[:, -1] = 2.0
    if height == 1:
        rows.fill_(1.0)
    if width == 1:
        cols.fill_(1.0)
    return total / (rows * cols)


def _seed_back(disp: torch.Tensor, pos: torch.Tensor, vis: torch.Tensor, grid: torch.Tensor, scale: int) -> torch.Tensor:
    """The backward direct flow's seed ``[H, W, 2]`` (:func:`_invert` of the tracks' displacement) for a
    DIS flow whose finest pyramid level is ``scale``: DIS only reads the seed resized to its levels, so
    where it starts at half resolution or coarser the inverse is taken at half resolution, from every
    second track in each direction (a quarter of the scatter and fixed-point work, which on a busy
    2-core CPU was a third of each re-anchoring), and repeated back to full size."""
    if scale < 1 or min(grid.shape[1:]) < 4:
        return _invert(disp, pos, vis, grid).permute(1, 2, 0)
    height, width = grid.shape[1:]
    # Track (2i, 2j) in half-resolution units: every position and displacement halved, its grid the half grid.
    half = _invert(disp[:, ::2, ::2] * 0.5, pos[:, ::2, ::2] * 0.5, vis[::2, ::2], grid[:, ::2, ::2] * 0.5)
    out = F.interpolate(half[None], size=(2 * half.shape[1], 2 * half.shape[2]), mode="nearest")[0].mul_(2.0)  # (4x faster than repeat_interleave)
    return out[:, :height, :width].permute(1, 2, 0)


def _invert(disp: torch.Tensor, pos: torch.Tensor, vis: torch.Tensor, grid: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Approximate inverse ``[2, H, W]`` of the tracks' displacement: for a pixel q of frame t, b(q) with q + b(q) the reference pixel seen there.

    Visible tracks splat ``-disp`` to the pixel nearest to where they are (averaged where several
    land), which inverts large motions (a moving object) correctly; pixels no visible track reaches
    take the local fixed point b(q) = -d(q + b(q)) instead.
    """
    height, width = grid.shape[1:]
    n = height * width
    landed = (vis & _inside(pos, width, height)).reshape(-1)
    # Every pixel scattered (those that did not land into a spare bin n): no boolean selections, which
    # cost more than the scatter itself at this size.
    x = pos[0].round().clamp(0, width - 1).long()
    y = pos[1].round().clamp(0, height - 1).long()
    index = torch.where(landed, (y * width + x).reshape(-1), n)
    sums = torch.zeros(3, n + 1)
    sums[0].scatter_add_(0, index, torch.ones(n))
    sums[1].scatter_add_(0, index, disp[0].reshape(-1))
    sums[2].scatter_add_(0, index, disp[1].reshape(-1))
    count = sums[0, :n]
    out = -sums[1:, :n] / count.clamp_min(1)
    # The fixed point is per pixel, so it is iterated only where no track landed.
    miss = (count == 0).nonzero().squeeze(1)
    if miss.numel():
        gx, gy = grid[0].reshape(-1)[miss], grid[1].reshape(-1)[miss]
        back = -disp.reshape(2, -1)[:, miss]
        for _ in range(iterations):
            back = -sample_chw(disp, gx + back[0], gy + back[1])
        out[:, miss] = back
    return out.reshape(2, height, width)


def _refine(refiner, frame_ref: torch.Tensor, frame_t: torch.Tensor, flow: torch.Tensor, vis: torch.Tensor, grid: torch.Tensor):
    """Run the learned refiner on one ref → t pair (``flow [2, H, W]``): planar positions and bool visibility ``[H, W]``."""
    height, width = grid.shape[1:]
    with torch.no_grad():
        out = refiner(frame_ref, frame_t.float().permute(2, 0, 1).contiguous(), flow.contiguous(), vis.float())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"refiner: expected a (flow [2, H, W], vis [H, W]) pair, got {type(out).__name__}")
    new_flow = check_tensor("refiner flow", out[0], (2, height, width)).detach().to("cpu", torch.float32)
    prob = check_tensor("refiner visibility", out[1], (height, width)).detach().to("cpu", torch.float32)
    check_range("refiner visibility", prob, 0.0, 1.0)
    pos = grid + new_flow
    return pos, (prob >= DOT_VISIBILITY_THRESHOLD) & _inside(pos, width, height)


# --- depth -----------------------------------------------------------------------------------------


def _reference_depth(depth: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``[H, W]`` depth of the reference pixels; unknown pixels (≤ 0 or not valid) take the frame's
    median known depth (1.0 if none is known)."""
    known = depth > 0 if valid is None else (depth > 0) & valid
    if bool(known.all()):
        return depth.clone()
    fill = float(depth[known].median()) if bool(known.any()) else 1.0
    return torch.where(known, depth, torch.full_like(depth, fill))


def sample_surface_depth(
    depth: torch.Tensor, points: torch.Tensor, predicted: torch.Tensor, valid: torch.Tensor | None = None, rtol: float = _SURFACE_RTOL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth ``[H, W]`` at sub-pixel ``points [..., 2]`` (x, y) on the surface nearest ``predicted [...]`` depth.

    Of the 4 pixels around each point (coordinates clamped into the image), the one whose depth is
    nearest ``predicted`` picks the surface; it and the neighbours within ``rtol`` of its depth are
    averaged with their bilinear weights (renormalised), so a point beside a depth edge reads its own
    side and never a blend of the two; on a smooth surface this is plain bilinear interpolation.
    Pixels with depth ≤ 0 or ``valid`` False are skipped.

    Returns:
        ``depth [...]`` and ``ok [...]`` bool (False where no neighbour is known; depth is then ``predicted``).
    """
    return _surface_depth(depth, points[..., 0], points[..., 1], predicted, valid, rtol)


def _surface_depth(depth, x, y, predicted, valid, rtol: float = _SURFACE_RTOL):
    """:func:`sample_surface_depth` with the positions as planes ``x [...]``, ``y [...]``."""
    height, width = depth.shape
    known_depth = depth if valid is None else torch.where(valid, depth, torch.zeros_like(depth))
    # Blocks of 2x2 pixels whose depths are all known and within rtol of each other (the vast
    # majority) give the same answer as plain bilinear sampling; only points in the other blocks,
    # at depth edges, need the per-neighbour choice.
    p = F.pad(known_depth[None, None], (0, 1, 0, 1), mode="replicate")[0, 0]
    corners = (p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:])  # (elementwise: max_pool2d is 20x slower here)
    high = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
    low = torch.minimum(torch.minimum(corners[0], corners[1]), torch.minimum(corners[2], corners[3]))
    # The edge flag of each block at its top-left pixel, sampled bilinearly with the depth in one pass:
    # a point's own block (top-left pixel at its floor) always has weight > 0, so a flag sample > 0
    # finds every point in an edge block (and a few beside one, for which the per-neighbour choice
    # is the bilinear value anyway), without an index per point (the gather cost more than the sampling).
    field = torch.stack((known_depth, ((low <= 0) | (high > (1 + rtol) * low)).to(known_depth.dtype)))
    sampled = sample_chw(field, x, y)
    out = sampled[0]
    ok = torch.ones_like(out, dtype=torch.bool)
    # The few points near edge blocks (about 1 %) by index: one nonzero, then gathers and scatters of
    # those alone (boolean masks would each scan the whole frame again).
    edge = (sampled[1] > 0).reshape(-1).nonzero().squeeze(1)
    if edge.numel():
        ex, ey, ep = (v.reshape(-1)[edge] for v in (x, y, predicted))
        ex, ey = ex.clamp(0, width - 1), ey.clamp(0, height - 1)
        ec = (ey.floor() * width + ex.floor()).long()
        fx, fy = ex - ex.floor(), ey - ey.floor()
        right = (ex.floor() < width - 1).long()
        down = (ey.floor() < height - 1).long() * width
        flat = known_depth.reshape(-1)
        d = torch.stack([flat[ec], flat[ec + right], flat[ec + down], flat[ec + down + right]], dim=-1)  # [n, 4]
        w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)
        known = d > 0
        gap = torch.where(known, (d - ep[:, None]).abs(), float("inf"))
        anchor = d.gather(-1, gap.argmin(-1, keepdim=True))  # the neighbour on the predicted surface
        weight = w * (known & ((d - anchor).abs() <= rtol * anchor))
        total = weight.sum(-1)
        anchor = anchor.squeeze(-1)
        # All bilinear weight on other surfaces (the point sits on a pixel of another surface): the
        # surface's nearest pixel alone.
        value = torch.where(total > 1e-6, (weight * d).sum(-1) / total.clamp_min(1e-12), anchor)
        found = known.any(-1)
        out.view(-1)[edge] = torch.where(found, value, ep)
        ok.view(-1)[edge] = found
    return out, ok


class _DepthCarrier:
    """Per-track depth through one direction of the chain: sampled while visible, carried while not."""

    def __init__(self, ref_depth: torch.Tensor):
        self.depth = ref_depth.clone()  # [H, W] depth in the previous frame
        self.last_seen = ref_depth.clone()  # last visible depth
        self.velocity = torch.zeros_like(ref_depth)  # per-frame depth change between two visible samples
        self.seen = torch.ones_like(ref_depth, dtype=torch.bool)

    def step(self, depth_t: torch.Tensor, valid_t: torch.Tensor | None, uv: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth ``[H, W]`` in frame t of tracks at ``uv [H, W, 2]`` with visibility ``vis [H, W]``,
        and that visibility less the tracks the depth map shows something in front of."""
        predicted = self.depth + self.velocity
        sampled, ok = _surface_depth(depth_t, uv[..., 0], uv[..., 1], predicted, valid_t)
        # Every neighbour far nearer than the track's own surface: an occluder the 2D tests missed.
        # (In place where a value is not needed again: this runs on every pixel of every frame.)
        covered = sampled < predicted * (1 - _OCCLUDER_GAP)
        covered &= ok
        shown = vis & ~covered
        use = shown & ok
        carried = torch.maximum(predicted, _CARRY_MIN * self.last_seen)
        torch.minimum(carried, _CARRY_MAX * self.last_seen, out=carried)
        new = torch.where(use, sampled, carried)
        step = sampled - self.depth
        plausible = step.abs() <= _OCCLUDER_GAP * self.depth
        plausible &= use
        plausible &= self.seen
        self.velocity = torch.where(plausible, step, self.velocity)
        self.last_seen = torch.where(use, sampled, self.last_seen)
        self.depth, self.seen = new, use
        return new, shown


def _smooth_visible(depth: torch.Tensor, vis: torch.Tensor, window: int, rows: int = 64) -> torch.Tensor:
    """Centred moving average over time ``[T, H, W]`` of the visible samples, written at visible samples only.

    ``window`` is rounded up to odd (radius window // 2); rows are processed in blocks so the
    temporaries stay O(T · rows · W).
    """
    radius = window // 2
    out = depth.clone()
    num = depth.shape[0]
    for r0 in range(0, depth.shape[1], rows):
        d = depth[:, r0 : r0 + rows].double()
        v = vis[:, r0 : r0 + rows].double()
        zeros = torch.zeros_like(d[:1])
        cs = torch.cat([zeros, (d * v).cumsum(0)])
        cn = torch.cat([zeros, v.cumsum(0)])
        lo = (torch.arange(num) - radius).clamp(0, num)
        hi = (torch.arange(num) + radius + 1).clamp(0, num)
        total, count = cs[hi] - cs[lo], cn[hi] - cn[lo]
        smooth = (total / count.clamp_min(1)).float()
        out[:, r0 : r0 + rows] = torch.where(vis[:, r0 : r0 + rows], smooth, depth[:, r0 : r0 + rows])
    return out


def draw_tracks(frames: torch.Tensor, tracks: Tracks3D, grid_step: int = 16, tail: int = 6, radius: float = 2.0) -> torch.Tensor:
    """Tracks of a sparse grid of reference pixels drawn over the frames: ``[T, H, W, 3]`` in 0..1.

    Each point is coloured by where it started (hue across x, brightness down y), drawn with a tail
    of its last ``tail`` visible positions, and hidden while occluded or outside the frame.
    """
    import colorsys

    import numpy as np
    from PIL import Image, ImageDraw

    check_tensor("frames", frames, (tracks.num_frames, tracks.height, tracks.width, 3))
    step = check_positive_int("grid_step", grid_step, maximum=4096)
    offset = step // 2
    uv = tracks.uv[:, offset::step, offset::step].reshape(tracks.num_frames, -1, 2).cpu()
    vis = tracks.visible()[:, offset::step, offset::step].reshape(tracks.num_frames, -1).cpu()
    ref = uv[tracks.ref_frame]
    colours = [
        tuple(int(255 * c) for c in colorsys.hsv_to_rgb(float(x) / max(tracks.width, 1), 0.9, 1.0 - 0.4 * float(y) / max(tracks.height, 1)))
        for x, y in ref.tolist()
    ]
    out = []
    for t in range(tracks.num_frames):
        image = Image.fromarray((frames[t].clamp(0, 1) * 255).round().byte().cpu().numpy())
        draw = ImageDraw.Draw(image)
        start = max(0, t - tail)
        for n, colour in enumerate(colours):
            if not vis[t, n]:
                continue
            trail = [tuple(uv[s, n].tolist()) for s in range(start, t + 1) if vis[s, n]]
            if len(trail) > 1:
                draw.line(trail, fill=colour, width=1)
            x, y = trail[-1]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
        out.append(torch.from_numpy(np.asarray(image).copy()))
    return torch.stack(out).float() / 255.0
