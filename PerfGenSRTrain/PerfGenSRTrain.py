#!/usr/bin/env python-real
"""PerfGenSR Train: ``perfgen-sr train`` as a Slicer command-line module.

Slicer runs this script with PythonSlicer in a process of its own, so training never blocks the
application, and shows the ``<filter-progress>`` lines it prints as a progress bar. Cancelling
ends the process; the run folder keeps the last checkpoint and ``--resume`` continues from it.
"""

import argparse
import contextlib
import io
import sys
from pathlib import Path

# Where PerfGenSRLib lives relative to this script: installed extension (cli-modules beside
# qt-scripted-modules), then the source tree (PerfGenSRTrain beside PerfGenSR).
ENGINE_LOCATIONS = ("../qt-scripted-modules", "../PerfGenSR")


def make_engine_importable() -> None:
    """Put the folder holding PerfGenSRLib on ``sys.path`` unless the engine is installed."""
    here = Path(__file__).resolve().parent
    for relative in ENGINE_LOCATIONS:
        folder = (here / relative).resolve()
        if (folder / "PerfGenSRLib").is_dir():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return


def filter_progress(line: str) -> str | None:
    """The Slicer progress line for a ``PROGRESS <done> <total>`` line, else None."""
    from PerfGenSRSlicer.process import parse_progress

    parsed = parse_progress(line)
    if parsed is None or parsed[1] <= 0:
        return None
    done, total = parsed
    return f"<filter-progress>{min(1.0, done / total):.4f}</filter-progress>"


class ProgressTranslator(io.TextIOBase):
    """A text stream turning PROGRESS lines into ``<filter-progress>`` lines, passing the rest on."""

    def __init__(self, target):
        self.target = target
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.target.write((filter_progress(line) or line) + "\n")
        self.target.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.target.write(self._pending)
            self._pending = ""
        self.target.flush()


def build_parser() -> argparse.ArgumentParser:
    """The parameters of PerfGenSRTrain.xml, as Slicer passes them."""
    parser = argparse.ArgumentParser(description="Train a PerfGen model (Slicer command-line module).")
    parser.add_argument("--dataDir", default="")
    parser.add_argument("--phantomCases", type=int, default=0)
    parser.add_argument("--outputDir", default="")
    parser.add_argument("--preset", choices=["paper", "small", "tiny"], default="small")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--checkpointEvery", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resume", action="store_true")
    return parser


def train_arguments(args: argparse.Namespace) -> list[str]:
    """The ``perfgen-sr train`` command line for the module's parameters."""
    source = (
        ["--phantom-cases", str(args.phantomCases)] if args.phantomCases > 0 else ["--data", args.dataDir]
    )
    command = [
        "train",
        *source,
        "--out",
        args.outputDir,
        "--preset",
        args.preset,
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
        "--checkpoint-every",
        str(args.checkpointEvery),
        "--device",
        args.device or "auto",
        "--progress-lines",
    ]
    return command + ["--resume"] if args.resume else command


def main(argv: list[str] | None = None) -> int:
    """Run the training; the exit status is the engine's (0 on success)."""
    args = build_parser().parse_args(argv)
    if not args.outputDir:
        print("PerfGenSR Train: choose a run folder for the checkpoint and the model", file=sys.stderr)
        return 2
    if args.phantomCases <= 0 and not args.dataDir:
        print(
            "PerfGenSR Train: choose a folder of training studies, or a number of phantom studies",
            file=sys.stderr,
        )
        return 2
    make_engine_importable()
    from PerfGenSRLib import cli

    print(
        "<filter-start><filter-name>PerfGenSR Train</filter-name>"
        "<filter-comment>training PerfGen</filter-comment></filter-start>",
        flush=True,
    )
    translator = ProgressTranslator(sys.stdout)
    with contextlib.redirect_stdout(translator):
        status = cli.main(train_arguments(args))
    translator.flush()
    print("<filter-end><filter-name>PerfGenSR Train</filter-name></filter-end>", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
