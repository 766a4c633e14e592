"""PointRegularizer: PointVid point maps of dense 3D tracks and 3D point regularisation of the tracks."""

from __future__ import annotations

from ..py import points as pts
from ..py.checks import check_mask
from . import runtime
from .common import REGULARIZER, TRACKS3D, category, expect, info


class PointRegularizer:
    DESCRIPTION = (
        "PointVid's 3D point regulariser for dense 3D tracks: a robust data term (outliers lose their pull), local "
        "rigidity over the k nearest neighbours of each point in the reference frame (as-rigid-as-possible, with a rest "
        "shape estimated from all frames) and temporal smoothness of the deviation from the local rigid fit. Rigid motion "
        "passes through unchanged; jitter, outliers and tearing are removed before the tracks are lifted into Gaussians. "
        "Large track sets are solved on max_anchors random points; the other points follow their nearest anchors. Also "
        "outputs PointVid point maps: foreground-biased samples of the reference frame written at their tracked pixel in "
        "every frame, xyz normalised per clip to [-1, 1] and shown as colours, with the validity MASK."
    )
    CATEGORY = category("tracking")
    FUNCTION = "regularize"
    RETURN_TYPES = (TRACKS3D, "IMAGE", "MASK", "STRING", REGULARIZER)
    RETURN_NAMES = ("tracks", "point_map", "point_mask", "report", "regularizer")
    OUTPUT_TOOLTIPS = (
        "the regularised tracks (positions re-projected with the tracks' intrinsics; visibility unchanged)",
        "PointVid point map video: xyz in [-1, 1] as colours (r, g, b) = (xyz + 1) / 2, black where no point",
        "1 where the point map holds a point",
        "before/after summary: displacement applied, objective, rigidity error",
        "these settings, for LiftGaussians' multi_reference mode: it regularises every reference frame's tracks with them",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "tracks": (TRACKS3D, {"tooltip": "dense 3D tracks (DenseTrack3D, Sample Scene)"}),
                "rigidity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.05, "round": 0.001, "tooltip": "weight of local rigidity against the data term (0 = off; lower for cloth-like, strongly bending surfaces)"}),
                "smoothness": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.05, "round": 0.001, "tooltip": "weight of temporal smoothness of the non-rigid part of the motion"}),
                "k": ("INT", {"default": 8, "min": 1, "max": 64, "step": 1, "tooltip": "neighbours per point, found once in the reference frame"}),
                "iterations": ("INT", {"default": 20, "min": 0, "max": 500, "step": 1, "tooltip": "solver iterations (0 = leave the tracks as they are)"}),
                "max_anchors": ("INT", {"default": 12000, "min": 16, "max": 1_000_000, "step": 1, "tooltip": "points solved jointly; the rest follow their nearest anchors (memory and time grow with it)"}),
                "num_points": ("INT", {"default": 20000, "min": 1, "max": 10_000_000, "step": 1, "tooltip": "point map: how many reference pixels to sample"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "step": 1, "tooltip": "anchor and point-map sampling"}),
                "foreground_bias": ("FLOAT", {"default": 4.0, "min": 1.0, "max": 1000.0, "step": 0.1, "round": 0.01, "tooltip": "point map: sampling density inside the foreground over outside"}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "foreground on the reference frame for the point map (default: what moves on its own)"}),
            },
        }

    def regularize(self, tracks, rigidity, smoothness, k, iterations, max_anchors, num_points, seed, foreground_bias, mask=None):
        tracks = expect(tracks, TRACKS3D, "tracks")
        h, w = tracks.height, tracks.width
        fg = None
        if mask is not None:
            m = check_mask("mask", mask, height=h, width=w)
            fg = m[min(tracks.ref_frame, m.shape[0] - 1)]
        progress = runtime.Progress(iterations + 1, "regularise points")
        stats: dict = {}
        regularization = pts.PointRegularization(k=k, rigidity=rigidity, smoothness=smoothness, iterations=iterations, max_anchors=max_anchors, seed=seed, device=str(runtime.get_device()))
        out = pts.regularize_tracks(tracks, regularization, progress=progress.callback(), cancel=runtime.check_interrupted, info=stats)
        maps = pts.point_maps(out, mask=fg, num_points=num_points, seed=seed, foreground_bias=foreground_bias)
        text = pts.regularization_report(tracks, out, stats)
        return {"ui": info(text), "result": (out, maps.image(), maps.valid.float(), text, regularization)}


NODE_CLASS_MAPPINGS = {"PointRegularizer": PointRegularizer}
NODE_DISPLAY_NAME_MAPPINGS = {"PointRegularizer": "Point Regularizer (PointVid)"}
