"""DenseTrack3D: dense per-pixel 3D point tracking with visibility (D3D-PT in GS-DiT)."""

from __future__ import annotations

from ..models.loading import ModelNotFoundError
from ..py import tracking as trk
from ..py.checks import check_image
from . import runtime
from . import preview as preview3d
from ..py.depth import IMAGE_ENCODINGS
from .common import FAR_TOOLTIP, NEAR_TOOLTIP, CAMERA_PATH, DEPTH, TRACKS3D, category, depth_input, info, source_intrinsics

DOT_CHECKPOINT = "movi_f_raft_patch_4_alpha.pth"
PRESETS = ["medium", "fast", "ultrafast"]


def _weights_choices() -> list[str]:
    files = runtime.list_models("tracking")
    return files if DOT_CHECKPOINT in files else [DOT_CHECKPOINT, *files]


class DenseTrack3D:
    DESCRIPTION = (
        "Dense 3D point tracking: for every pixel of the reference frame, where it is in every frame, at what depth, and "
        "whether it is visible. flow_chain needs no weights (OpenCV DIS flow chained from the reference frame with "
        "forward-backward occlusion checks and re-anchoring against direct long-range flow); dot_raft refines it with DOT's "
        f"RAFT refiner ({DOT_CHECKPOINT} in models/vid4d/tracking/); auto uses the refiner when its file is there. Depth "
        "(optional) is sampled at the tracks from the visible surface; without depth the tracks lie on a plane at depth 1."
    )
    CATEGORY = category("tracking")
    FUNCTION = "track"
    RETURN_TYPES = (TRACKS3D, "IMAGE", "MASK")
    RETURN_NAMES = ("tracks", "preview", "visibility")
    OUTPUT_TOOLTIPS = (
        "dense 3D tracks of the reference frame's pixels",
        "tracks of a sparse grid drawn over the frames (hidden while occluded)",
        "per frame: 1 where the reference pixel is visible, laid out on the reference pixel grid",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "the video [T, H, W, 3]"}),
                "method": (list(trk.METHODS), {"default": "auto"}),
                "ref_frame": ("INT", {"default": 0, "min": 0, "max": 100_000, "step": 1, "tooltip": "the frame whose pixels are tracked"}),
                "fov": ("FLOAT", {"default": 60.0, "min": 1.0, "max": 179.0, "step": 0.1, "round": 0.01, "tooltip": "horizontal field of view when no camera is connected"}),
                "flow_preset": (PRESETS, {"default": "medium", "tooltip": "DIS optical flow preset: medium is the accurate one"}),
                "reanchor_every": ("INT", {"default": 4, "min": 0, "max": 1000, "step": 1, "tooltip": "re-anchor the chain against direct flow from the reference every n frames (0 = never)"}),
                "depth_smoothing": ("INT", {"default": 0, "min": 0, "max": 64, "step": 1, "tooltip": "temporal smoothing window of each track's depth (frames, 0 = off)"}),
                "depth_encoding": (list(IMAGE_ENCODINGS), {"default": "disparity", "tooltip": "how to read depth_image"}),
                "near": ("FLOAT", {"default": 1.0, "min": 0.001, "max": 1e5, "step": 0.01, "round": 0.001, "tooltip": NEAR_TOOLTIP}),
                "far": ("FLOAT", {"default": 10.0, "min": 0.002, "max": 1e6, "step": 0.01, "round": 0.001, "tooltip": FAR_TOOLTIP}),
                "weights": (_weights_choices(), {"default": DOT_CHECKPOINT, "tooltip": "DOT refiner weights (models/vid4d/tracking/)"}),
                "preview_grid": ("INT", {"default": 16, "min": 4, "max": 256, "step": 1, "tooltip": "spacing of the tracks drawn in the preview (pixels)"}),
            },
            "optional": {
                "depth": (DEPTH, {"tooltip": "a Vid4D depth video"}),
                "depth_image": ("IMAGE", {"tooltip": "a depth map video from any pack"}),
                "camera": (CAMERA_PATH, {"tooltip": "source camera: only its intrinsics are used"}),
                "preview_frame": ("INT", {"default": 0, "min": 0, "max": 100_000, "step": 1, "tooltip": "frame whose tracks (with a short trail behind) the node's 3D preview shows (clamped to the last)"}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, weights):
        # Any name is fine here: a missing file only matters for method dot_raft, where load reports it.
        return True

    def track(self, frames, method, ref_frame, fov, flow_preset, reanchor_every, depth_smoothing, depth_encoding, near, far, weights, preview_grid, depth=None, depth_image=None, camera=None, preview_frame=0):
        frames = check_image("frames", frames)
        t, h, w, _ = frames.shape
        video_depth = depth_input(depth, depth_image, depth_encoding, near, far, frames=t, height=h, width=w)
        intrinsics = source_intrinsics(w, h, fov, camera=camera)
        refiner = None
        if method in ("auto", "dot_raft"):
            try:
                path = runtime.resolve_model("tracking", weights)
            except ModelNotFoundError:
                if method == "dot_raft":
                    raise
            else:
                from ..models.tracking import load_dot_raft

                refiner = load_dot_raft(path, device=runtime.get_device())
        used = "dot_raft" if refiner is not None else "flow_chain"
        progress = runtime.Progress(t, f"track ({used})")
        tracks = trk.track_dense(
            frames,
            depth=video_depth,
            ref_frame=ref_frame,
            method=used,
            intrinsics=intrinsics,
            preset=flow_preset,
            reanchor_every=reanchor_every,
            depth_smoothing=depth_smoothing,
            progress=progress.callback(),
            refiner=refiner,
        )
        preview = trk.draw_tracks(frames, tracks, grid_step=preview_grid)
        visible = tracks.visible().float()
        depth_note = "depth sampled at the tracks" if video_depth is not None else "no depth: tracks on the plane z = 1"
        text = f"method {used}: {t} frames {w}x{h}, reference frame {ref_frame}; visible {100 * float(visible.mean()):.1f}%; {depth_note}"
        ui = {**info(text), "vid4d_tracks": [preview3d.tracks_payload(tracks, frames, frame=preview_frame)]}
        return {"ui": ui, "result": (tracks, preview, visible)}


NODE_CLASS_MAPPINGS = {"DenseTrack3D": DenseTrack3D}
NODE_DISPLAY_NAME_MAPPINGS = {"DenseTrack3D": "Dense Track 3D (D3D-PT)"}
