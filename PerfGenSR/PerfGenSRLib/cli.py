"""``perfgen-sr``: the command line. Argument parsing only; the work lives in the engine modules.

Every option's range is checked by the parser and every output path by :mod:`.outputs`, both
before any work; errors print one line. SIGINT, SIGTERM and SIGHUP stop a command cleanly
(:mod:`.signals`), with exit status 128 + the signal's number.

Longer than 500 lines because every subcommand's parser sits in one tree (``build_parser``), so the
shared options (training, sampling, outputs) are written once and read alike in ``--help``.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
from pathlib import Path

from .defaults import (
    DEFAULT_DDIM_STEPS,
    DEFAULT_SAMPLER,
    DEFAULT_SAMPLES,
    PREDICTIONS,
    ROI_LEGEND,
    SAMPLERS,
    STUDY_FORMATS,
    samples_for,
)
from .errors import PerfGenError, UntrustedModel

SEED_MAX = 2**32 - 1  # every generator seeded from a seed accepts 0 ... 2**32 - 1
NOTHING_WRITTEN = "nothing was written"
PRIORS_HELP = (
    "JSON object changing the phantom's priors table (PhantomPriors: sections and fields as in "
    'phantom/priors.py, lists for ranges), e.g. {"acquisition": {"snr": [5, 60]}}'
)


def _progress_printer(args, unit: str):
    """A progress callback: PROGRESS lines for background runners, else a tqdm bar."""
    if getattr(args, "progress_lines", False):

        def report(done, total, *_):
            print(f"PROGRESS {done} {total}", flush=True)

        return report, lambda: None
    from tqdm import tqdm

    bars = []  # created on the first report, so a run refused up front prints only its error

    def update(done, total, *_):
        if not bars:
            bars.append(tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    return update, lambda: bars and bars[0].close()


def _plan(args, studies=None, folders=None, inputs=()):
    """The checked outputs of a command (see :func:`outputs.plan_outputs`), before any work."""
    from .outputs import plan_outputs

    return plan_outputs(studies, folders, [p for p in inputs if p], overwrite=args.overwrite)


def _studies(roots: list[str]) -> list[Path]:
    """The studies that ``--data`` roots name (a folder of studies is not itself an input)."""
    from .data import study_paths

    return [path for root in roots for path in study_paths(Path(root))]


def _read_priors(path: str | None) -> dict:
    """Changes to the phantom's priors table from a JSON file (nested like ``PhantomPriors``), or none."""
    if path is None:
        return {}
    import json

    try:
        changes = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PerfGenError(f"--priors {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PerfGenError(f"--priors {path} is not readable JSON ({error})") from None
    if not isinstance(changes, dict):
        raise PerfGenError(
            f"--priors {path} must hold a JSON object of priors sections, got {type(changes).__name__}"
        )
    return changes


def cmd_phantom(args) -> None:
    from .phantom import PhantomPriors, write_phantom_dataset

    if args.seed + args.cases - 1 > SEED_MAX:
        raise PerfGenError(f"--seed + --cases - 1 must be at most {SEED_MAX} (study i uses seed + i)")
    plan = _plan(args, folders={"--out": args.out})
    with plan.staged() as staged:
        folders = write_phantom_dataset(
            staged["--out"],
            args.cases,
            args.frames,
            args.seed,
            workers=args.workers,
            priors=PhantomPriors.from_dict(_read_priors(args.priors)),
        )
    print(f"wrote {len(folders)} phantom studies to {args.out}")


def cmd_degrade(args) -> None:
    from . import kspace
    from .acquisition import measured_lines
    from .io import read_study, write_study

    plan = _plan(args, studies={"--output": args.output}, inputs=[args.input])
    study = read_study(args.input, min_frames=1)
    axis = -2 if (args.phase_axis or measured_lines(study).phase_axis or "rows") == "rows" else -1
    lines = kspace.kept_lines(study.shape[axis], args.fraction)
    degraded = study.with_frames(kspace.degrade(study.frames, args.fraction, axis=axis))
    with plan.staged() as staged:
        write_study(degraded, staged["--output"], method=f"degraded to {lines} of {study.shape[axis]} lines")
    print(f"kept {lines} of {study.shape[axis]} phase-encoding lines -> {args.output}")


def cmd_curves(args) -> None:
    from .curves import roi_curves, save_curves_figure, write_curves_csv
    from .io import read_label_map, read_study
    from .phantom import masks_from_labels

    plan = _plan(args, folders={"--out": args.out}, inputs=[args.input, args.rois])
    study = read_study(args.input)
    labels = read_label_map(args.rois, study.shape[1:])
    curves = {"study": roi_curves(study.frames, masks_from_labels(labels))}
    if not curves["study"]:
        raise PerfGenError(f"{args.rois} holds no ROI labels ({ROI_LEGEND})")
    with plan.staged() as staged:
        write_curves_csv(staged["--out"] / "curves.csv", study.times(), curves)
        save_curves_figure(staged["--out"] / "curves.png", study.times(), curves, title=Path(args.input).name)
    out = Path(args.out)
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")


def _sampling_options(args) -> dict:
    """The ``super-resolve`` flags every study is super-resolved with, as engine keywords."""
    return {
        "model": args.model,
        "sampler": args.sampler,
        "steps": args.steps,
        "samples": args.samples,
        "seed": args.seed,
        "batch": args.batch,
        "lr_fraction": args.fraction,
        "trust_checkpoint": args.trust_checkpoint,
        "data_consistency": not args.no_data_consistency,
    }


def cmd_super_resolve(args) -> None:
    from .io import read_study, write_study
    from .sample import super_resolve_study
    from .study import describe_study

    if args.uncertainty and args.method != "perfgen":
        raise PerfGenError(
            f"--uncertainty needs --method perfgen: {args.method} is deterministic, its SD over samples is zero"
        )
    if args.uncertainty and (
        args.sampler == "mean" or samples_for(args.method, args.samples, args.sampler) < 2
    ):
        raise PerfGenError(
            "--uncertainty needs a stochastic --sampler and 2 or more --samples (it is the per-pixel SD over "
            "samples; e.g. --sampler ddim --samples 8)"
        )
    if args.out is not None or args.format:  # a cohort: a folder or list of studies into a folder
        return _super_resolve_cohort(args)
    plan = _plan(
        args,
        studies={"--output": args.output, "--uncertainty": args.uncertainty},
        inputs=[args.input, args.model],
    )
    study = read_study(args.input, min_frames=1)
    print(f"{args.input}: {describe_study(study)}", file=sys.stderr)
    from .acquisition import along_rows, phase_and_lines

    phase_axis, lines, note = phase_and_lines(
        study, args.phase_axis, args.measured_lines, getattr(args, "fraction", None)
    )
    if note:
        if lines and args.no_data_consistency:
            note += "; not kept (`no_data_consistency`)"
        print(as_flags(note, build_parser()), file=sys.stderr)
    update, close = _progress_printer(args, "frame")
    try:
        result = super_resolve_study(
            along_rows(study, phase_axis),
            args.method,
            device=args.device,
            measured_lines=lines,
            progress=update,
            **_sampling_options(args),
        )
    except UntrustedModel as error:
        raise UntrustedModel(f"{error} (or --trust-checkpoint if you trust its source)") from None
    finally:
        close()
    model = str(args.model or "bundled")
    with plan.staged() as staged:
        write_study(
            along_rows(result.study, phase_axis),
            staged["--output"],
            method=args.method,
            model=model,
        )
        if args.uncertainty:
            write_study(
                along_rows(result.uncertainty, phase_axis),
                staged["--uncertainty"],
                method=f"{args.method} uncertainty (SD)",
                model=model,
            )
    print(f"wrote {args.output}" + (f" and {args.uncertainty}" if args.uncertainty else ""))


def _super_resolve_cohort(args) -> None:
    """``super-resolve --out FOLDER``: every study of a folder or list, resumable; shards under torchrun."""
    from .cohort import WAIT, plan_cohort, super_resolve_cohort
    from .distributed import Distributed
    from .models import resolve_device

    if args.out is None:
        raise PerfGenError(
            "--format is the format of a cohort's outputs (--out); with --output its extension picks it"
        )
    runtime = Distributed(resolve_device(args.device), timeout=WAIT)
    try:
        cohort = plan_cohort(
            args.input,
            args.out,
            format=args.format,
            uncertainty=args.uncertainty,
            overwrite=args.overwrite,
            inputs=[args.model],
        )
        update, close = _progress_printer(args, "study") if runtime.main else (None, lambda: None)
        args.interrupted = f"finished studies are kept in {args.out}; run the same command again to resume"
        try:
            result = super_resolve_cohort(
                cohort,
                runtime,
                method=args.method,
                phase_axis=args.phase_axis,
                measured_lines=args.measured_lines,
                progress=update,
                **_sampling_options(args),
            )
        except UntrustedModel as error:
            raise UntrustedModel(f"{error} (or --trust-checkpoint if you trust its source)") from None
        finally:
            close()
    finally:
        runtime.close()
    if not runtime.main:
        if result.failed:
            raise SystemExit(2)  # rank 0 reports
        return
    for name, message in result.failed:
        print(f"{name}: {as_flags(message, build_parser())}", file=sys.stderr)
    print(result.summary(Path(args.out)))
    if result.failed:
        raise PerfGenError(
            f"{len(result.failed)} of {result.studies} studies failed (above); fix them and run the same "
            "command again: the finished ones are kept"
        )


def _run_training(args, objective: str, **settings) -> None:
    """Build the TrainConfig from the shared training arguments and train ``objective``.

    A run folder this command created is removed again if the run stops before its first
    checkpoint; one holding a checkpoint is kept, to be continued with ``--resume``."""
    from .defaults import TrainConfig
    from .outputs import plan_outputs
    from .train import CHECKPOINT, run_training

    out = Path(args.out)
    inputs = [*_studies(args.data or []), settings.get("init")]
    plan_outputs(folders={"--out": out}, inputs=[p for p in inputs if p], overwrite=True)
    config = TrainConfig(
        preset=args.preset,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        ema_decay=args.ema_decay,
        grad_clip=args.grad_clip,
        seed=args.seed,
        workers=args.workers,
        log_every=args.log_every,
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        bf16=args.precision == "bf16",
        time_limit=args.time_limit,
        crop=args.crop,
        vary_acquisition=not args.fixed_acquisition,
        **settings,
    )
    created = not out.exists()
    update, close = _progress_printer(args, "step")
    try:
        path = run_training(
            config,
            out,
            data=args.data,
            phantom_cases=args.phantom_cases,
            phantom_frames=args.phantom_frames,
            phantom_seed=args.phantom_seed,
            priors=_read_priors(args.priors),
            val_studies=args.val_studies,
            device=args.device,
            resume=args.resume,
            progress=update,
            objective=objective,
        )
    except BaseException:
        if (out / CHECKPOINT).exists():
            args.interrupted = f"the run in {out} is checkpointed; continue it with --resume"
        elif created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        close()
    print(f"model written to {path}")


def cmd_train(args) -> None:
    _run_training(
        args,
        "perfgen",
        val_steps=args.val_steps,
        residual_scale=args.residual_scale,
        init=args.init,
        prediction=args.prediction,
        min_snr_gamma=args.min_snr_gamma,
        mean_fraction=args.mean_fraction,
        val_sampler=args.val_sampler,
    )


def cmd_train_gan(args) -> None:
    losses = {
        "pixel": args.pixel_weight,
        "fft": args.fft_weight,
        "adversarial": args.adversarial_weight,
        "perceptual": args.perceptual_weight,
        "vgg_weights": args.vgg_weights,
        "pretrain_steps": args.pretrain_steps,
    }
    _run_training(args, "gan", extra={k: v for k, v in losses.items() if v is not None}, init=args.init)


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate

    models = {}
    for item in filter(None, args.models.split(",")):
        method, sep, path = item.partition("=")
        if not sep or not path.strip() or not method.strip():
            raise PerfGenError(f"--models expects METHOD=PATH pairs separated by commas, got '{item}'")
        models[method.strip()] = path.strip()
    plan = _plan(args, folders={"--out": args.out}, inputs=[*_studies(args.data), *models.values()])
    from .cohort import WAIT, staged_on_rank0
    from .distributed import Distributed
    from .models import resolve_device

    runtime = Distributed(resolve_device(args.device), timeout=WAIT)  # torchrun: studies shared by rank
    update, close = _progress_printer(args, "study") if runtime.main else (None, lambda: None)
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        with staged_on_rank0(plan, runtime, "--out") as out:
            result = evaluate(
                args.data,
                out,
                runtime=runtime,
                fraction=args.fraction,
                methods=methods,
                models=models,
                sampler=args.sampler,
                steps=args.steps,
                samples=args.samples,
                max_frames=args.max_frames,
                studies=args.studies,
                device=str(runtime.device),
                batch=args.batch,
                seed=args.seed,
                dicom=args.dicom,
                progress=update,
            )
    finally:
        close()
        runtime.close()
    if not runtime.main:
        return
    print(result.summary())
    print(f"wrote {Path(args.out) / result.report.name} and its figures")


def cmd_demo(args) -> None:
    from .demo import run_demo

    plan = _plan(args, folders={"--out": args.out})
    with plan.staged() as staged:
        run_demo(
            staged["--out"],
            seed=args.seed,
            frames=args.frames,
            sampler=args.sampler,
            steps=args.steps,
            device=args.device,
            samples=args.samples,
        )
    print(f"wrote panel.png, curves.png, curves.csv and metrics.csv to {args.out}")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, low: float | None = None, high: float | None = None, *, above: bool = False):
    """An argparse type: a ``kind`` (int or finite float) at least ``low`` (above it with ``above``), at most ``high``."""
    what = "a whole number" if kind is int else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if above else '>='} {low:g}" if kind is float else f">= {low}")
    if high is not None:
        bounds.append(f"<= {high:g}" if kind is float else f"<= {high}")
    wanted = f"{what} {' and '.join(bounds)}".strip()

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (low is not None and (value <= low if above else value < low))
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = wanted  # argparse names the type in its own messages
    return parse


