"""LiftGaussians / EditGaussians: build the pseudo 4D Gaussian field of GS-DiT and edit objects in it."""

from __future__ import annotations

import torch

from ..py import gaussians as gs
from ..py.camera import EASINGS, CameraPath
from ..py.checks import check_image, check_mask, check_vector
from . import preview, runtime
from ..py.depth import IMAGE_ENCODINGS
from .common import FAR_TOOLTIP, NEAR_TOOLTIP, CAMERA_PATH, DEPTH, GAUSSIANS, REGULARIZER, TRACKS3D, camera_paths, category, depth_input, expect, info, source_intrinsics

SOURCES = ["auto", "tracks", "depth_video", "first_frame", "multi_reference"]
# "auto" colours: per frame for multi_reference (its references are far apart in time), else the reference's.
COLOR_CHOICES = [*gs.COLOR_MODES, "auto"]


class LiftGaussians:
    DESCRIPTION = (
        "Lift a video into a pseudo 4D Gaussian field (GS-DiT): one Gaussian per reference pixel following its 3D track "
        "(tracks: one reference frame, the paper's setup), or tracks from as many reference frames as it takes to cover "
        "the whole video, so surfaces the first frame does not show get Gaussians too (multi_reference: needs depth; "
        "the connected tracks, if any, are the first reference), or every frame's depth lifted at its own time "
        "(depth_video), or the first frame lifted once into a static field (first_frame). Depth can be a Vid4D depth or "
        "any depth IMAGE, read as disparity / relative depth / metric depth between near and far."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "lift"
    RETURN_TYPES = (GAUSSIANS, CAMERA_PATH)
    RETURN_NAMES = ("gaussians", "source_camera")
    OUTPUT_TOOLTIPS = ("the Gaussian field (in the source camera's frame at each time)", "the source view per frame (identity poses, the source intrinsics): feed it to CameraPath")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "the video [T, H, W, 3]"}),
                "source": (SOURCES, {"default": "auto", "tooltip": "auto: multi_reference for a video with tracks and depth connected, tracks with tracks only, else the depth video"}),
                "fov": ("FLOAT", {"default": 60.0, "min": 1.0, "max": 179.0, "step": 0.1, "round": 0.01, "tooltip": "horizontal field of view (degrees) when no camera or tracks give intrinsics"}),
                "kappa": ("FLOAT", {"default": gs.DEFAULT_KAPPA, "min": 0.05, "max": 8.0, "step": 0.05, "round": 0.001, "tooltip": "Gaussian size in source-view pixels (std)"}),
                "stride": ("INT", {"default": 1, "min": 1, "max": 16, "step": 1, "tooltip": "use every n-th pixel (faster, coarser)"}),
                "edge_mode": (list(gs.EDGE_MODES), {"default": "drop", "tooltip": "what to do with Gaussians on the far side of depth discontinuities (flying pixels, rubber sheets)"}),
                "edge_threshold": ("FLOAT", {"default": 0.1, "min": 0.001, "max": 10.0, "step": 0.01, "round": 0.001, "tooltip": "relative depth jump that counts as a discontinuity"}),
                "color_mode": (COLOR_CHOICES, {"default": "reference", "tooltip": "tracks: colour from the reference frame, or sampled in every frame; auto: per_frame for multi_reference, else reference"}),
                "depth_encoding": (list(IMAGE_ENCODINGS), {"default": "disparity", "tooltip": "how to read depth_image: disparity (near = bright), depth (near = dark, relative) or metric"}),
                "near": ("FLOAT", {"default": 1.0, "min": 0.001, "max": 1e5, "step": 0.01, "round": 0.001, "tooltip": NEAR_TOOLTIP}),
                "far": ("FLOAT", {"default": 10.0, "min": 0.002, "max": 1e6, "step": 0.01, "round": 0.001, "tooltip": FAR_TOOLTIP}),
            },
            "optional": {
                "tracks": (TRACKS3D, {"tooltip": "dense 3D tracks (DenseTrack3D, Sample Scene)"}),
                "depth": (DEPTH, {"tooltip": "a Vid4D depth video"}),
                "depth_image": ("IMAGE", {"tooltip": "a depth map/video from any pack"}),
                "camera": (CAMERA_PATH, {"tooltip": "source camera: its intrinsics (and with placement world, its pose at every frame)"}),
                "preview_frame": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "time step of the field shown as points in the node's 3D preview (clamped to the last)"}),
                "max_references": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "multi_reference: at most this many reference frames (0 = as many as needed, within 3 H W Gaussians; each one is tracked through the whole video)"}),
                "min_coverage": ("FLOAT", {"default": gs.DEFAULT_MIN_COVERAGE, "min": 0.0, "max": 1.0, "step": 0.001, "round": 0.0001, "tooltip": "multi_reference: add references until every frame's source view is covered to this share"}),
                "reference_every": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "multi_reference: also a reference wherever a frame is farther than this from every reference (0 = off)"}),
                "regularizer": (REGULARIZER, {"tooltip": "multi_reference: PointRegularizer's settings, applied to every reference's tracks this node computes (regularise the connected tracks upstream)"}),
                "placement": (list(gs.PLACEMENTS), {"default": "source_view", "tooltip": "source_view: GS-DiT's pseudo field, each time step in the source camera's frame; world: every time step placed in the world of the connected camera (a solved source path from Estimate Camera), so the static scene is one cloud; source_camera is then that camera and CameraPath moves stay relative to it"}),
            },
        }

    def lift(self, frames, source, fov, kappa, stride, edge_mode, edge_threshold, color_mode, depth_encoding, near, far, tracks=None, depth=None, depth_image=None, camera=None, preview_frame=0, max_references=0, min_coverage=gs.DEFAULT_MIN_COVERAGE, reference_every=0, regularizer=None, placement="source_view"):
        frames = check_image("frames", frames)
        t, h, w, _ = frames.shape
        has_depth = depth is not None or depth_image is not None
        if source == "auto":
            source = ("multi_reference" if has_depth and t > 1 else "tracks") if tracks is not None else "depth_video"
        if color_mode == "auto":
            color_mode = "per_frame" if source == "multi_reference" else "reference"
        progress = runtime.Progress(2, "lift gaussians")
        options = gs.LiftOptions(kappa=kappa, stride=stride, edge_threshold=edge_threshold, edge_mode=edge_mode)
        note = ""
        if source == "tracks":
            if tracks is None:
                raise ValueError("source 'tracks' needs the tracks input (connect DenseTrack3D or Sample Scene)")
            tracks = self._tracks(tracks, t, h, w)
            k = tracks.intrinsics.reshape(-1, 3, 3)[0]
            field = gs.lift_tracks(tracks, frames, options, color_mode=color_mode)
        elif source == "multi_reference":
            field, k, note = self._lift_multi(frames, tracks, depth, depth_image, depth_encoding, near, far, fov, camera, kappa, stride, edge_mode, edge_threshold, color_mode, max_references, min_coverage, reference_every, regularizer)
        else:
            video_depth = depth_input(depth, depth_image, depth_encoding, near, far, frames=t if source == "depth_video" else None, height=h, width=w)
            if video_depth is None:
                raise ValueError(f"source '{source}' needs depth: connect a depth (VID4D_DEPTH) or a depth_image (IMAGE)")
            k = source_intrinsics(w, h, fov, camera=camera)
            if source == "first_frame":
                field = gs.lift_depth(frames[0], video_depth.depth[0], k, options)
            else:
                field = gs.lift_depth_video(frames, video_depth.depth, k, options)
        progress.update()
        source_camera = CameraPath.static(k.float(), t, w, h)
        if placement == "world":
            if camera is None:
                raise ValueError("placement 'world' needs the camera input: the solved source camera (Estimate Camera's camera) of every frame")
            source_camera = camera_paths(camera, "camera")[0]
            if source_camera.num_frames < field.num_frames:
                raise ValueError(f"placement 'world': the camera has {source_camera.num_frames} frame(s) but the field {field.num_frames} time steps; connect the solved camera of this video")
            field = gs.place_in_world(field, source_camera)
            note += f"\nplaced in the world of the connected camera ({source_camera.num_frames} poses)"
        kept = float((field.opacities > 0).float().mean())
        progress.update()
        text = f"{source}: {field.num_gaussians} Gaussians x {field.num_frames} time step(s); {100 * kept:.1f}% with opacity > 0" + note
        ui = {**info(text), "vid4d_points": [preview.field_points(field, frame=preview_frame)]}
        return {"ui": ui, "result": (field, source_camera)}

    @staticmethod
    def _tracks(tracks, t: int, h: int, w: int):
        tracks = expect(tracks, TRACKS3D, "tracks")
        if (tracks.num_frames, tracks.height, tracks.width) != (t, h, w):
            raise ValueError(f"tracks cover {tracks.num_frames} frames of {tracks.width}x{tracks.height} but the video has {t} frames of {w}x{h}")
        return tracks

    def _lift_multi(self, frames, tracks, depth, depth_image, depth_encoding, near, far, fov, camera, kappa, stride, edge_mode, edge_threshold, color_mode, max_references, min_coverage, reference_every, regularizer):
        t, h, w, _ = frames.shape
        if t < 2:
            raise ValueError("source 'multi_reference' needs a video (at least 2 frames); use first_frame for one image")
        video_depth = depth_input(depth, depth_image, depth_encoding, near, far, frames=t, height=h, width=w)
        if video_depth is None:
            raise ValueError("source 'multi_reference' needs depth to track and lift the frames it adds: connect a depth (VID4D_DEPTH) or a depth_image (IMAGE)")
        if tracks is not None:
            tracks = self._tracks(tracks, t, h, w)
        if regularizer is not None:
            regularizer = expect(regularizer, REGULARIZER, "regularizer")
        k = source_intrinsics(w, h, fov, camera=camera, tracks=tracks)
        bar = runtime.Progress(t, "lift gaussians (multi-reference)")

        def report(done, total):
            bar.total = max(total, 1)
            bar.set(done)

        stats: dict = {}
        field = gs.lift_video(
            frames, video_depth, k, method="flow_chain", max_references=max_references or None, min_coverage=min_coverage,
            reference_every=reference_every, tracks=tracks, kappa=kappa, stride=stride, color_mode=color_mode,
            edge_threshold=edge_threshold, edge_mode=edge_mode, regularize=regularizer, progress=report, info=stats,
        )
        text = multi_reference_report(stats, field, h, w, given_tracks=tracks is not None)
        if regularizer is not None:
            text += f"\nregularised each reference it tracked (PointRegularizer: rigidity {regularizer.rigidity:g}, smoothness {regularizer.smoothness:g}, k {regularizer.k}, {regularizer.iterations} iterations)"
        return field, k, "\n" + text


