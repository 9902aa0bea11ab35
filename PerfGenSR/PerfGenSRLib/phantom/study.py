"""A phantom study from a seed: the steps in order, each drawing from its own spawned stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .. import io
from ..errors import PerfGenError
from .acquisition import acquire, draw_acquisition, draw_coil
from .body import draw_body
from .geometry import HEART_CROP, uniform
from .heart import draw_heart, place_heart
from .motion import draw_motion
from .paint import make_grids, paint
from .priors import KindPriors, PhantomPriors
from .render import region_curves, region_masks, render
from .timing import draw_timing
from .tracer import draw_signals, draw_tracer

DEFECT_CHOICES = ("random", None, "none", "subendocardial", "transmural")
SLICE_THICKNESS = 8.0  # mm
MAX_MATRIX = 384
# one stream per aspect, spawned from the seed in this order, so that e.g. the frame count changes
# timing but not anatomy; steps of one aspect (body, heart, placement; painting then coil) share it
STREAMS = ("kind", "timing", "motion", "anatomy", "acquisition", "tracer", "paint", "noise")


@dataclass
class PhantomStudy:
    """One synthetic study: noisy frames, their noise-free expectation, masks, true curves, geometry."""

    frames: np.ndarray  # (T, H, W) float32 noisy magnitude, the HR training target
    truth: np.ndarray  # (T, H, W) float32 expected magnitude E|x + n| (Rice mean), same scale
    masks: dict[str, np.ndarray]  # lv_blood, rv_blood, myocardium, defect: bool (H, W) at end-expiration
    curves: dict[str, np.ndarray]  # mask name -> (T,) mean of truth in the (breathing-tracked) region
    frame_times: np.ndarray  # (T,) s from the first frame
    spacing: tuple[float, float]  # (x = column, y = row) mm
    heart_center: tuple[int, int]  # (row, col) of the LV centre
    params: dict  # JSON-serialisable parameters of the study

    def to_study(self) -> io.Study:
        """The noisy frames as a :class:`PerfGenSRLib.io.Study` carrying geometry, times and parameters."""
        return io.Study(
            self.frames.astype(np.float32),
            spacing=(float(self.spacing[0]), float(self.spacing[1]), SLICE_THICKNESS),
            frame_times=np.asarray(self.frame_times, dtype=float),
            single_slice=True,
            meta={"heart_center": [int(v) for v in self.heart_center], "phantom": self.params},
        )


@dataclass(frozen=True)
class Kind:
    stress: bool
    defect: str  # none, subendocardial or transmural
    tesla: float
    edge: float  # mm, softness of tissue borders


def draw_kind(rng: np.random.Generator, p: KindPriors, stress: bool | None, defect: str | None) -> Kind:
    """Stress or rest and the defect (drawn unless given), the field strength, the edge softness."""
    stress = bool(rng.random() < p.stress_chance) if stress is None else bool(stress)
    if defect == "random":
        chances = p.defect_chances_stress if stress else p.defect_chances_rest
        defect = str(rng.choice(p.defect_kinds, p=chances))
    tesla = 3.0 if rng.random() < p.tesla_3_chance else 1.5
    return Kind(stress, "none" if defect in (None, "none") else defect, tesla, uniform(rng, *p.edge_mm))


def make_phantom(
    seed: int,
    frames: int = 40,
    *,
    stress: bool | None = None,
    defect: str | None = "random",
    matrix: tuple[int, int] | None = None,
    priors: PhantomPriors = PhantomPriors(),  # noqa: B008 (frozen, so a shared default is safe)
) -> PhantomStudy:
    """A synthetic short-axis first-pass perfusion study, fully determined by ``seed``, the options and
    ``priors`` (the ranges it is drawn from; the default is the bundled model's training distribution)."""
    _check_options(frames, defect, matrix, priors)
    seed, frames = int(seed), int(frames)
    rng = _streams(seed)
    kind = draw_kind(rng["kind"], priors.kind, stress, defect)
    timing = draw_timing(rng["timing"], priors.timing, frames, kind.stress)
    motion = draw_motion(rng["motion"], priors.motion, timing.times)
    body = draw_body(rng["anatomy"], priors.body)
    heart = draw_heart(
        rng["anatomy"], priors.heart, kind.defect, motion.heart_reach, priors.acquisition.pixel_mm[1]
    )
    placed = place_heart(rng["anatomy"], priors.placement, body, heart)
    acq = draw_acquisition(rng["acquisition"], priors.acquisition, placed, motion.heart_reach, matrix)
    tracer = draw_tracer(rng["tracer"], priors.tracer, timing, kind.stress, placed.heart.defect, kind.defect)
    signals = draw_signals(  # continues the tracer stream
        rng["tracer"], priors.signal, tracer, timing.times, kind.tesla, placed.heart.dark_rim
    )
    grids = make_grids(acq, motion, placed, kind.edge)
    painted = paint(rng["paint"], priors.paint, grids, placed, kind.edge)
    image = render(painted, grids, acq, signals.curves)
    masks, tracked = region_masks(painted.weights, grids, acq)
    coil = draw_coil(rng["paint"], priors.acquisition, acq, placed.body)  # continues the paint stream
    lv_peak = int(np.argmax(signals.curves["lv_blood"]))
    acquired = acquire(rng["noise"], image, acq, coil, masks["lv_blood"], lv_peak)
    params = {
        "seed": seed,
        "frames": frames,
        "stress": kind.stress,
        "field_strength_T": kind.tesla,
        **timing.params(),
        **motion.params(),
        **placed.body.params(),
        **placed.heart.params(),
        **acq.params(),
        **tracer.params,
        **signals.params,
        **acquired.params(acq),
        "heart_shift_mm": np.round(motion.heart_shift, 2).tolist(),
    }
    if priors != PhantomPriors():
        params["priors"] = asdict(priors)
    return PhantomStudy(
        acquired.frames,
        acquired.truth,
        masks,
        region_curves(acquired.truth, masks, tracked),
        timing.times.astype(np.float64),
        (acq.pixel, acq.pixel),
        acq.heart_center,
        _jsonable(params),
    )


def _check_options(frames, defect, matrix, priors) -> None:
    if int(frames) < 1:
        raise PerfGenError(f"a phantom needs at least 1 frame, got {frames}")
    if defect not in DEFECT_CHOICES:
        raise PerfGenError(f"defect must be one of {DEFECT_CHOICES}, got {defect!r}")
    if matrix is not None and not (
        len(matrix) == 2 and min(matrix) >= HEART_CROP and max(matrix) <= MAX_MATRIX
    ):
        raise PerfGenError(
            f"matrix must be (rows, cols) between {HEART_CROP} and {MAX_MATRIX}, got {matrix!r}"
        )
    if not isinstance(priors, PhantomPriors):
        raise PerfGenError(
            f"priors must be a PhantomPriors (PhantomPriors.from_dict builds one from JSON), got {priors!r}"
        )


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per aspect (:data:`STREAMS`), spawned from the seed."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return dict(zip(STREAMS, map(np.random.default_rng, children), strict=True))


def _jsonable(value):
    """Plain Python types (floats rounded) for JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    return value
