"""The streaming jitter / lag meter of the bench: what it measures, and that it equals the whole-series formula."""

import numpy as np
import pytest

from edge_pct.stream.steadiness import STILL_WINDOW, PoseLinker, SteadinessMeter, _KEEP


def _whole_series(tracks: dict[int, dict[int, tuple]]) -> dict:
    """Reference: the formulas over each track's whole frame span (NaN where not shown), as the bench first did."""
    acc_sum = acc_n = lag_num = lag_den = 0.0
    w = STILL_WINDOW
    for series in tracks.values():
        idx = sorted(series)
        n = idx[-1] - idx[0] + 1
        if len(idx) < 3:
            continue
        joints, raw, h = np.full((n, 17, 2), np.nan), np.full((n, 17, 2), np.nan), np.full(n, np.nan)
        for i in idx:
            j, r, hh = series[i]
            joints[i - idx[0]], h[i - idx[0]] = j, hh
            if r is not None:
                raw[i - idx[0]] = r
        centre, still = joints.mean(1), np.zeros(n, bool)
        if n > 2 * w:
            still[w:-w] = np.linalg.norm(centre[2 * w:] - centre[:-2 * w], axis=-1) / (2 * w) / h[w:-w] < 0.005
        m = np.where(still[:, None, None], joints, np.nan)
        acc = np.linalg.norm(m[2:] - 2 * m[1:-1] + m[:-2], axis=-1) / h[1:-1, None]
        acc_sum, acc_n = acc_sum + acc[np.isfinite(acc)].sum(), acc_n + np.isfinite(acc).sum()
        v = (raw[2:] - raw[:-2]) / 2
        moving = np.linalg.norm(v, axis=-1) / h[1:-1, None] > 0.01
        lag_num += np.nansum(((raw[1:-1] - joints[1:-1]) * v).sum(-1)[moving])
        lag_den += np.nansum((v * v).sum(-1)[moving])
    return {"jitter_still": acc_sum / acc_n, "still_samples": int(acc_n), "lag_frames": lag_num / lag_den}


def _feed(tracks: dict[int, dict[int, tuple]]) -> SteadinessMeter:
    meter = SteadinessMeter()
    for frame in range(max(max(s) for s in tracks.values()) + 1):
        for k, series in tracks.items():
            if frame in series:
                meter.add(frame, k, *series[frame])
        meter.forget(frame)
    return meter


def _still_person(rng, frames, noise_px, height=200.0):
    base = rng.uniform(100, 300, (17, 2))
    return {t: (base + rng.normal(0, noise_px, (17, 2)), None, height) for t in frames}


def test_jitter_of_a_still_person_is_the_noise_acceleration_over_the_height():
    rng = np.random.default_rng(0)
    res = _feed({0: _still_person(rng, range(400), noise_px=1.0)}).result()
    # x[t+1] - 2x[t] + x[t-1] of white noise (sigma 1 px per axis) has sigma sqrt(6) per axis: norm mean sqrt(6 pi/2)
    assert res["jitter_still"] == pytest.approx(np.sqrt(6 * np.pi / 2) / 200, rel=0.05)
    assert res["still_samples"] > 17 * 300


def test_a_walker_is_not_still_and_a_filter_trailing_by_two_frames_lags_two_frames():
    t = np.arange(200, dtype=float)
    base = np.random.default_rng(1).uniform(0, 100, (17, 2))
    raw = {int(i): base + [5.0 * i, 0.0] for i in t}  # 5 px / frame, height 200: 0.025 heights / frame
    series = {i: (raw[max(i - 2, 0)], raw[i], 200.0) for i in raw}  # shown = raw two frames ago
    res = _feed({3: series}).result()
    assert res["still_samples"] == 0 and res["jitter_still"] is None
    assert res["lag_frames"] == pytest.approx(2.0, abs=0.05)


def test_the_running_meter_equals_the_whole_series_formula_with_gaps_and_many_tracks():
    rng = np.random.default_rng(2)
    tracks = {}
    for k in range(6):
        frames = sorted(rng.choice(300, size=220, replace=False))  # gaps of every length
        noise, drift = rng.uniform(0.2, 2), rng.uniform(0, 2) * (k % 2)
        base = rng.uniform(100, 300, (17, 2))
        tracks[k] = {}
        for t in frames:
            raw = base + [drift * t, 0] + rng.normal(0, noise, (17, 2))
            shown = raw * 0.7 + base * 0.3 if k != 4 else raw
            tracks[k][int(t)] = (shown, None if k == 5 else raw, float(rng.uniform(150, 250)))
    got, want = _feed(tracks).result(), _whole_series(tracks)
    assert got["still_samples"] == want["still_samples"] > 0
    assert got["jitter_still"] == pytest.approx(want["jitter_still"], rel=1e-9)
    assert got["lag_frames"] == pytest.approx(want["lag_frames"], rel=1e-9)


def test_memory_stays_flat_over_a_long_stream():
    rng = np.random.default_rng(3)
    meter = SteadinessMeter()
    for frame in range(5000):
        for k in (frame // 100, frame // 100 + 1000):  # a new pair of ids every 100 frames
            meter.add(frame, k, rng.uniform(0, 100, (17, 2)), None, 100.0)
        meter.forget(frame)
    assert len(meter._recent) <= 4
    assert max(len(r) for r in meter._recent.values()) <= _KEEP


def test_poses_without_ids_are_linked_to_the_nearest_previous_pose():
    a, b = np.zeros((17, 2)), np.zeros((17, 2))
    a[:, 1], b[:, 1] = np.linspace(0, 100, 17), np.linspace(0, 100, 17)
    b[:, 0] = 500
    linker = PoseLinker()
    first = linker.link([a, b])
    second = linker.link([b + 3, a + 3])  # order swapped, both moved a little
    assert {k: v[0, 0] for k, v in second.items()} == {k: v[0, 0] + 3 for k, v in first.items()}
    third = linker.link([a + 400])  # too far from either (max jump 0.5 heights): a new track
    assert set(third) - set(first)
