"""Write the held-out phantom sets that the model cards report, never used for training or tuning.

    python Scripts/make_heldout.py OUT_DIR

``OUT_DIR/in-range``: 6 studies with seeds 95000-95005 from the training priors (``PhantomPriors()``).
``OUT_DIR/out-of-range``: 6 studies with seeds 96000-96005, two for each shift outside every
training range (the phantom's priors and ``augment.AcquisitionRanges`` together):

- ``matrix``: acquired pixels of 1.0-1.15 mm (training: 1.6-2.8 mm, zoomed 0.75-1.35x), so a larger
  matrix for the same anatomy;
- ``low-snr``: SNR 3-4 (training: 15-60, lowered to 5 at most by the added noise);
- ``interpolated``: the reconstruction keeps only 40-48 % of the phase-encoding k-space (training:
  65-100 %, and 50-90 % of both axes for the zero-filled reconstructions).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from PerfGenSRLib.phantom import PhantomPriors, make_phantom, write_phantom_study

FRAMES = 40
BASE = PhantomPriors()
SHIFTS = {
    "matrix": dict(pixel_mm=(1.0, 1.15), fov_mm=(200.0, 300.0)),
    "low-snr": dict(snr=(3.0, 4.0)),
    "interpolated": dict(full_phase_resolution_chance=0.0, phase_resolution=(0.40, 0.48)),
}


def shifted(name: str) -> PhantomPriors:
    """The training priors with the acquisition moved outside its range by shift ``name``."""
    return dataclasses.replace(BASE, acquisition=dataclasses.replace(BASE.acquisition, **SHIFTS[name]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for i in range(6):
        seed = 95_000 + i
        write_phantom_study(make_phantom(seed, FRAMES), args.out / "in-range" / f"case_{seed}")
    for i, name in enumerate(n for n in SHIFTS for _ in range(2)):
        seed = 96_000 + i
        study = make_phantom(seed, FRAMES, priors=shifted(name))
        write_phantom_study(study, args.out / "out-of-range" / f"case_{seed}_{name}")
        print(f"{seed} {name}: matrix {study.frames.shape[1:]}, SNR {study.params['noise']['snr']:.1f}")
    print(f"wrote {args.out}/in-range and {args.out}/out-of-range")


if __name__ == "__main__":
    main()
