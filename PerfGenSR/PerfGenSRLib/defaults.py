"""PerfGen's default sampling settings, chosen with ``Scripts/bench_sampling.py`` (numbers in the model
card, ``Resources/Models/perfgen.md``). Torch-free, so the command line's help and the Slicer panel
can name them cheaply."""

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