COUNT = _number(int, 1)
FRAMES = _number(int, 2)
SEED = _number(int, 0, SEED_MAX)
FRACTION = _number(float, 0, 1, above=True)
POSITIVE = _number(float, 0, above=True)
NON_NEGATIVE = _number(float, 0)


def _add_training_arguments(p, *, preset: str, steps: int, batch: int, lr: float, what: str) -> None:
    """Arguments shared by ``train`` and ``train-gan``: data, run folder, loop settings, with their defaults."""
    p.add_argument(
        "--crop", type=_number(int, 8, 2048), default=64, help="training crop side in pixels (default 64)"
    )
    p.add_argument(
        "--fixed-acquisition",
        action="store_true",
        help="train on the frames as they are (default: vary matrix, orientation, filter, SNR per frame)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", nargs="+", help="phantom folders, study files or DICOM folders (split by study)"
    )
    source.add_argument(
        "--phantom-cases", type=_number(int, 2), help="generate this many phantom studies in memory instead"
    )
    p.add_argument("--phantom-frames", type=FRAMES, default=40)
    p.add_argument("--phantom-seed", type=SEED, default=0, help="seed of the first generated study")
    p.add_argument("--priors", metavar="FILE.json", help=PRIORS_HELP)
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, model.safetensors/json, log.csv")
    p.add_argument(
        "--preset", choices=["paper", "small", "tiny"], default=preset, help=f"{what} (default: {preset})"
    )
    p.add_argument("--steps", type=COUNT, default=steps, help=f"default: {steps}")
    p.add_argument("--batch", type=COUNT, default=batch, help=f"batch per process (default: {batch})")
    p.add_argument("--lr", type=POSITIVE, default=lr, help=f"learning rate (default: {lr:g})")
    p.add_argument("--ema-decay", type=_number(float, 0, 1), default=0.999)
    p.add_argument("--grad-clip", type=POSITIVE, default=1.0)
    p.add_argument(
        "--val-studies", type=_number(int, 0), default=2, help="studies held back for validation PSNR"
    )
    p.add_argument("--val-every", type=COUNT, default=1000)
    p.add_argument("--checkpoint-every", type=COUNT, default=1000)
    p.add_argument("--log-every", type=COUNT, default=50)
    p.add_argument("--workers", type=_number(int, 0), default=2, help="data-loading processes (0: none)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="autocast precision on CUDA")
    p.add_argument(
        "--time-limit",
        type=POSITIVE,
        help="minutes; checkpoint and stop after this long (continue with --resume)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument(
        "--progress-lines", action="store_true", help="print 'PROGRESS step total' lines instead of a bar"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``perfgen-sr`` argument parser with one sub-parser per command."""
    parser = Parser(
        prog="perfgen-sr",
        description=__doc__.split(":")[0] + ": diffusion super-resolution of myocardial perfusion MRI.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, function, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(function=function)
        return sub

    p = command(
        "demo", cmd_demo, "Phantom study -> 35%% LR -> bundled PerfGen -> pictures, curves and metrics"
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--seed", type=SEED, default=90_001, help="phantom seed (never used in training)")
    p.add_argument("--frames", type=FRAMES, default=32, help="number of frames")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"PerfGen sampler (default {DEFAULT_SAMPLER})",
    )
    p.add_argument("--steps", type=COUNT, help=f"DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument("--samples", type=COUNT, help=f"samples averaged per frame (default {DEFAULT_SAMPLES})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")

    p = command(
        "phantom", cmd_phantom, "Write synthetic first-pass perfusion studies with masks and true curves"
    )
    p.add_argument("--out", required=True, help="output folder (one sub-folder per study)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--cases", type=COUNT, default=1)
    p.add_argument("--frames", type=FRAMES, default=40)
    p.add_argument("--seed", type=SEED, default=0, help="seed of the first study; study i uses seed+i")
    p.add_argument("--workers", type=COUNT, default=1, help="parallel processes")
    p.add_argument("--priors", metavar="FILE.json", help=PRIORS_HELP)

    p = command(
        "degrade", cmd_degrade, "Simulate low resolution: keep the central fraction of phase-encoding lines"
    )
    p.add_argument("--input", required=True, help=".npy (T,H,W)/(T,Z,H,W), NIfTI or DICOM folder")
    p.add_argument("--output", required=True, help="output path; its extension picks the format")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--fraction", type=FRACTION, default=0.35, help="fraction of lines kept, in (0, 1]")
    p.add_argument(
        "--phase-axis",
        choices=["rows", "columns"],
        help="phase-encoding direction (default: the DICOM header's In-plane Phase Encoding Direction, else rows)",
    )

    p = command("curves", cmd_curves, "Signal-time curves (mean, SD) inside ROIs: CSV and PNG")
    p.add_argument("--input", required=True, help="study file or DICOM folder")
    p.add_argument("--rois", required=True, help=f"label image on the study grid: {ROI_LEGEND}")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")

    p = command("super-resolve", cmd_super_resolve, "Super-resolve every frame of a study")
    p.add_argument(
        "--input",
        required=True,
        help="LR study on the HR grid (or HR with --fraction): .npy, NIfTI or DICOM folder",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="output path; .npy, .nii.gz, ... or a folder for a DICOM series")
    where.add_argument(
        "--out",
        help="cohort: --input is a folder of studies or a .txt list; one output per study in this folder, "
        "studies already there skipped (torchrun --nproc_per_node=N shards them)",
    )
    p.add_argument(
        "--format",
        choices=STUDY_FORMATS,
        help="cohort output format (default: each study's own; DICOM and phantom folders: dicom, nii.gz)",
    )
    p.add_argument("--method", choices=["perfgen", "gan", "zeropad"], default="perfgen")
    p.add_argument("--model", help="model .safetensors (default: the bundled model of the method)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"mean: one-pass posterior mean; ddim/ddpm: averaged samples, ddpm the paper's 2000 ancestral "
        f"steps (default {DEFAULT_SAMPLER})",
    )
    p.add_argument("--steps", type=COUNT, help=f"DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument(
        "--samples",
        type=COUNT,
        help=f"average K samples per frame (default {DEFAULT_SAMPLES} for PerfGen, "
        "1 for the deterministic methods)",
    )
    p.add_argument(
        "--uncertainty", help="also write the per-pixel SD over samples here (a folder with --out)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument(
        "--phase-axis",
        choices=["rows", "columns"],
        help="phase-encoding direction (default: the DICOM header's In-plane Phase Encoding Direction, else rows)",
    )
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    p.add_argument("--batch", type=COUNT, default=8, help="frames per batch")
    p.add_argument(
        "--fraction", type=FRACTION, help="retrospective: degrade the input to this fraction first"
    )
    p.add_argument(
        "--measured-lines",
        type=COUNT,
        help="prospective input: phase-encoding lines actually acquired, enabling data consistency "
        "(default: from a DICOM header's Acquisition Matrix)",
    )
    p.add_argument(
        "--no-data-consistency",
        action="store_true",
        help="do not re-impose the measured central k-space lines on the result",
    )
    p.add_argument(
        "--trust-checkpoint", action="store_true", help="allow a legacy .pt model (weights-only loading)"
    )
    p.add_argument(
        "--progress-lines", action="store_true", help="print 'PROGRESS done total' lines instead of a bar"
    )

    p = command(
        "train",
        cmd_train,
        "Train PerfGen on phantom folders or studies (torchrun --nproc_per_node=N for several GPUs)",
    )
    _add_training_arguments(p, preset="paper", steps=50_000, batch=128, lr=3e-5, what="U-Net size")
    p.add_argument("--val-steps", type=COUNT, default=20, help="DDIM steps used for validation")
    p.add_argument(
        "--residual-scale",
        type=NON_NEGATIVE,
        default=5.0,
        help="diffuse (HR - LR) x this scale (default 5); 0 diffuses the HR image as the paper",
    )
    p.add_argument("--init", help="start from this PerfGen model's weights (fine-tuning)")
    p.add_argument(
        "--prediction",
        choices=PREDICTIONS,
        default="v_prediction",
        help="what the network predicts (default v_prediction; epsilon is the paper's)",
    )
    p.add_argument("--min-snr-gamma", type=POSITIVE, help="min-SNR-gamma loss weighting (default: off)")
    p.add_argument(
        "--mean-fraction",
        type=_number(float, 0, 1),
        default=0.5,
        help="share of each batch trained at the top noise level, for the one-pass mean (default 0.5; paper 0)",
    )
    p.add_argument(
        "--val-sampler",
        choices=["mean", "ddim"],
        default="mean",
        help="sampler for validation (default mean)",
    )

    p = command(
        "train-gan", cmd_train_gan, "Train the GAN baseline (REGAIN-style) on the same data as PerfGen"
    )
    _add_training_arguments(p, preset="small", steps=20_000, batch=16, lr=1e-4, what="generator size")
    p.add_argument("--init", help="start from this GAN generator's weights (fine-tuning)")
    p.add_argument(
        "--pretrain-steps",
        type=_number(int, 0),
        help="first steps with the content losses only (default: 20%% of --steps)",
    )
    p.add_argument("--pixel-weight", type=NON_NEGATIVE, help="weight of the pixel MSE (default 1.0)")
    p.add_argument(
        "--fft-weight", type=NON_NEGATIVE, help="weight of the L1 between FFT magnitudes (default 0.1)"
    )
    p.add_argument(
        "--adversarial-weight",
        type=NON_NEGATIVE,
        help="weight of the relativistic adversarial loss (default 1e-3)",
    )
    p.add_argument(
        "--vgg-weights", help="safetensors of torchvision-layout VGG19 features: enables the perceptual loss"
    )
    p.add_argument(
        "--perceptual-weight",
        type=NON_NEGATIVE,
        help="weight of the VGG19 perceptual loss (default 0.01 with --vgg-weights)",
    )

    p = command(
        "evaluate",
        cmd_evaluate,
        "Compare zero-padding, GAN and PerfGen on test studies: metrics, tests, report, figures",
    )
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="HR test studies: phantom folders, study files, DICOM folders or folders of them",
    )
    p.add_argument("--out", required=True, help="output folder: report.md, metrics.csv, figures")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument(
        "--fraction", type=FRACTION, default=0.35, help="fraction of phase-encoding lines kept for the LR"
    )
    p.add_argument("--methods", default="zeropad,gan,perfgen", help="comma-separated methods")
    p.add_argument("--models", default="", help="METHOD=PATH,... (default: the bundled models)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"PerfGen sampler (default {DEFAULT_SAMPLER})",
    )
    p.add_argument("--steps", type=COUNT, help=f"PerfGen DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument(
        "--samples", type=COUNT, help=f"PerfGen samples averaged per frame (default {DEFAULT_SAMPLES})"
    )
    p.add_argument("--max-frames", type=FRAMES, help="use only the first N frames of each study")
    p.add_argument("--studies", type=COUNT, help="use only the first N studies")
    p.add_argument("--batch", type=COUNT, default=8, help="frames per batch")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    p.add_argument(
        "--dicom", action="store_true", help="also write each method's result as a derived DICOM series"
    )
    p.add_argument(
        "--progress-lines", action="store_true", help="print 'PROGRESS done total' lines instead of a bar"
    )
    return parser


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's destination (the engine's parameter name) and its long flag, over all subcommands."""
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                flags.update(flags_of(subparser))
        elif action.option_strings:
            flags[action.dest] = max(action.option_strings, key=len)
    return flags


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """An engine message with its `` `parameter` `` names written as this command line's flags."""
    flags = flags_of(parser)
    return re.sub(r"`(\w+)`", lambda name: flags.get(name[1], name[1]), message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one command; user errors print one line and exit non-zero, signals stop it cleanly."""
    from .signals import interruptible

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a refused option (one line printed)
        return int(stop.code or 0)
    with interruptible():
        try:
            args.function(args)
        except PerfGenError as error:
            if args.debug:
                raise
            print(f"perfgen-sr {args.command}: error: {as_flags(str(error), parser)}", file=sys.stderr)
            return 2
        except OSError as error:  # a disk full, a permission denied: the user's to fix, in one line
            if args.debug:
                raise
            where = f"{error.filename}: " if error.filename else ""
            print(
                f"perfgen-sr {args.command}: error: {where}{error.strerror or error}; check the path, its "
                "permissions and the free disk space",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM/SIGHUP as signals.Interrupted
            name = getattr(stop, "name", "SIGINT")
            note = getattr(args, "interrupted", NOTHING_WRITTEN)
            print(f"perfgen-sr {args.command}: interrupted ({name}); {note}", file=sys.stderr)
            return getattr(stop, "exit_code", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
