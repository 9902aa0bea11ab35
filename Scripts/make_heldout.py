"""Write the held-out phantom sets that the model cards report, never used for training or tuning.

    python Scripts/make_heldout.py OUT_DIR

``OUT_DIR/in-range``: 6 studies with seeds 95000-95005 from the training priors (``PhantomPriors()``).
``OUT_DIR/out-of-range``: 6 studies with seeds 96000-96005, two for each shift outside every
training range (the phantom's priors and ``augment.AcquisitionRanges`` together):

- ``matrix``: the study reconstructed on a grid twice as fine (frames and truth resampled alike, a
  linear map, so the truth stays the expectation of the frames): pixels of 0.8-1.4 mm and matrices up
  to 384 (training: 1.6-2.8 mm, zoomed 0.75-1.35x, at most 224 columns before the zoom);
- ``low-snr``: SNR 3-4 (training: 15-60, lowered to 5 at most by the added noise);
- ``interpolated``: the reconstruction keeps only 40-48 % of the phase-encoding k-space (training:
  65-100 %, and 50-90 % of both axes for the zero-filled reconstructions).

In this set the truth holds little beyond what the LR measures (``Scripts/oracle_ceiling.py``: a
data-consistent oracle gains only +1.1 dB over zero-padding on average), so
``OUT_DIR/out-of-range-2`` (seeds 97000-97005, fixed before any model was scored on it) steps
outside the training ranges where the truth keeps its detail:

- ``large-matrix``: acquired natively on 320-384 columns with fields of view of 380-440 mm (pixels
  asked for 1.0-1.25 mm; the heart crop holds them at about 1.25 mm) (training: at most 224
  columns, about 300 after the zoom);
- ``high-snr``: SNR 100-160 (training: 15-60);
- ``hypertrophy``: myocardial walls of 14-20 mm at the mid and basal levels and 11-15 mm apically,
  epicardial fat of 4-7 mm (training: walls of at most 12.5 mm, fat of at most 3 mm).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from scipy import ndimage

from PerfGenSRLib.augment import zoom_frame
from PerfGenSRLib.phantom import PhantomPriors, PhantomStudy, make_phantom, write_phantom_study

FRAMES = 40
ZOOM = 2
SETS = {  # folder: first seed and, per shift, the priors it replaces (PhantomPriors.from_dict's form)
    "out-of-range": (
        96_000,
        {
            "matrix": {},  # plus finer_grid
            "low-snr": {"acquisition": {"snr": (3.0, 4.0)}},
            "interpolated": {
                "acquisition": {"full_phase_resolution_chance": 0.0, "phase_resolution": (0.40, 0.48)}
            },
        },
    ),
    "out-of-range-2": (
        97_000,
        {
            "large-matrix": {
                "acquisition": {
                    "pixel_mm": (1.0, 1.25),
                    "fov_mm": (380.0, 440.0),
                    "cols": tuple(range(320, 385, 8)),
                    "rows": (96, 384),
                }
            },
            "high-snr": {"acquisition": {"snr": (100.0, 160.0)}},
            "hypertrophy": {
                "heart": {
                    "apical": {"wall_mm": (11.0, 15.0)},
                    "mid": {"wall_mm": (14.0, 20.0)},
                    "basal": {"wall_mm": (14.0, 20.0)},
                    "epicardial_fat_mm": (4.0, 7.0),
                }
            },
        },
    ),
}


def finer_grid(study: PhantomStudy, factor: int = ZOOM) -> PhantomStudy:
    """``study`` on a grid ``factor`` times finer: frames and truth by the same cubic spline, masks nearest."""
    return dataclasses.replace(
        study,
        frames=np.stack([zoom_frame(f, factor) for f in study.frames]),
        truth=np.stack([zoom_frame(f, factor) for f in study.truth]),
        masks={
            k: ndimage.zoom(m.astype(np.uint8), factor, order=0).astype(bool) for k, m in study.masks.items()
        },
        spacing=tuple(v / factor for v in study.spacing),
        heart_center=tuple(int(v * factor) for v in study.heart_center),
        params={**study.params, "heldout_shift": f"grid {factor}x finer"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for i in range(6):
        seed = 95_000 + i
        write_phantom_study(make_phantom(seed, FRAMES), args.out / "in-range" / f"case_{seed}")
    for folder, (first_seed, shifts) in SETS.items():
        for i, name in enumerate(n for n in shifts for _ in range(2)):
            seed = first_seed + i
            study = make_phantom(seed, FRAMES, priors=PhantomPriors.from_dict(shifts[name]))
            study = finer_grid(study) if name == "matrix" else study
            write_phantom_study(study, args.out / folder / f"case_{seed}_{name}")
            print(f"{seed} {name}: matrix {study.frames.shape[1:]}, SNR {study.params['noise']['snr']:.1f}")
    print(f"wrote {args.out}/in-range and {', '.join(f'{args.out}/{f}' for f in SETS)}")


if __name__ == "__main__":
    main()
