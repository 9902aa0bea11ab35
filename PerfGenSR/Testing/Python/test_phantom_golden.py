"""Golden phantom studies: the same seeds and options give the same studies as when the data was stored.

``data/phantom_golden.json`` holds compact fingerprints (per-frame statistics, fixed random projections,
curves, the label map's hash, the parameters) of a few studies. It was written once, before the phantom
became a package of steps, by running this file as a script; regenerate it only for a deliberate change
of the phantom (which changes every training set drawn from its seeds).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from PerfGenSRLib.phantom import labels_from_masks, make_phantom

DATA = Path(__file__).parent / "data" / "phantom_golden.json"
CASES = [  # (seed, frames, options): default draw, rest/stress, each defect kind, a fixed matrix
    (0, 12, {}),
    (1, 8, {"stress": False, "defect": None}),
    (2, 8, {"stress": True, "defect": "transmural"}),
    (3, 8, {"stress": True, "defect": "subendocardial", "matrix": [128, 144]}),
    (11, 10, {}),
]
PROJECTIONS = 3


def _projections(frames: np.ndarray) -> list[list[float]]:
    """Each frame's dot products with fixed unit random images: any change of any pixel moves them."""
    weights = np.random.default_rng(0).standard_normal((PROJECTIONS, *frames.shape[1:]))
    weights /= np.sqrt((weights**2).sum((1, 2), keepdims=True))
    return np.einsum("thw,phw->tp", frames.astype(np.float64), weights).tolist()


def fingerprint(seed: int, frames: int, options: dict) -> dict:
    """A small JSON-able summary of one study that pins its frames, truth, masks, curves and parameters."""
    kwargs = dict(options)
    if "matrix" in kwargs:
        kwargs["matrix"] = tuple(kwargs["matrix"])
    study = make_phantom(seed, frames, **kwargs)
    out = {"shape": list(study.frames.shape)}
    for name in ("frames", "truth"):
        array = getattr(study, name).astype(np.float64)
        out[name] = {
            "mean": array.mean((1, 2)).tolist(),
            "std": array.std((1, 2)).tolist(),
            "projection": _projections(array),
        }
    out["labels_sha256"] = hashlib.sha256(labels_from_masks(study.masks).tobytes()).hexdigest()
    out["curves"] = {k: np.asarray(v, np.float64).tolist() for k, v in study.curves.items()}
    out["frame_times"] = np.asarray(study.frame_times).tolist()
    out["spacing"] = [float(v) for v in study.spacing]
    out["heart_center"] = [int(v) for v in study.heart_center]
    out["params"] = study.params
    return out


def _numbers_approx(value):
    """The parameters with every float compared to 1e-5 (the noise SD is measured on float32 frames)."""
    if isinstance(value, dict):
        return {k: _numbers_approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_approx(v) for v in value]
    return pytest.approx(value, rel=1e-5) if isinstance(value, float) else value


@pytest.fixture(scope="module")
def golden():
    return json.loads(DATA.read_text())


@pytest.mark.parametrize("case", range(len(CASES)))
def test_same_seed_same_study_as_stored(golden, case):
    seed, frames, options = CASES[case]
    stored = golden[case]
    assert [stored["seed"], stored["frames"], stored["options"]] == [seed, frames, options]
    now = fingerprint(seed, frames, options)
    expected = stored["fingerprint"]
    assert now["shape"] == expected["shape"] and now["heart_center"] == expected["heart_center"]
    assert now["labels_sha256"] == expected["labels_sha256"]
    assert now["params"] == _numbers_approx(expected["params"])
    assert now["spacing"] == pytest.approx(expected["spacing"], rel=1e-12)
    assert now["frame_times"] == pytest.approx(expected["frame_times"], rel=1e-12)
    pixels = np.prod(expected["shape"][-2:])
    for name in ("frames", "truth"):
        scale = float(np.abs(expected[name]["mean"]).max())
        for key in ("mean", "std"):
            np.testing.assert_allclose(now[name][key], expected[name][key], rtol=1e-5, atol=1e-6 * scale)
        # A projection sums every pixel with random signs, so it may be near 0: judge its change against
        # the frame's norm. NumPy/SciPy releases move it by ~2e-6 of that norm (float32 rounding); any
        # real change of the phantom by orders of magnitude more.
        mean, std = (np.asarray(expected[name][key]) for key in ("mean", "std"))
        norm = np.sqrt((mean**2 + std**2) * pixels)[:, None]
        change = np.abs(np.asarray(now[name]["projection"]) - expected[name]["projection"]) / norm
        assert change.max() < 2e-5, f"{name} projections moved by {change.max():.2e} of the frame norm"
    assert set(now["curves"]) == set(expected["curves"])
    for key, curve in expected["curves"].items():
        np.testing.assert_allclose(now["curves"][key], curve, rtol=1e-5, atol=1e-6 * max(map(abs, curve)))


if __name__ == "__main__":  # regenerate the stored fingerprints (a deliberate change of the phantom only)
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python test_phantom_golden.py --write")
    DATA.parent.mkdir(exist_ok=True)
    stored = [
        {"seed": s, "frames": n, "options": o, "fingerprint": fingerprint(s, n, o)} for s, n, o in CASES
    ]
    DATA.write_text(json.dumps(stored, indent=1) + "\n")
