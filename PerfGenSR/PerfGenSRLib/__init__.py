"""PerfGenSR engine: k-space degradation, perfusion phantoms, PerfGen diffusion super-resolution,
a GAN baseline, metrics and signal-time curves. No Qt, no Slicer; only ``scene`` touches MRML."""

__version__ = "0.1.0"
