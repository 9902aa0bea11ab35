"""Synthetic short-axis first-pass perfusion studies with ground truth: the training data of the
bundled model, so every choice here aims at looking like a real scanner's series.

One seed draws a whole study. Anatomy (skin, subcutaneous fat with septa, chest-wall and back
muscles, ribs, sternum, spine, aorta, oesophagus, arms, breasts, lungs with vessels, diaphragm,
liver with vessels, stomach with a gas-fluid level, spleen, the LV and RV with trabeculae and
papillary muscles, epicardial fat with coronaries, an optional subendocardial or transmural defect)
is painted as soft-edged occupancy maps, textured by band-limited random fields, on a grid three
times finer than the acquired matrix. A tracer model (gamma-variate bolus, pulmonary transit,
recirculation; tissue impulse responses with flow, blood volume, extraction and interstitial volume)
gives each tissue's gadolinium concentration, and the saturation-recovery equation
``S = M0 (1 - exp(-TD (R1_0 + r1 C))) exp(-TE r2* C)`` its signal. Per frame the heart and the
abdominal/lung contents move with breathing, the fine image is folded along the phase-encoding axis
where the body overflows the field of view, and the acquired image is the central k-space block of it
(partial volume, Gibbs ringing and the dark rim come for free), seen through receive-coil shading and
a smooth phase, with the scanner's phase resolution, partial Fourier and filter, and Rician noise.

Image layout is ``(row, column)`` with anterior at the top and the patient's left on the right (the
LV to the right of the RV, the liver at the lower left); rows are the phase-encoding direction.

The study is drawn in small steps, each a function of its own spawned random stream that returns a
frozen dataclass: kind (stress, defect, field), :mod:`.timing`, :mod:`.motion`, :mod:`.body`,
:mod:`.heart` (and its placement), :mod:`.acquisition`, :mod:`.tracer` (and the signal), then
:mod:`.paint`, :mod:`.render` and the scanner's view in :mod:`.acquisition`; :mod:`.study` runs
them in order and :mod:`.files` reads and writes studies. Every range drawn from is declared in
:class:`~.priors.PhantomPriors`.
"""

from .acquisition import rice_mean
from .files import (
    labels_from_masks,
    masks_from_labels,
    read_masks,
    read_phantom_study,
    write_phantom_dataset,
    write_phantom_study,
)
from .geometry import HEART_CROP, SUPERSAMPLE
from .priors import PhantomPriors
from .study import DEFECT_CHOICES, SLICE_THICKNESS, PhantomStudy, make_phantom
from .tracer import COMPONENT_TISSUE, TISSUES, TRACER_STEP

__all__ = [
    "COMPONENT_TISSUE",
    "DEFECT_CHOICES",
    "HEART_CROP",
    "SLICE_THICKNESS",
    "SUPERSAMPLE",
    "TISSUES",
    "TRACER_STEP",
    "PhantomPriors",
    "PhantomStudy",
    "labels_from_masks",
    "make_phantom",
    "masks_from_labels",
    "read_masks",
    "read_phantom_study",
    "rice_mean",
    "write_phantom_dataset",
    "write_phantom_study",
]