def multi_reference_report(stats: dict, field, height: int, width: int, given_tracks: bool = False) -> str:
    """The node report of :func:`~vid4d.py.gaussians.lift_video`: references used and why, coverage, cost."""
    refs = stats["references"]
    lines = [
        f"{len(refs)} reference frame(s) {refs} ({field.num_gaussians / (height * width):.2f} x H x W Gaussians, {stats['bytes'] / 2**20:.1f} MiB)",
        f"source-view coverage min {100 * float(stats['coverage'].min()):.2f}% (first reference alone: {100 * float(stats['coverage_single'].min()):.2f}%)",
    ]
    for frame, why, n in zip(refs, stats["reasons"], stats["added"]):
        origin = " (the connected tracks)" if given_tracks and frame == refs[0] else ""
        lines.append(f"  frame {frame}: +{n} Gaussians, {why}{origin}")
    lines.append(f"stopped: {stats['stopped']}")
    lines.append(f"time: {stats['seconds_total']:.1f} s, of which tracking {stats['seconds_tracking']:.1f} s (flow_chain)")
    return "\n".join(lines)


class EditGaussians:
    DESCRIPTION = (
        "4D object editing (GS-DiT's fan example): select Gaussians by a MASK drawn on the reference frame or by a 3D box, "
        "then over time rotate them about a pivot, translate, scale, freeze them at a frame, or retime them. "
        "Unselected Gaussians are untouched. Vectors are typed as 'x, y, z' in the source camera's frame (x right, y down, z forward)."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "edit"
    RETURN_TYPES = (GAUSSIANS,)
    RETURN_NAMES = ("gaussians",)
    OUTPUT_TOOLTIPS = ("the edited field",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS,),
                "select": (["mask", "box"], {"default": "mask", "tooltip": "mask: the MASK input on the reference frame; box: the box_min/box_max corners at box_frame"}),
                "angle": ("FLOAT", {"default": 0.0, "min": -3600.0, "max": 3600.0, "step": 1.0, "round": 0.01, "tooltip": "total rotation over the clip, degrees"}),
                "axis": ("STRING", {"default": "0, -1, 0", "tooltip": "rotation axis (default: vertical)"}),
                "translate": ("STRING", {"default": "0, 0, 0", "tooltip": "total translation over the clip"}),
                "scale": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 100.0, "step": 0.01, "round": 0.001, "tooltip": "size at the end of the clip (1 = unchanged)"}),
                "easing": (list(EASINGS), {"default": "linear"}),
                "freeze_frame": ("INT", {"default": -1, "min": -1, "max": 10000, "step": 1, "tooltip": "hold the selection as it is at this frame (-1 = off)"}),
                "speed": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 16.0, "step": 0.05, "round": 0.001, "tooltip": "retime the selection (0.5 = half speed)"}),
                "num_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "for a static field (one image): how many frames the edit spans (0 = keep static)"}),
                "box_min": ("STRING", {"default": "-1, -1, 0"}),
                "box_max": ("STRING", {"default": "1, 1, 5"}),
                "box_frame": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "the object on the reference frame (the frame the field was lifted from); for a multi_reference field one mask per frame (e.g. a segmentation video)"}),
                "pivot": ("STRING", {"default": "", "tooltip": "rotation/scale centre 'x, y, z' (empty = the selection's centre, following it)"}),
            },
        }

    def edit(self, gaussians, select, angle, axis, translate, scale, easing, freeze_frame, speed, num_frames, box_min, box_max, box_frame, mask=None, pivot=""):
        field = expect(gaussians, GAUSSIANS, "gaussians")
        if select == "mask":
            if mask is None:
                raise ValueError("select 'mask' needs the mask input: draw the object on the reference frame (e.g. with a mask editor or a segmentation node)")
            m = check_mask("mask", mask)
            selection = gs.select_by_mask(field, m if m.shape[0] > 1 else m[0])
        else:
            selection = gs.select_by_box(field, check_vector("box_min", box_min), check_vector("box_max", box_max), frame=box_frame)
        edited = gs.edit_gaussians(
            field,
            selection,
            num_frames=num_frames or None,
            axis=check_vector("axis", axis),
            angle=angle,
            pivot=check_vector("pivot", pivot) if pivot and pivot.strip() else None,
            translate=check_vector("translate", translate),
            scale=scale,
            easing=easing,
            freeze_frame=None if freeze_frame < 0 else freeze_frame,
            speed=speed,
        )
        text = f"edited {int(selection.sum())} of {field.num_gaussians} Gaussians over {edited.num_frames} frame(s)"
        return {"ui": info(text), "result": (edited,)}


NODE_CLASS_MAPPINGS = {"LiftGaussians": LiftGaussians, "EditGaussians": EditGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {"LiftGaussians": "Lift Gaussians (pseudo 4D field)", "EditGaussians": "Edit Gaussians (4D object edit)"}
