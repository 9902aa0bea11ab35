"""``perfgen-sr``: the command line. Argument parsing only; the work lives in the engine modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .defaults import DEFAULT_DDIM_STEPS, DEFAULT_SAMPLER, DEFAULT_SAMPLES, PREDICTIONS, SAMPLERS, samples_for
from .errors import PerfGenError


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


def _check_output(output: str, source: str) -> None:
    """Refuse, before any work, an output path that cannot be written or would replace the input."""
    from .io import check_output

    if Path(output).resolve() == Path(source).resolve():
        raise PerfGenError(f"--output is the input {source}; choose another path so the input is kept")
    check_output(output)


def cmd_phantom(args) -> None:
    from .phantom import write_phantom_dataset

    if args.cases < 1 or args.frames < 2:
        raise PerfGenError("--cases must be at least 1 and --frames at least 2")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise PerfGenError(f"--out {args.out} is a file, not a folder; give a folder for the phantom studies")
    folders = write_phantom_dataset(args.out, args.cases, args.frames, args.seed, workers=args.workers)
    print(f"wrote {len(folders)} phantom studies to {args.out}")


def cmd_degrade(args) -> None:
    from . import kspace
    from .io import read_study, write_study

    kspace.check_fraction(args.fraction)
    _check_output(args.output, args.input)
    study = read_study(args.input)
    axis = -2 if args.phase_axis == "rows" else -1
    write_study(study.with_frames(kspace.degrade(study.frames, args.fraction, axis=axis)), args.output)
    print(
        f"kept {kspace.kept_lines(study.shape[axis], args.fraction)} of {study.shape[axis]} phase-encoding lines -> {args.output}"
    )


def cmd_curves(args) -> None:
    from .curves import roi_curves, save_curves_figure, write_curves_csv
    from .io import read_study
    from .phantom import masks_from_labels

    study = read_study(args.input)
    labels = read_study(args.rois, min_frames=1).frames[0]
    if labels.shape != study.shape[1:]:
        raise PerfGenError(
            f"ROI labels have shape {labels.shape[-2:]}, the study {study.shape[-2:]}; give masks on the study's grid"
        )
    curves = {"study": roi_curves(study.frames, masks_from_labels(labels.astype(int)))}
    if not curves["study"]:
        raise PerfGenError(
            f"{args.rois} holds no ROI labels (1 LV blood, 2 RV blood, 3 myocardium, 4 defect)"
        )
    out = Path(args.out)
    write_curves_csv(out / "curves.csv", study.times(), curves)
    save_curves_figure(out / "curves.png", study.times(), curves, title=Path(args.input).name)
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")


def cmd_super_resolve(args) -> None:
    from .dicom import describe_study
    from .io import read_study, write_study
    from .sample import super_resolve_study

    if args.uncertainty and (
        args.sampler == "mean" or samples_for(args.method, args.samples, args.sampler) < 2
    ):
        raise PerfGenError(
            "--uncertainty needs PerfGen with a stochastic sampler and 2 or more samples "
            "(e.g. --sampler ddim --samples 8)"
        )
    for output in filter(None, (args.output, args.uncertainty)):
        _check_output(output, args.input)
    study = read_study(args.input)
    print(f"{args.input}: {describe_study(study)}", file=sys.stderr)
    update, close = _progress_printer(args, "frame")
    try:
        result = super_resolve_study(
            study,
            args.method,
            model=args.model,
            sampler=args.sampler,
            steps=args.steps,
            samples=args.samples,
            seed=args.seed,
            device=args.device,
            batch=args.batch,
            lr_fraction=args.fraction,
            trust_checkpoint=args.trust_checkpoint,
            measured_lines=args.measured_lines,
            data_consistency=not args.no_data_consistency,
            progress=update,
        )
    finally:
        close()
    write_study(result.study, args.output, method=args.method, model=str(args.model or "bundled"))
    if args.uncertainty:
        write_study(
            result.uncertainty,
            args.uncertainty,
            method=f"{args.method} uncertainty (SD)",
            model=str(args.model or "bundled"),
        )
    print(f"wrote {args.output}")


def _run_training(args, objective: str, **settings) -> None:
    """Build the TrainConfig from the shared training arguments and train ``objective``."""
    from .train import TrainConfig, run_training

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
    update, close = _progress_printer(args, "step")
    try:
        path = run_training(
            config,
            args.out,
            data=args.data,
            phantom_cases=args.phantom_cases,
            phantom_frames=args.phantom_frames,
            phantom_seed=args.phantom_seed,
            val_studies=args.val_studies,
            device=args.device,
            resume=args.resume,
            progress=update,
            objective=objective,
        )
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
    from .evaluate import evaluate, format_summary

    models = {}
    for item in filter(None, args.models.split(",")):
        method, sep, path = item.partition("=")
        if not sep or not path:
            raise PerfGenError(f"--models expects METHOD=PATH pairs separated by commas, got '{item}'")
        models[method.strip()] = path.strip()
    update, close = _progress_printer(args, "study")
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        result = evaluate(
            args.data,
            args.out,
            fraction=args.fraction,
            methods=methods,
            models=models,
            sampler=args.sampler,
            steps=args.steps,
            samples=args.samples,
            max_frames=args.max_frames,
            studies=args.studies,
            device=args.device,
            batch=args.batch,
            seed=args.seed,
            dicom=args.dicom,
            progress=update,
        )
    finally:
        close()
    print(format_summary(result))
    print(f"wrote {result.report} and its figures")


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(
        args.out,
        seed=args.seed,
        frames=args.frames,
        steps=args.steps,
        device=args.device,
        samples=args.samples,
    )


def _add_training_arguments(p, *, preset: str, steps: int, batch: int, lr: float, what: str) -> None:
    """Arguments shared by ``train`` and ``train-gan``: data, run folder, loop settings, with their defaults."""
    p.add_argument("--crop", type=int, default=64, help="training crop side in pixels (default 64)")
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
        "--phantom-cases", type=int, help="generate this many phantom studies in memory instead"
    )
    p.add_argument("--phantom-frames", type=int, default=40)
    p.add_argument("--phantom-seed", type=int, default=0, help="seed of the first generated study")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, model.safetensors/json, log.csv")
    p.add_argument(
        "--preset", choices=["paper", "small", "tiny"], default=preset, help=f"{what} (default: {preset})"
    )
    p.add_argument("--steps", type=int, default=steps, help=f"default: {steps}")
    p.add_argument("--batch", type=int, default=batch, help=f"batch per process (default: {batch})")
    p.add_argument("--lr", type=float, default=lr, help=f"learning rate (default: {lr:g})")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--val-studies", type=int, default=2, help="studies held back for validation PSNR")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--workers", type=int, default=2, help="data-loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="autocast precision on CUDA")
    p.add_argument(
        "--time-limit",
        type=float,
        help="minutes; checkpoint and stop after this long (continue with --resume)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument(
        "--progress-lines", action="store_true", help="print 'PROGRESS step total' lines instead of a bar"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``perfgen-sr`` argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
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
    p.add_argument("--seed", type=int, default=90_001, help="phantom seed (never used in training)")
    p.add_argument("--frames", type=int, default=32, help="number of frames")
    p.add_argument("--steps", type=int, help=f"DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument("--samples", type=int, help=f"samples averaged per frame (default {DEFAULT_SAMPLES})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")

    p = command(
        "phantom", cmd_phantom, "Write synthetic first-pass perfusion studies with masks and true curves"
    )
    p.add_argument("--out", required=True, help="output folder (one sub-folder per study)")
    p.add_argument("--cases", type=int, default=1)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--seed", type=int, default=0, help="seed of the first study; study i uses seed+i")
    p.add_argument("--workers", type=int, default=1, help="parallel processes")

    p = command(
        "degrade", cmd_degrade, "Simulate low resolution: keep the central fraction of phase-encoding lines"
    )
    p.add_argument("--input", required=True, help=".npy (T,H,W)/(T,Z,H,W), NIfTI or DICOM folder")
    p.add_argument("--output", required=True, help="output path; its extension picks the format")
    p.add_argument("--fraction", type=float, default=0.35, help="fraction of lines kept, in (0, 1]")
    p.add_argument(
        "--phase-axis", choices=["rows", "columns"], default="rows", help="phase-encoding direction"
    )

    p = command("curves", cmd_curves, "Signal-time curves (mean, SD) inside ROIs: CSV and PNG")
    p.add_argument("--input", required=True, help="study file or DICOM folder")
    p.add_argument(
        "--rois", required=True, help="label image on the study grid: 1 LV, 2 RV, 3 myocardium, 4 defect"
    )
    p.add_argument("--out", required=True, help="output folder")

    p = command("super-resolve", cmd_super_resolve, "Super-resolve every frame of a study")
    p.add_argument(
        "--input",
        required=True,
        help="LR study on the HR grid (or HR with --fraction): .npy, NIfTI or DICOM folder",
    )
    p.add_argument(
        "--output", required=True, help="output path; .npy, .nii.gz, ... or a folder for a DICOM series"
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
    p.add_argument("--steps", type=int, help=f"DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument(
        "--samples",
        type=int,
        help=f"average K samples per frame (default {DEFAULT_SAMPLES} for PerfGen, "
        "1 for the deterministic methods)",
    )
    p.add_argument("--uncertainty", help="also write the per-pixel SD over samples here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    p.add_argument("--batch", type=int, default=8, help="frames per batch")
    p.add_argument("--fraction", type=float, help="retrospective: degrade the input to this fraction first")
    p.add_argument(
        "--measured-lines",
        type=int,
        help="prospective input: phase-encoding lines actually acquired (enables data consistency)",
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
    p.add_argument("--val-steps", type=int, default=20, help="DDIM steps used for validation")
    p.add_argument(
        "--residual-scale",
        type=float,
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
    p.add_argument("--min-snr-gamma", type=float, help="min-SNR-gamma loss weighting (default: off)")
    p.add_argument(
        "--mean-fraction",
        type=float,
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
        type=int,
        help="first steps with the content losses only (default: 20%% of --steps)",
    )
    p.add_argument("--pixel-weight", type=float, help="weight of the pixel MSE (default 1.0)")
    p.add_argument("--fft-weight", type=float, help="weight of the L1 between FFT magnitudes (default 0.1)")
    p.add_argument(
        "--adversarial-weight", type=float, help="weight of the relativistic adversarial loss (default 1e-3)"
    )
    p.add_argument(
        "--vgg-weights", help="safetensors of torchvision-layout VGG19 features: enables the perceptual loss"
    )
    p.add_argument(
        "--perceptual-weight",
        type=float,
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
    p.add_argument(
        "--fraction", type=float, default=0.35, help="fraction of phase-encoding lines kept for the LR"
    )
    p.add_argument("--methods", default="zeropad,gan,perfgen", help="comma-separated methods")
    p.add_argument("--models", default="", help="METHOD=PATH,... (default: the bundled models)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"PerfGen sampler (default {DEFAULT_SAMPLER})",
    )
    p.add_argument("--steps", type=int, help=f"PerfGen DDIM steps (default {DEFAULT_DDIM_STEPS})")
    p.add_argument(
        "--samples", type=int, help=f"PerfGen samples averaged per frame (default {DEFAULT_SAMPLES})"
    )
    p.add_argument("--max-frames", type=int, help="use only the first N frames of each study")
    p.add_argument("--studies", type=int, help="use only the first N studies")
    p.add_argument("--batch", type=int, default=8, help="frames per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    p.add_argument(
        "--dicom", action="store_true", help="also write each method's result as a derived DICOM series"
    )
    p.add_argument(
        "--progress-lines", action="store_true", help="print 'PROGRESS done total' lines instead of a bar"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one command; user errors print one line and exit non-zero."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.function(args)
    except PerfGenError as error:
        if args.debug:
            raise
        print(f"perfgen-sr {args.command}: error: {error}", file=sys.stderr)
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
    except KeyboardInterrupt:
        print(f"perfgen-sr {args.command}: interrupted; no partial output was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
