"""PerfGen's default sampling settings, chosen with ``Scripts/bench_sampling.py`` (README, "Sampling
benchmark"). Torch-free, so the command line's help and the Slicer panel can name them cheaply."""

# On held-out frames fewer DDIM steps score higher than many (each sample carries noise texture),
# 5 steps score above ddpm-2000, the mean of 8 samples is 0.6 dB above one (1.4 dB on the held-out
# studies of the model card) and 16 add only 0.07 dB (numbers in perfgen.md).
DEFAULT_DDIM_STEPS = 5  # DDIM steps per sample
DEFAULT_SAMPLES = 8  # PerfGen samples averaged per frame; zero-padding and the GAN are deterministic


def samples_for(method: str, samples: int | None = None) -> int:
    """Samples drawn per frame for ``method``: ``samples`` if given, else the method's default."""
    if samples is not None:
        return samples
    return DEFAULT_SAMPLES if method == "perfgen" else 1
