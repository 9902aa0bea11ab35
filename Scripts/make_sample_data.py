"""Write the PerfGenSR sample study that Slicer's Sample Data module loads: phantom seed 0, 40
frames, as a Slicer volume sequence file (int16, gzip NRRD, frame times in seconds), and print its
SHA-256 for ``PHANTOM_SHA256`` in ``PerfGenSR/PerfGenSR.py``. Needs the test extra (slicer-core).

    python Scripts/make_sample_data.py
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import slicer
import vtk

from PerfGenSRLib.phantom import make_phantom
from PerfGenSRSlicer import scene

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "PerfGenSR" / "Resources" / "SampleData" / "PerfGenSRPhantom.seq.nrrd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    mrml = slicer.vtkMRMLScene()
    scene.sequencesLogic(mrml)
    study = make_phantom(0, frames=40).to_study()
    sequence = scene.studyToSequence(mrml, study, "PerfGenSRPhantom", scalarType=vtk.VTK_SHORT)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    mrml.AddNode(storage)
    storage.SetFileName(str(args.out))
    storage.SetUseCompression(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not storage.WriteData(sequence):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out}: SHA256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
