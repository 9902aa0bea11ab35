"""PerfGen's default sampling settings, chosen with ``Scripts/bench_sampling.py`` (numbers in the model
card, ``Resources/Models/perfgen.md``). Torch-free, so the command line's help and the Slicer panel
can name them cheaply."""

from dataclasses import dataclass, field

# ``mean``: the model's own estimate of the posterior mean E[HR | LR] in one network evaluation at the
# top noise level (well conditioned for models that predict the image or v); ``ddim`` / ``ddpm``:
# sharp samples of the posterior, averaged over K draws (and their SD is the uncertainty map).
SAMPLERS = ("mean", "ddim", "ddpm")
# What the network predicts, named as ``prediction_type`` in diffusers' schedulers: the noise (the
# paper's eq. 9), the clean image ``y0`` itself, or the velocity ``v = sqrt(g) eps - sqrt(1 - g) y0``.
PREDICTIONS = ("epsilon", "sample", "v_prediction")
DEFAULT_SAMPLER = "mean"
DEFAULT_DDIM_STEPS = 5  # DDIM steps per sample
DEFAULT_MEAN_FLIPS = (
    2  # ``mean`` averages the estimate of the frame and of its mirror image (+0.02 dB, perfgen.md)
)
DEFAULT_SAMPLES = 8  # draws averaged per frame by the stochastic samplers (ddim, ddpm)


def samples_for(method: str, samples: int | None = None, sampler: str = DEFAULT_SAMPLER) -> int:
    """Draws per frame for ``method`` with ``sampler``: ``samples`` if given, else the default."""
    if samples is not None:
        return samples
    return DEFAULT_SAMPLES if method == "perfgen" and sampler != "mean" else 1


@dataclass(frozen=True)
class SuperResolveOptions:
    """How one method super-resolves a study: the settings ``perfgen-sr super-resolve`` takes as flags
    and :func:`sample.super_resolve_study` as keywords, carried as one value by the Slicer side."""

    method: str = "perfgen"
    model: str | None = None  # None: the bundled model of the method
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None  # None: the sampler's default
    samples: int | None = None  # None: samples_for(method, None, sampler)
    seed: int = 0
    device: str = "auto"
    batch: int = 8

    @property
    def draws(self) -> int:
        """Draws per frame these options give (more than one gives an uncertainty map)."""
        return samples_for(self.method, self.samples, self.sampler)

    def arguments(self) -> list[str]:
        """The same settings as ``perfgen-sr super-resolve`` flags."""
        flags = ["--method", self.method, "--sampler", self.sampler, "--samples", str(self.draws)]
        flags += ["--seed", str(self.seed), "--device", self.device, "--batch", str(self.batch)]
        if self.model:
            flags += ["--model", str(self.model)]
        if self.steps:
            flags += ["--steps", str(self.steps)]
        return flags


# The super-resolution methods, in display order, with their names in tables (long: figures and the
# report; short: column headers) and the ones that need a trained model.
METHODS = ("zeropad", "gan", "perfgen")
# Output formats of a cohort (`super-resolve --format`) and their suffixes; "" is a DICOM series folder.
STUDY_FORMATS = {
    "npy": ".npy",
    "nii": ".nii",
    "nii.gz": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "mhd": ".mhd",
    "dicom": "",
}
LEARNED_METHODS = ("gan", "perfgen")
METHOD_NAMES = {"zeropad": "LR (zero-pad)", "gan": "GAN", "perfgen": "PerfGen"}
METHOD_SHORT_NAMES = {"zeropad": "LR", "gan": "GAN", "perfgen": "PerfGen"}


@dataclass(frozen=True)
class Roi:
    """One region of interest: its key in mask dicts, label value in label images, name and colour."""

    key: str
    label: int
    name: str
    colour: tuple[float, float, float]  # RGB in 0..1 (Slicer segments and matplotlib lines alike)


# The label image convention (files, the phantom's masks, Slicer segments): defect is myocardium too.
ROIS = (
    Roi("lv_blood", 1, "LV blood", (0.85, 0.20, 0.18)),  # oxygenated-blood red
    Roi("rv_blood", 2, "RV blood", (0.22, 0.42, 0.85)),  # deoxygenated-blood blue
    Roi("myocardium", 3, "Myocardium", (0.92, 0.72, 0.30)),  # muscle ochre
    Roi("defect", 4, "Defect", (0.55, 0.30, 0.65)),
)
CURVE_ROIS = ("lv_blood", "rv_blood", "myocardium")  # the curves a perfusion reader looks at
ROI_BY_KEY = {roi.key: roi for roi in ROIS}
ROI_LEGEND = ", ".join(f"{roi.label} {roi.name}" for roi in ROIS)  # "1 LV blood, 2 RV blood, ..."


@dataclass
class TrainConfig:
    """Hyper-parameters of a run; the defaults are the paper's (``paper`` preset)."""

    preset: str = "paper"
    steps: int = 50_000
    batch: int = 128
    lr: float = 3e-5
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    workers: int = 2
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    val_pairs: int = 32
    val_steps: int = 20
    bf16: bool = True  # autocast on CUDA (a small network may run faster without)
    time_limit: float | None = None  # minutes: checkpoint and stop after this long (resume later)
    residual_scale: float = 5.0  # PerfGen diffuses (HR - LR) * scale; 0 diffuses the HR itself as the paper
    prediction: str = "epsilon"  # what the network predicts: epsilon (the paper), sample or v_prediction
    min_snr_gamma: float | None = None  # min-SNR-gamma loss weighting (Hang et al. 2023); None: plain L1
    mean_fraction: float = 0.0  # share of each batch at the top noise level (trains the one-pass mean)
    crop: int = 96  # training crop side (the network is fully convolutional; inference sees any size)
    vary_acquisition: bool = False  # vary each HR frame as another scanner would (augment.AcquisitionRanges)
    val_sampler: str = "ddim"  # PerfGen's sampler for validation PSNR: ddim (val_steps steps) or mean
    init: str | None = None  # start from this model's weights (fine-tuning) instead of random ones
    extra: dict = field(default_factory=dict)
