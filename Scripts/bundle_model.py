"""Copy a run's exported model into the bundled-model folder, weights stored as float16 (half the
size; loading casts them back to float32): ``python Scripts/bundle_model.py RUN_DIR perfgen``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from PerfGenSRLib.io import atomic_path, write_json
from PerfGenSRLib.models import MODELS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder holding model.safetensors and model.json")
    parser.add_argument("name", help="bundled model name: perfgen or gan")
    parser.add_argument(
        "--dest", type=Path, default=MODELS_DIR, help=f"destination folder (default {MODELS_DIR})"
    )
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    weights = {k: v.half().contiguous() for k, v in load_file(str(args.run / "model.safetensors")).items()}
    with atomic_path(args.dest / f"{args.name}.safetensors") as tmp:
        save_file(weights, str(tmp))
    meta = json.loads((args.run / "model.json").read_text())
    write_json({**meta, "weights_dtype": "float16"}, args.dest / f"{args.name}.json")
    if (args.run / "log.csv").exists():
        with atomic_path(args.dest / f"{args.name}-training-log.csv") as tmp:
            shutil.copy(args.run / "log.csv", tmp)
    print(f"bundled {args.run} as {args.dest / args.name}.safetensors")


if __name__ == "__main__":
    main()
