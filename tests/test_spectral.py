"""Spectral volumes (Generative Image Dynamics): Fourier round trip, looping, normalisation, motion brush,
motion from a video, transfer, visualisation and bad inputs."""

import math

import pytest
import torch

from vid4d.py import spectral as sp


def _band_limited(T=30, H=6, W=7, K=8, seed=0, amp=5.0):
    """A motion made of harmonics k < K (float64), with a DC offset."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float64)[:, None, None, None]
    out = torch.zeros(T, H, W, 2, dtype=torch.float64)
    for k in range(K):
        a = torch.randn(H, W, 2, generator=g, dtype=torch.float64) * amp
        ph = torch.rand(H, W, 2, generator=g, dtype=torch.float64) * 2 * math.pi
        out += a * torch.cos(2 * math.pi * k * t / T + ph)
    return out.float()


@pytest.mark.parametrize("T,K", [(30, 8), (31, 16), (16, 9)])  # (16, 9): the Nyquist bin of an even T
def test_round_trip_is_exact_for_band_limited_motion(T, K):
    d = _band_limited(T=T, K=K)
    volume = sp.spectral_volume(d, num_freqs=K, fps=24.0)
    assert volume.coeffs.shape == (K, 6, 7, 2) and volume.coeffs.is_complex() and volume.period == T and volume.fps == 24.0
    assert (sp.motion_texture(volume, T) - d).abs().max() <= 1e-4


def test_coefficients_are_the_fft_and_conjugate_symmetric():
    d = _band_limited(T=20, K=6)
    volume = sp.spectral_volume(d, num_freqs=11)
    full = torch.fft.fft(d.double(), dim=0)
    assert torch.allclose(volume.coeffs.to(torch.complex128), full[:11], atol=1e-3)
    # Negative bins are the conjugates of the positive ones the volume keeps (real motion) ...
    assert torch.allclose(full[1:10], full.flip(0)[:9].conj(), atol=1e-9)
    # ... so the series is the inverse FFT of the conjugate-symmetric zero-padded spectrum, which is real.
    truncated = sp.spectral_volume(d, num_freqs=4)
    padded = torch.zeros(20, 6, 7, 2, dtype=torch.complex128)
    padded[:4] = truncated.coeffs
    padded[-3:] = truncated.coeffs[1:].flip(0).conj()
    inverse = torch.fft.ifft(padded, dim=0)
    assert inverse.imag.abs().max() < 1e-5
    assert (sp.motion_texture(truncated, 20) - inverse.real.float()).abs().max() < 1e-4
    assert volume.coeffs[0].imag.abs().max() < 1e-3  # DC is real


def test_loop_continuity_and_resampling():
    volume = sp.spectral_volume(_band_limited(T=30, K=8), 8)
    at = lambda t: sp.motion_texture(volume, 1, times=torch.tensor([t], dtype=torch.float64))[0]
    assert (at(30.0) - at(0.0)).abs().max() <= 1e-4  # frame T equals frame 0
    assert (at(47.5) - at(17.5)).abs().max() <= 1e-4
    looped = sp.motion_texture(volume, 45, loop=True)  # 45 frames spanning one period
    assert looped.shape == (45, 6, 7, 2)
    assert (looped[0] - at(0.0)).abs().max() <= 1e-5 and (looped[3] - at(2.0)).abs().max() <= 1e-4
    double_rate = sp.motion_texture(volume, 60, fps=60.0)  # source at 30 fps: every other frame is a source frame
    assert (double_rate[::2] - sp.motion_texture(volume, 30)).abs().max() <= 1e-4


def test_normalisation_is_exactly_invertible_and_uses_the_stats():
    volumes = [sp.spectral_volume(_band_limited(T=24, K=8, seed=s), 8) for s in range(3)]
    scales = sp.fit_spectral_stats(volumes)
    assert scales.shape == (8,) and bool((scales > 0).all())
    mags = torch.cat([v.coeffs.abs().reshape(8, -1) for v in volumes], 1)
    assert torch.allclose((mags <= scales[:, None]).float().mean(1), torch.full((8,), 0.95), atol=0.02)  # the 95th percentile
    norm = sp.normalize_spectral(volumes[0], scales)
    assert norm.shape == (8, 6, 7, 4) and norm.abs().max() < 3
    back = sp.denormalize_spectral(norm, scales)
    assert ((back - volumes[0].coeffs).abs() / volumes[0].coeffs.abs().clamp_min(1e-3)).max() < 1e-5
    # sign·sqrt per real channel: Re x of bin 2 at pixel (0, 0)
    c = volumes[0].coeffs[2, 0, 0, 0].real
    assert torch.isclose(norm[2, 0, 0, 0], torch.sign(c) * torch.sqrt(c.abs() / scales[2]))
    with pytest.raises(ValueError, match="scales"):
        sp.normalize_spectral(volumes[0], scales[:4])


def _mask():
    m = torch.zeros(48, 64)
    m[8:40, 12:52] = 1
    return m


def test_motion_brush_is_deterministic_confined_and_smooth():
    mask = _mask()
    a = sp.motion_brush(mask, direction=30, amplitude=3.0, band=(0.2, 2.0), coherence=8, seed=5, num_freqs=16, period=150)
    b = sp.motion_brush(mask, direction=30, amplitude=3.0, band=(0.2, 2.0), coherence=8, seed=5, num_freqs=16, period=150)
    c = sp.motion_brush(mask, direction=30, amplitude=3.0, band=(0.2, 2.0), coherence=8, seed=6, num_freqs=16, period=150)
    assert torch.equal(a.coeffs, b.coeffs) and not torch.equal(a.coeffs, c.coeffs)
    tex = sp.motion_texture(a, 150)
    assert bool(torch.isfinite(tex).all())
    assert tex[:, mask == 0].abs().max() == 0  # confined to the mask
    mag = tex.norm(dim=-1)
    inside = mag[:, 16:32, 20:44]
    assert 0.3 < float(inside.amax(0).mean()) < 6.0
    # Stiff border: near the mask edge it moves far less than in the middle.
    assert float(mag[:, 9, 20:44].amax(0).mean()) < 0.3 * float(mag[:, 24, 20:44].amax(0).mean())
    # Smooth: neighbouring pixels move together (a step is small next to the motion itself).
    step = (tex[:, 16:32, 21:44] - tex[:, 16:32, 20:43]).norm(dim=-1)
    assert float(step.mean()) < 0.25 * float(inside.mean())  # (white noise: ~1.4)
    # Mostly along the direction (30°), amplitude falls with frequency, DC is zero, band respected.
    d = torch.tensor([math.cos(math.radians(30)), math.sin(math.radians(30))])
    along = (tex @ d).abs().mean()
    assert along > 2.5 * (tex @ torch.tensor([-d[1], d[0]])).abs().mean()
    _, peaks = sp.amplitude_bands(a)
    assert peaks[0] == 0 and peaks[1] > peaks[8] > 0 and float(peaks[11:].max()) == 0  # bins 0.2 Hz apart: 1..10 in band


def _pattern(x, y):
    """A smooth analytic texture (exactly shiftable): ``[..., 3]`` in 0..1."""
    v = 0.5 + 0.2 * torch.sin(0.31 * x + 0.7) * torch.cos(0.23 * y) + 0.15 * torch.sin(0.17 * x + 0.29 * y) + 0.1 * torch.cos(0.53 * y - 0.11 * x)
    return torch.stack([v, 0.8 * v + 0.1, 1.0 - v], dim=-1)


def test_from_video_recovers_a_known_oscillation():
    # A texture translating by A sin(2π f t / T) + a camera pan: the scene oscillation is bin f.
    T, H, W, A, f = 24, 48, 64, 2.0, 2
    t = torch.arange(T, dtype=torch.float64)
    shift = A * torch.sin(2 * math.pi * f * t / T)
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    frames = torch.stack([_pattern(x - s, y) for s in shift]).float()
    volume = sp.spectral_volume_from_video(frames, num_freqs=6, fps=24.0)
    assert volume.coeffs.shape == (6, H, W, 2) and volume.period == T
    amp = volume.coeffs[:, 8:-8, 8:-8, 0].abs().median(dim=-1).values.median(dim=-1).values * 2 / T
    assert abs(float(amp[f]) - A) < 0.15, amp
    assert float(amp[1]) < 0.15 and float(amp[3]) < 0.15
    assert float(volume.coeffs[f, 8:-8, 8:-8, 1].abs().median()) * 2 / T < 0.15  # no vertical motion


def test_camera_motion_removal_keeps_only_the_oscillation():
    T, H, W = 12, 32, 40
    t = torch.arange(T, dtype=torch.float32)
    grid_y = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    d = torch.zeros(T, H, W, 2)
    d[..., 0] = (0.8 * t)[:, None, None]  # a pan
    d[..., 1] = (0.3 * t)[:, None, None] * (1 + 0.01 * grid_y)  # and a slight zoom in y
    wobble = 1.5 * torch.sin(2 * math.pi * t / T)
    d[:, 10:16, 10:16, 0] += wobble[:, None, None]  # a small object swaying
    out = sp.remove_global_motion(d)
    assert out[:, :8].abs().max() < 0.05  # the background no longer moves
    assert torch.allclose(out[:, 12, 12, 0], wobble, atol=0.05)


def test_transfer_resizes_scales_and_masks():
    volume = sp.spectral_volume(_band_limited(T=16, H=8, W=10, K=5), 5)
    out = sp.transfer_volume(volume, 16, 30, amplitude=0.5)
    assert out.coeffs.shape == (5, 16, 30, 2) and out.period == 16
    # constant motion stays constant, with x scaled by 3 and y by 2 (and the amplitude)
    const = sp.SpectralVolume(coeffs=torch.ones(3, 8, 10, 2, dtype=torch.complex64), period=8)
    scaled = sp.transfer_volume(const, 16, 30, amplitude=0.5).coeffs
    assert torch.allclose(scaled[..., 0].real, torch.full((3, 16, 30), 1.5)) and torch.allclose(scaled[..., 1].real, torch.ones(3, 16, 30))
    mask = torch.zeros(16, 30)
    mask[:, :10] = 1
    masked = sp.transfer_volume(volume, 16, 30, mask=mask).coeffs
    assert masked[:, :, 10:].abs().max() == 0 and masked[:, :, :10].abs().max() > 0


def test_visualisations():
    wheel = sp.flow_to_color(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 0.0]]]))
    assert wheel.shape == (1, 5, 3) and wheel.min() >= 0 and wheel.max() <= 1
    assert torch.allclose(wheel[0, 4], torch.ones(3))  # no motion is white
    assert torch.allclose(wheel[0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=0.05)  # +x is red on the Middlebury wheel
    assert len({tuple(c.tolist()) for c in wheel[0, :4].round(decimals=3)}) == 4  # four directions, four hues
    volume = sp.motion_brush(_mask(), amplitude=2.0, num_freqs=8, period=40)
    images, peaks = sp.amplitude_bands(volume)
    assert images.shape == (8, 48, 64, 3) and peaks.shape == (8,) and float(images.max()) <= 1.0


def test_bad_inputs_are_clear_errors():
    d = torch.zeros(10, 4, 5, 2)
    with pytest.raises(ValueError, match="6 distinct frequencies"):
        sp.spectral_volume(d, num_freqs=7)
    assert sp.spectral_volume(d, num_freqs=6).num_freqs == 6  # T // 2 + 1 is the limit (DC and Nyquist included)
    bad = d.clone()
    bad[3, 1, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sp.spectral_volume(bad)
    with pytest.raises(ValueError, match="displacement"):
        sp.spectral_volume(torch.zeros(10, 4, 5, 3))
    with pytest.raises(ValueError, match="empty"):
        sp.spectral_volume(torch.zeros(10, 0, 5, 2), num_freqs=2)
    with pytest.raises(ValueError, match="empty"):
        sp.motion_brush(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="band"):
        sp.motion_brush(torch.ones(8, 8), band=(5.0, 6.0), num_freqs=4, period=150)
    with pytest.raises(ValueError, match="mask"):
        sp.transfer_volume(sp.spectral_volume(d, 3), 4, 5, mask=torch.ones(5, 4))
    with pytest.raises(ValueError, match="distinct frequencies"):
        sp.spectral_volume_from_video(torch.rand(4, 16, 16, 3), num_freqs=16)
