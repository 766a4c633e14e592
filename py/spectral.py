"""Spectral volumes (Generative Image Dynamics): per-pixel temporal Fourier terms of a motion texture."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import TensorData, check_finite_number, check_positive_int, check_tensor


@dataclass
class SpectralVolume(TensorData):
    """The K lowest temporal frequencies of every pixel's displacement, DC included.

    Attributes:
        coeffs: complex ``[K, H, W, 2]``; S_k for the x and y displacement (pixels), unnormalised FFT
            convention of ``torch.fft.fft`` over a clip of ``period`` frames.
        period: length T (frames) of the clip the spectrum describes; the motion loops with this period.
        fps: frame rate the period refers to (so a motion texture can be resampled to another rate).
    """

    coeffs: torch.Tensor
    period: int
    fps: float = 30.0

    def __post_init__(self):
        check_tensor("SpectralVolume.coeffs", self.coeffs, ("K", "H", "W", 2), kind="complex")
        self.period = check_positive_int("SpectralVolume.period", self.period, minimum=2)
        self.fps = check_finite_number("SpectralVolume.fps", self.fps, low=1e-3, high=1000.0)
        k = int(self.coeffs.shape[0])
        if k > self.period // 2 + 1:
            raise ValueError(f"SpectralVolume.coeffs: {k} frequencies exceed the {self.period // 2 + 1} a period of {self.period} frames has")

    @property
    def num_freqs(self) -> int:
        return int(self.coeffs.shape[0])


@dataclass
class MotionTexture(TensorData):
    """A motion texture (Generative Image Dynamics): where every pixel p of the still image I₀ is at time t.

    Attributes:
        displacement: ``[T, H, W, 2]`` float32 F_t(p) in pixels (x, y); pixel p sits at p + F_t(p) in frame t.
            Any forward flow video from a reference frame has this form too.
        fps: frame rate of the frames.
    """

    displacement: torch.Tensor
    fps: float = 30.0

    def __post_init__(self):
        check_tensor("MotionTexture.displacement", self.displacement, ("T", "H", "W", 2))
        self.fps = check_finite_number("MotionTexture.fps", self.fps, low=1e-3, high=1000.0)

    @property
    def num_frames(self) -> int:
        return int(self.displacement.shape[0])

    @property
    def height(self) -> int:
        return int(self.displacement.shape[1])

    @property
    def width(self) -> int:
        return int(self.displacement.shape[2])


# ---------------------------------------------------------------------------------------------------
# Fourier analysis and synthesis
# ---------------------------------------------------------------------------------------------------


def max_freqs(period: int) -> int:
    """How many distinct frequencies (DC included) a real signal of ``period`` frames has: ``T // 2 + 1``.

    For an even T the last one is the Nyquist bin k = T/2, which has no separate negative twin and so
    counts once (weight 1) in :func:`motion_texture`; every other bin k ≥ 1 counts twice (weight 2).
    """
    return int(period) // 2 + 1


def spectral_volume(displacement: torch.Tensor, num_freqs: int = 16, fps: float = 30.0) -> SpectralVolume:
    """The spectral volume of a motion texture: its per-pixel temporal FFT truncated to the K lowest bins.

    S_k(p) = Σ_t F_t(p) e^{-i2πkt/T} (``torch.fft.fft`` convention, unnormalised), k = 0..K-1, DC included.

    Args:
        displacement: ``[T, H, W, 2]`` float F_t(p) in pixels, T ≥ 2, finite.
        num_freqs: K, 1 ≤ K ≤ T // 2 + 1 (:func:`max_freqs`; e.g. 76 for T = 150, 3 for T = 4, 3 for T = 5).
        fps: frame rate of the displacement frames (kept with the volume to resample it later).

    Returns:
        :class:`SpectralVolume` whose ``coeffs`` is complex64 ``[K, H, W, 2]`` and ``period`` is T.
        A motion made of these K harmonics is reproduced exactly by :func:`motion_texture`.
    """
    check_tensor("displacement", displacement, ("T", "H", "W", 2))
    period = int(displacement.shape[0])
    if period < 2:
        raise ValueError(f"displacement: a spectral volume needs at least 2 frames, got {period}")
    num_freqs = check_positive_int("num_freqs", num_freqs)
    if num_freqs > max_freqs(period):
        raise ValueError(f"num_freqs: {period} frames have only {max_freqs(period)} distinct frequencies (T // 2 + 1, DC included), got num_freqs = {num_freqs}; lower num_freqs or use a longer clip")
    fps = check_finite_number("fps", fps, low=1e-3, high=1000.0)
    spectrum = torch.fft.rfft(displacement.detach().double(), dim=0)[:num_freqs]
    return SpectralVolume(coeffs=spectrum.to(torch.complex64), period=period, fps=fps)


def frame_times(volume: SpectralVolume, num_frames: int, fps: float | None = None, loop: bool = False) -> torch.Tensor:
    """``[N]`` float64 times, in frames of the volume's clip, of the N output frames.

    ``loop`` False: real time at ``fps`` (default the volume's own), t_j = j · volume.fps / fps; the
    motion repeats every ``period`` source frames. ``loop`` True: the N frames span exactly one period,
    t_j = j · T / N, so playing them cyclically has no seam (the speed changes by T·fps / (N·volume.fps)).
    """
    num_frames = check_positive_int("num_frames", num_frames, maximum=100_000)
    out_fps = volume.fps if fps is None else check_finite_number("fps", fps, low=1e-3, high=1000.0)
    j = torch.arange(num_frames, dtype=torch.float64)
    return j * (volume.period / num_frames) if loop else j * (volume.fps / out_fps)


def motion_texture(volume, num_frames: int, fps: float | None = None, *, loop: bool = False, period: int | None = None, times: torch.Tensor | None = None, chunk: int = 16, cancel=None) -> torch.Tensor:
    """Evaluate a spectral volume's truncated Fourier series: the motion texture ``[N, H, W, 2]``.

    F_t = (1/T) · Re[S₀ + Σ_{k≥1} w_k S_k e^{i2πkt/T}], w_k = 2 (1 for the Nyquist bin k = T/2 of an
    even T), i.e. the inverse FFT of the spectrum zero-padded with its conjugate-symmetric negative
    bins. Evaluated at any real t (see :func:`frame_times`), so any length or frame rate works and the
    result is periodic in t with period T: frame t = T equals frame t = 0.

    Args:
        volume: a :class:`SpectralVolume`, or complex ``[K, H, W, 2]`` coefficients with ``period`` given.
        num_frames: N.
        fps: output frame rate (default: the volume's).
        loop: see :func:`frame_times`.
        times: explicit ``[N]`` times in source frames (overrides num_frames/fps/loop spacing).
        chunk: frames evaluated at once (memory O(chunk · H · W)).
        cancel: ``cancel()`` before every chunk; may raise to stop.

    Returns:
        ``[N, H, W, 2]`` float32 displacement in pixels.
    """
    if not isinstance(volume, SpectralVolume):
        if period is None:
            raise ValueError("motion_texture: raw coefficients need period= (the clip length T in frames); or pass a SpectralVolume")
        volume = SpectralVolume(coeffs=volume, period=period)
    if times is None:
        times = frame_times(volume, num_frames, fps, loop)
    else:
        times = check_tensor("times", times, (None,)).detach().to("cpu", torch.float64)
    k_count, height, width, _ = volume.coeffs.shape
    T = volume.period
    k = torch.arange(k_count, dtype=torch.float64)
    weight = torch.full((k_count,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if T % 2 == 0 and k_count == T // 2 + 1:
        weight[-1] = 1.0
    coeffs = volume.coeffs.reshape(k_count, -1)
    re, im = coeffs.real.float(), coeffs.imag.float()
    out = torch.empty(times.shape[0], height * width * 2, device=coeffs.device)
    for start in range(0, times.shape[0], chunk):
        if cancel is not None:
            cancel()
        t = times[start : start + chunk]
        # k·t reduced mod T before the cosine keeps the phase exact for long or fractional times.
        phase = 2 * math.pi * torch.remainder(t[:, None] * k[None, :], T) / T
        cos = (weight * torch.cos(phase) / T).float().to(coeffs.device)
        sin = (weight * torch.sin(phase) / T).float().to(coeffs.device)
        out[start : start + chunk] = cos @ re - sin @ im
    return out.reshape(times.shape[0], height, width, 2)


# ---------------------------------------------------------------------------------------------------
# Frequency-adaptive normalisation
# ---------------------------------------------------------------------------------------------------

SPECTRAL_CHANNELS = ("re_x", "re_y", "im_x", "im_y")  # the paper's 4 real channels per frequency slice
_MIN_SCALE = 1e-6  # a frequency with no motion in the data still gets a finite scale


def _coeffs(volume) -> torch.Tensor:
    if isinstance(volume, SpectralVolume):
        return volume.coeffs
    return check_tensor("volume", volume, ("K", "H", "W", 2), kind="complex")


def _check_scales(scales, num_freqs: int) -> torch.Tensor:
    scales = check_tensor("scales", scales, (None,))
    if scales.shape[0] < num_freqs:
        raise ValueError(f"scales: {scales.shape[0]} per-frequency scales for a volume of {num_freqs} frequencies")
    if float(scales.min()) <= 0:
        raise ValueError(f"scales: per-frequency scales must be > 0, got minimum {float(scales.min()):.3g}")
    return scales[:num_freqs]


def fit_spectral_stats(volumes, percentile: float = 95.0) -> torch.Tensor:
    """Per-frequency scales s_k = ``percentile``-th percentile of |S_k| (complex modulus, x and y pooled)
    over every pixel of every volume (the paper's frequency-adaptive statistics).

    Args:
        volumes: an iterable of :class:`SpectralVolume` or complex ``[K, H, W, 2]`` tensors (equal K).

    Returns:
        ``[K]`` float32 scales, at least 1e-6 (a frequency without motion keeps a finite scale).
    """
    percentile = check_finite_number("percentile", percentile, low=0.0, high=100.0)
    mags = []
    for n, v in enumerate(volumes):
        c = _coeffs(v)
        if mags and c.shape[0] != mags[0].shape[0]:
            raise ValueError(f"volumes[{n}]: {c.shape[0]} frequencies, the first volume has {mags[0].shape[0]}")
        mags.append(c.abs().reshape(c.shape[0], -1).float().cpu())
    if not mags:
        raise ValueError("volumes: no spectral volumes given to fit the statistics on")
    flat = torch.cat(mags, dim=1)
    rank = min(flat.shape[1], max(1, int(math.ceil(percentile / 100.0 * flat.shape[1]))))
    return flat.kthvalue(rank, dim=1).values.clamp_min(_MIN_SCALE)


def normalize_spectral(volume, scales: torch.Tensor) -> torch.Tensor:
    """Frequency-adaptive normalisation: complex ``[K, H, W, 2]`` → float ``[K, H, W, 4]``.

    Channels (Re x, Re y, Im x, Im y); each real channel c of frequency k becomes
    sign(c) · sqrt(|c| / s_k). The sign·sqrt acts on the real and imaginary parts separately (the
    paper's 4K real channels), which is exactly invertible by :func:`denormalize_spectral`.
    """
    coeffs = _coeffs(volume)
    scales = _check_scales(scales, coeffs.shape[0]).to(coeffs.device)
    x = torch.cat([coeffs.real, coeffs.imag], dim=-1).float() / scales[:, None, None, None]
    return torch.sign(x) * torch.sqrt(x.abs())


def denormalize_spectral(normalized: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_spectral`: float ``[K, H, W, 4]`` → complex64 ``[K, H, W, 2]``,
    c = s_k · sign(c') · c'²."""
    check_tensor("normalized", normalized, ("K", "H", "W", 4))
    scales = _check_scales(scales, normalized.shape[0]).to(normalized.device)
    x = scales[:, None, None, None] * torch.sign(normalized) * normalized.float().square()
    return torch.complex(x[..., :2], x[..., 2:])


# ---------------------------------------------------------------------------------------------------
# Motion from a video
# ---------------------------------------------------------------------------------------------------


def displacement_from_video(frames: torch.Tensor, *, preset: str = "medium", remove_camera_motion: bool = False, progress=None) -> torch.Tensor:
    """Displacement ``[T, H, W, 2]`` of every pixel of the first frame over time (F_0 = 0).

    The dense tracks of :func:`py.tracking.track_2d` (DIS flow chained from frame 0 and re-anchored on
    direct long-range flow), minus each pixel's own position. With ``remove_camera_motion`` the global
    motion is subtracted too (:func:`remove_global_motion`) so only the scene's oscillation remains.

    Args:
        frames: ``[T, H, W, 3]`` float RGB 0..1, T ≥ 2.
        preset: DIS preset (see :mod:`py.flow`).
        progress: ``progress(done)`` per frame; may raise to cancel.
    """
    from .camera import pixel_grid
    from .tracking import track_2d

    uv, visible = track_2d(frames, 0, preset=preset, progress=progress)
    displacement = uv - pixel_grid(uv.shape[1], uv.shape[2])
    if remove_camera_motion:
        displacement = remove_global_motion(displacement, visible)
    return displacement


def remove_global_motion(displacement: torch.Tensor, visible: torch.Tensor | None = None, *, stride: int = 4, threshold: float = 1.0) -> torch.Tensor:
    """Subtract the camera's motion: per frame, a homography fitted (OpenCV RANSAC, ``threshold`` px) to
    the displacement of a grid of pixels every ``stride`` px (visible ones when ``visible`` is given),
    and the flow it induces, H(p) − p, removed from every pixel. ``[T, H, W, 2]`` → ``[T, H, W, 2]``.

    A frame where no homography is found (too few points) is left as it is.
    """
    import cv2
    import numpy as np

    from .camera import pixel_grid

    check_tensor("displacement", displacement, ("T", "H", "W", 2))
    stride = check_positive_int("stride", stride)
    num, height, width, _ = displacement.shape
    grid = pixel_grid(height, width)
    src = grid[::stride, ::stride].reshape(-1, 2)
    flat = torch.cat([grid.reshape(-1, 2), torch.ones(height * width, 1)], dim=1).double()
    out = displacement.clone()
    for t in range(num):
        dst = src + displacement[t, ::stride, ::stride].reshape(-1, 2)
        keep = torch.ones(src.shape[0], dtype=torch.bool) if visible is None else visible[t, ::stride, ::stride].reshape(-1)
        if int(keep.sum()) < 8:
            continue
        hom, _ = cv2.findHomography(src[keep].numpy().astype(np.float32), dst[keep].numpy().astype(np.float32), cv2.RANSAC, float(threshold))
        if hom is None:
            continue
        mapped = flat @ torch.from_numpy(hom).T
        induced = mapped[:, :2] / mapped[:, 2:].clamp_min(1e-9) - flat[:, :2]
        out[t] -= induced.float().reshape(height, width, 2)
    return out


def remove_camera_flow(displacement: torch.Tensor, camera, depth: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Subtract the motion a solved camera gives every pixel of frame 0: the pixel unprojected at its depth in frame 0
    and reprojected through frame t's camera (exact for a static 3D scene, parallax included, where a homography
    fits one plane). ``[T, H, W, 2]`` → ``[T, H, W, 2]``.

    Args:
        displacement: ``[T, H, W, 2]`` of frame 0's pixels (:func:`displacement_from_video`).
        camera: the source :class:`~py.camera.CameraPath` of the clip (Estimate Camera), ``T`` frames at W x H.
        depth: ``[H, W]`` camera z of frame 0 in the camera's scale (Estimate Camera's depth from motion, or any depth).
        valid: ``[H, W]`` bool where ``depth`` is known; elsewhere (moving objects, untriangulated areas) the median
            known depth is used, so only their camera-induced part is removed.
    """
    from .camera import CameraPath, pixel_grid, unproject_pixels

    check_tensor("displacement", displacement, ("T", "H", "W", 2))
    num, height, width, _ = displacement.shape
    if not isinstance(camera, CameraPath):
        raise ValueError(f"camera: expected a CameraPath (Estimate Camera's camera), got {type(camera).__name__}")
    if (camera.num_frames, camera.width, camera.height) != (num, width, height):
        raise ValueError(f"camera: {camera.num_frames} frames of {camera.width}x{camera.height}, but the video has {num} frames of {width}x{height}")
    depth = check_tensor("depth", depth, (height, width)).float()
    known = (depth > 0) if valid is None else (check_tensor("valid", valid, (height, width), kind="bool") & (depth > 0))
    if not bool(known.any()):
        raise ValueError("depth: no pixel of frame 0 has a known depth (a camera that only turns has no depth from motion); use the homography removal")
    depth = torch.where(known, depth, depth[known].median())
    grid = pixel_grid(height, width).reshape(-1, 2)
    k = camera.intrinsics.float()
    points = unproject_pixels(grid, depth.reshape(-1), k[0])  # camera 0 = the world
    w2c = camera.world_to_camera.float()
    out = displacement.clone()
    for t in range(num):
        cam = points @ w2c[t, :3, :3].T + w2c[t, :3, 3]
        proj = cam @ k[t].T
        induced = proj[:, :2] / proj[:, 2:].clamp_min(1e-6) - grid
        out[t] -= induced.reshape(height, width, 2)
    return out


# Mean motion above this fraction of the frame's longer side is no oscillation (leaves, water, cloth swing a few %).
PLAUSIBLE_MOTION = 0.03


def motion_check(displacement: torch.Tensor) -> tuple[float, float, bool]:
    """(mean, max) displacement length in px of ``[T, H, W, 2]`` and whether the mean exceeds
    :data:`PLAUSIBLE_MOTION` of the frame's longer side: motion a softmax-splatted image would tear on."""
    check_tensor("displacement", displacement, ("T", "H", "W", 2))
    magnitude = displacement.norm(dim=-1)
    mean, peak = float(magnitude.mean()), float(magnitude.max())
    return mean, peak, mean > PLAUSIBLE_MOTION * max(displacement.shape[1], displacement.shape[2])


def spectral_volume_from_video(frames: torch.Tensor, num_freqs: int = 16, fps: float = 30.0, *, remove_camera_motion: bool = False, preset: str = "medium", progress=None,
                               camera=None, depth: torch.Tensor | None = None, valid: torch.Tensor | None = None) -> SpectralVolume:
    """:func:`spectral_volume` of :func:`displacement_from_video` (period = the number of frames). With
    ``remove_camera_motion`` the camera's motion is removed: by the solved ``camera`` and frame 0's ``depth``
    (:func:`remove_camera_flow`) when given, else by a homography per frame (:func:`remove_global_motion`)."""
    num = int(frames.shape[0]) if isinstance(frames, torch.Tensor) and frames.dim() == 4 else None
    if num is not None and num >= 2 and check_positive_int("num_freqs", num_freqs) > max_freqs(num):
        raise ValueError(f"num_freqs: a video of {num} frames has only {max_freqs(num)} distinct frequencies (T // 2 + 1, DC included), got {num_freqs}; lower num_freqs or use a longer video")
    solved = remove_camera_motion and camera is not None
    displacement = displacement_from_video(frames, preset=preset, remove_camera_motion=remove_camera_motion and not solved, progress=progress)
    if solved:
        if depth is None:
            raise ValueError("depth: removing a solved camera's motion needs frame 0's depth (Estimate Camera's depth output)")
        displacement = remove_camera_flow(displacement, camera, depth, valid)
    return spectral_volume(displacement, num_freqs, fps)


# ---------------------------------------------------------------------------------------------------
# Motion transfer
# ---------------------------------------------------------------------------------------------------


def transfer_volume(volume: SpectralVolume, height: int, width: int, amplitude: float = 1.0, mask: torch.Tensor | None = None) -> SpectralVolume:
    """Apply a spectral volume to an image of another size: coefficients resized bilinearly, x vectors
    scaled by ``width / W``, y by ``height / H``, everything by ``amplitude``, and multiplied by ``mask``
    (``[height, width]`` 0..1; motion only inside it) when given.
    """
    import torch.nn.functional as F

    if not isinstance(volume, SpectralVolume):
        raise ValueError(f"volume: expected a SpectralVolume, got {type(volume).__name__}")
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    amplitude = check_finite_number("amplitude", amplitude)
    k, h0, w0, _ = volume.coeffs.shape
    coeffs = volume.coeffs
    if (h0, w0) != (height, width):
        planes = torch.cat([coeffs.real, coeffs.imag], dim=-1).permute(0, 3, 1, 2).float()  # [K, 4, H, W]
        planes = F.interpolate(planes, size=(height, width), mode="bilinear", align_corners=False, antialias=height < h0 or width < w0)
        planes = planes.permute(0, 2, 3, 1)
        coeffs = torch.complex(planes[..., :2], planes[..., 2:])
    ratio = torch.tensor([width / w0, height / h0], device=coeffs.device)
    coeffs = coeffs * (ratio * amplitude)
    if mask is not None:
        mask = check_tensor("mask", mask, (height, width)).to(coeffs.device).float()
        coeffs = coeffs * mask[None, :, :, None]
    return SpectralVolume(coeffs=coeffs.to(torch.complex64), period=volume.period, fps=volume.fps)


# ---------------------------------------------------------------------------------------------------
# Procedural motion brush
# ---------------------------------------------------------------------------------------------------

_CROSS_SWAY = 0.2  # motion across the main direction, relative to along it (leaves do not swing on rails)


def _smooth_noise(generator: torch.Generator, count: int, height: int, width: int, sigma: float) -> torch.Tensor:
    """``[count, H, W]`` complex Gaussian noise low-passed with a Gaussian of ``sigma`` px, unit RMS.

    The noise is drawn on a grid ``sigma / 2`` px coarse (at least 1), blurred there and upsampled
    bilinearly: the same spectrum for a fraction of the cost of a full-resolution blur.
    """
    import torch.nn.functional as F
    from kornia.filters import gaussian_blur2d

    step = max(1, int(sigma // 2))
    h, w = -(-height // step), -(-width // step)
    noise = torch.randn(count, 2, h, w, generator=generator)
    fine = sigma / step
    if fine > 0.3:
        size = min(2 * int(math.ceil(3 * fine)) + 1, 2 * max(h, w) + 1)
        noise = gaussian_blur2d(noise, (size, size), (fine, fine), border_type="replicate")
    if step > 1:
        noise = F.interpolate(noise, size=(h * step, w * step), mode="bilinear", align_corners=False)[:, :, :height, :width]
    noise = noise / noise.square().mean(dim=(1, 2, 3), keepdim=True).mul(2).sqrt().clamp_min(1e-12)
    return torch.complex(noise[:, 0], noise[:, 1])


def _stiffness(mask: torch.Tensor, border: float) -> torch.Tensor:
    """``[H, W]`` 0..1 freedom to move: 0 on and outside the mask's border, rising (smoothstep) to 1 at
    ``border`` px inside it — the stiff attachment of a branch or a stem."""
    import cv2

    inside = mask > 0.5
    if bool(inside.all()) or border <= 0:
        return torch.ones_like(mask)
    # OpenCV's exact Euclidean transform: kornia's iterative one takes seconds at video sizes.
    dist = torch.from_numpy(cv2.distanceTransform(inside.numpy().astype("uint8"), cv2.DIST_L2, cv2.DIST_MASK_PRECISE))
    x = (dist / border).clamp(0, 1)
    return x * x * (3 - 2 * x)


def motion_brush(
    mask: torch.Tensor,
    direction: float = 0.0,
    amplitude: float = 4.0,
    band: tuple[float, float] = (0.2, 3.0),
    coherence: float = 16.0,
    seed: int = 0,
    *,
    num_freqs: int = 16,
    period: int = 150,
    fps: float = 30.0,
    border: float | None = None,
) -> SpectralVolume:
    """A plausible spectral volume painted into a mask, no weights needed ("motion brush").

    Bins k = 1..K-1 (f_k = k · fps / T Hz) inside ``band`` get an amplitude ∝ 1/f_k (natural motion's
    spectrum falls with frequency), normalised so the harmonics' RMS amplitudes add up to
    ``amplitude`` px. Each bin's complex coefficient field is Gaussian noise low-passed over
    ``coherence`` px, so neighbouring pixels share phase and sway together; motion is mostly along
    ``direction`` (degrees, 0 = +x right, 90 = +y down) with a 20 % independent cross sway. The
    stiffness rises towards the mask border: amplitude goes smoothly to 0 over ``border`` px
    (default ``coherence``) inside the border. DC is 0 (the rest pose is the image). Deterministic per seed.

    Args:
        mask: ``[H, W]`` 0..1 (> 0.5 is inside); soft values scale the motion.
        band: (low, high) Hz, 0 ≤ low ≤ high.

    Returns:
        :class:`SpectralVolume` ``[K, H, W, 2]`` with the given period and fps.
    """
    mask = check_tensor("mask", mask, (None, None)).detach().float().cpu()
    height, width = mask.shape
    if not bool((mask > 0.5).any()):
        raise ValueError("mask: the motion brush mask is empty (no pixel > 0.5); paint where the image should move")
    direction = check_finite_number("direction", direction)
    amplitude = check_finite_number("amplitude", amplitude, low=0.0, high=10_000.0)
    coherence = check_finite_number("coherence", coherence, low=0.0, high=100_000.0)
    border = coherence if border is None else check_finite_number("border", border, low=0.0)
    seed = check_positive_int("seed", seed, minimum=0, maximum=2**63 - 1)
    period = check_positive_int("period", period, minimum=2)
    fps = check_finite_number("fps", fps, low=1e-3, high=1000.0)
    num_freqs = check_positive_int("num_freqs", num_freqs)
    if num_freqs > max_freqs(period):
        raise ValueError(f"num_freqs: a period of {period} frames has only {max_freqs(period)} distinct frequencies (T // 2 + 1, DC included), got {num_freqs}")
    if not isinstance(band, (tuple, list)) or len(band) != 2:
        raise ValueError(f"band: expected (low, high) in Hz, got {band!r}")
    low = check_finite_number("band low", band[0], low=0.0)
    high = check_finite_number("band high", band[1], low=0.0)
    if high < low:
        raise ValueError(f"band: the high frequency {high} Hz is below the low one {low} Hz")
    freqs = torch.arange(num_freqs, dtype=torch.float64) * fps / period
    inband = (freqs >= low) & (freqs <= high) & (freqs > 0)
    if not bool(inband.any()):
        spacing = fps / period
        raise ValueError(f"band: no frequency of the volume lies in {low}..{high} Hz (bins are {spacing:.3g} Hz apart up to {float(freqs[-1]):.3g} Hz); widen the band or raise num_freqs")
    weights = torch.where(inband, 1.0 / freqs.clamp_min(1e-9), torch.zeros_like(freqs))
    weights = (weights / weights.sum()).float()

    generator = torch.Generator().manual_seed(seed)
    along = _smooth_noise(generator, num_freqs, height, width, coherence)
    across = _smooth_noise(generator, num_freqs, height, width, coherence)
    angle = math.radians(direction)
    d = torch.tensor([math.cos(angle), math.sin(angle)])
    n = torch.tensor([-math.sin(angle), math.cos(angle)])
    # A harmonic (2/T)|S| cos(...) has RMS amplitude sqrt(2)/T |S|; |noise| has unit RMS.
    gain = (weights * amplitude * period / math.sqrt(2))[:, None, None] * (_stiffness(mask, border) * mask.clamp(0, 1))
    coeffs = (along * gain)[..., None] * d + (_CROSS_SWAY * across * gain)[..., None] * n
    return SpectralVolume(coeffs=coeffs.to(torch.complex64), period=period, fps=fps)


# ---------------------------------------------------------------------------------------------------
# Visualisation
# ---------------------------------------------------------------------------------------------------


def _colour_wheel() -> torch.Tensor:
    """``[55, 3]`` the Middlebury flow colour wheel (Baker et al. 2011): red → yellow → green → cyan →
    blue → magenta → red, with 15, 6, 4, 11, 13, 6 steps."""
    segments = ((15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)), (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0)))
    parts = []
    for steps, start, end in segments:
        s = torch.arange(steps, dtype=torch.float32)[:, None] / steps
        parts.append(torch.tensor(start, dtype=torch.float32) * (1 - s) + torch.tensor(end, dtype=torch.float32) * s)
    return torch.cat(parts)


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Flow ``[..., H, W, 2]`` → RGB ``[..., H, W, 3]`` in 0..1 on the standard colour wheel: hue is the
    direction, saturation the magnitude relative to ``max_magnitude`` (default: the largest in ``flow``),
    white where there is no motion."""
    check_tensor("flow", flow, (None, None, 2)) if flow.dim() == 3 else check_tensor("flow", flow, (None, None, None, 2))
    flow = flow.detach().float()
    mag = flow.norm(dim=-1)
    top = float(mag.max()) if max_magnitude is None else check_finite_number("max_magnitude", max_magnitude, low=0.0)
    radius = (mag / max(top, 1e-9)).clamp(0, 1)
    wheel = _colour_wheel().to(flow.device)
    n = wheel.shape[0]
    flat_flow, flat_radius = flow.reshape(-1, 2), radius.reshape(-1)
    out = torch.empty(flat_radius.shape[0], 3, device=flow.device)
    for start in range(0, out.shape[0], 1 << 20):  # bounded temporaries for long videos
        f, r = flat_flow[start : start + (1 << 20)], flat_radius[start : start + (1 << 20)]
        pos = (torch.atan2(-f[:, 1], -f[:, 0]) / math.pi + 1) / 2 * (n - 1)  # angle -1..1 → wheel position
        i0 = pos.floor().long().clamp(0, n - 1)
        frac = (pos - i0)[:, None]
        colour = wheel[i0] * (1 - frac) + wheel[(i0 + 1) % n] * frac
        out[start : start + (1 << 20)] = 1 - r[:, None] * (1 - colour)
    return out.reshape(*flow.shape[:-1], 3)


def amplitude_bands(volume: SpectralVolume) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude per frequency: ``[K, H, W, 3]`` grey images (each normalised by its own peak, so the
    weak high bands stay visible) and ``[K]`` peak amplitudes in px.

    The amplitude of bin k is the length of its harmonic's displacement ellipse's major axis bound,
    w_k / T · sqrt(|S_kx|² + |S_ky|²) (w_0 = 1, w_k = 2 otherwise): the pixels it swings by.
    """
    if not isinstance(volume, SpectralVolume):
        raise ValueError(f"volume: expected a SpectralVolume, got {type(volume).__name__}")
    amp = volume.coeffs.abs().float().square().sum(-1).sqrt() / volume.period
    last = volume.num_freqs if volume.period % 2 or volume.num_freqs < max_freqs(volume.period) else volume.num_freqs - 1
    amp[1:last] *= 2  # a Nyquist bin has no negative twin
    peak = amp.flatten(1).max(dim=1).values
    images = (amp / peak.clamp_min(1e-9)[:, None, None])[..., None].expand(-1, -1, -1, 3)
    return images.contiguous().cpu(), peak.cpu()
