"""PerfGen's default sampling settings, chosen with ``Scripts/bench_sampling.py`` (README, "Sampling
benchmark"). Torch-free, so the command line's help and the Slicer panel can name them cheaply."""

# On held-out frames fewer DDIM steps score higher than many (each sample carries noise texture),
# 5 steps are at or above ddpm-2000, and averaging 8 samples buys about 1.3 dB; 16 add only 0.05 dB.
DEFAULT_DDIM_STEPS = 5  # DDIM steps per sample
DEFAULT_SAMPLES = 8  # PerfGen samples averaged per frame; zero-padding and the GAN are deterministic


def samples_for(method: str, samples: int | None = None) -> int:
    """Samples drawn per frame for ``method``: ``samples`` if given, else the method's default."""
    if samples is not None:
        return samples
    return DEFAULT_SAMPLES if method == "perfgen" else 1
