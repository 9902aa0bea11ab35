"""The phantom's priors: every range a study is drawn from, in one declared table.

``PhantomPriors()`` is the distribution the bundled model was trained on; pass another table to
:func:`PerfGenSRLib.phantom.make_phantom` to draw from a wider one, e.g.::

    wide = dataclasses.replace(
        PhantomPriors(),
        acquisition=dataclasses.replace(PhantomPriors().acquisition, snr=(8.0, 80.0), pixel_mm=(1.4, 3.2)),
    )

or, from JSON (e.g. a training configuration, or the ``priors`` a study records when they differ from
the default), ``PhantomPriors.from_dict({"acquisition": {"snr": [8, 80]}})``.

A pair ``(low, high)`` is drawn uniformly unless its comment says log-uniform (integer pairs: both
ends included); a ``*_chance`` is the probability of a yes/no choice. Fixed physics and shapes (tissue T1s, the time course's form, outline
ripples) live with the step that uses them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import PerfGenError

Range = tuple[float, float]


@dataclass(frozen=True)
class KindPriors:
    """What kind of study: stress or rest, defect, field strength, edge softness."""

    stress_chance: float = 0.5
    defect_kinds: tuple[str, ...] = ("none", "subendocardial", "transmural")
    defect_chances_stress: tuple[float, ...] = (0.45, 0.35, 0.2)  # of defect_kinds, in stress studies
    defect_chances_rest: tuple[float, ...] = (0.6, 0.2, 0.2)
    tesla_3_chance: float = 0.25  # else 1.5 T
    edge_mm: Range = (0.25, 0.6)  # softness of tissue borders (through-plane partial volume)


@dataclass(frozen=True)
class TimingPriors:
    """Frame times and bolus arrival."""

    interval_stress_s: Range = (0.6, 0.95)  # one frame per heartbeat
    interval_rest_s: Range = (0.75, 1.2)
    interval_jitter: float = 0.025  # relative standard deviation of the beat-to-beat interval
    baseline_frames: tuple[int, int] = (3, 8)  # frames before arrival (at most a fifth of the frames)
    arrival_after_baseline: Range = (0.3, 1.0)  # intervals after the last baseline frame


@dataclass(frozen=True)
class MotionPriors:
    """Breathing (heart and abdomen) and cardiac-phase jitter."""

    modes: tuple[str, ...] = ("hold_then_breathe", "breathe", "hold")
    mode_chances: tuple[float, ...] = (0.45, 0.4, 0.15)
    period_s: Range = (3.0, 6.0)  # breathing period
    sharpness: Range = (1.0, 2.5)  # exponent of the breathing cycle (larger: longer end-expiration)
    swing_period_s: Range = (10.0, 30.0)  # period of the +-30 % depth modulation
    drift: Range = (0.0, 0.15)  # slow drift during a breath-hold, fraction of the amplitude
    hold_s: Range = (5.0, 25.0)  # breath-hold length before breathing resumes
    amplitude_hold_mm: Range = (0.0, 2.0)  # breathing amplitude of a held breath
    amplitude_mm: Range = (2.0, 12.0)  # of free breathing
    direction_deg: Range = (50.0, 130.0)  # from the column axis, either sense
    heart_gain: Range = (0.6, 0.9)  # heart motion relative to the amplitude
    cavity_gain: Range = (0.9, 1.2)  # lung and abdomen motion relative to the amplitude
    jitter_mm: Range = (0.15, 0.8)  # cardiac-phase jitter, standard deviation per axis


@dataclass(frozen=True)
class BodyPriors:
    """Thorax outline, wall layers, breasts, spine, aorta (mm)."""

    cavity_half_width_mm: Range = (95.0, 135.0)
    cavity_front_ratio: Range = (0.55, 0.72)  # anterior half-height / half-width
    cavity_back_ratio: Range = (0.6, 0.8)  # posterior half-height / half-width
    cavity_power: Range = (2.0, 2.7)  # superellipse exponent of the cavity
    cavity_back_flattening: Range = (0.0, 0.12)
    fat_mm: Range = (3.0, 28.0)  # subcutaneous fat, log-uniform
    fat_side_gain: Range = (0.9, 1.8)
    fat_front_gain: Range = (-0.6, 0.2)
    fat_back_gain: Range = (-0.7, 0.0)
    breasts_chance: float = 0.3
    second_breast_chance: float = 0.4  # when breasts: both in the slice
    breast_angle: Range = (-1.3, -0.6)  # rad, of the left breast (second: right_breast_angle)
    right_breast_angle: Range = (-2.6, -1.9)
    breast_height_mm: Range = (15.0, 55.0)
    breast_width: Range = (0.25, 0.45)  # rad
    muscle_mm: Range = (5.0, 14.0)
    muscle_front_mm: Range = (4.0, 14.0)
    muscle_back_mm: Range = (20.0, 45.0)
    muscle_spine_mm: Range = (10.0, 25.0)
    skin_mm: Range = (1.2, 2.5)
    rotation: Range = (-0.1, 0.1)  # rad
    vertebra_half_width_mm: Range = (16.0, 22.0)
    vertebra_half_height_mm: Range = (12.0, 16.0)
    vertebra_depth: Range = (-0.1, 0.5)  # into the cavity's back, in vertebra half-heights
    spine_x_mm: Range = (-6.0, 6.0)
    canal_mm: Range = (5.5, 8.0)  # spinal canal radius
    aorta_x_mm: Range = (12.0, 30.0)  # left of the spine
    aorta_gap_mm: Range = (0.0, 12.0)  # in front of the vertebra
    aorta_radius_mm: Range = (9.0, 14.0)


@dataclass(frozen=True)
class SlicePriors:
    """Heart sizes at one slice level (mm, degrees)."""

    lv_radius_mm: Range
    wall_mm: Range
    rv_width_mm: Range
    rv_half_angle_deg: Range
    papillary_chance: float
    min_width_mm: float  # redrawn until the LV+RV width exceeds this


@dataclass(frozen=True)
class HeartPriors:
    """LV, RV, epicardial fat, papillary muscles, coronaries, defect and dark rim."""

    levels: tuple[str, ...] = ("apical", "mid", "basal")  # the paper's three slices
    level_chances: tuple[float, ...] = (0.3, 0.4, 0.3)
    apical: SlicePriors = SlicePriors((9, 16), (5, 10), (6, 14), (45, 75), 0.1, 0)
    mid: SlicePriors = SlicePriors((16, 30), (6, 12.5), (12, 32), (55, 95), 0.85, 92)
    basal: SlicePriors = SlicePriors((20, 32), (6, 12), (16, 36), (70, 110), 0.3, 98)
    epicardial_fat_mm: Range = (0.0, 3.0)
    groove_fat_mm: Range = (3.0, 12.0)  # at the RV insertions
    lv_axis_ratio: Range = (0.85, 1.0)  # minor / major axis of the LV
    trabeculae: tuple[int, int] = (4, 13)  # count
    trabecula_mm: Range = (0.3, 1.6)
    trabecula_width: Range = (0.05, 0.14)  # rad
    rv_angle_deg: Range = (190.0, 235.0)  # RV direction from the LV centre
    rv_crescent_power: Range = (0.5, 1.3)
    rv_skew: Range = (-0.35, 0.35)
    rv_wall_mm: Range = (2.5, 5.0)
    rv_fat_mm: Range = (0.0, 6.0)
    groove_gain: Range = (0.4, 1.0)
    groove_position: Range = (0.85, 1.05)  # in RV half-angles
    groove_width: Range = (0.12, 0.3)  # rad
    papillary_angles_deg: tuple[Range, Range] = ((115.0, 150.0), (60.0, 100.0))  # from the RV, each side
    papillary_radial_mm: Range = (3.0, 6.5)  # at an LV radius of 22 mm
    papillary_tangential_mm: Range = (2.5, 5.0)
    papillary_depth: Range = (0.9, 1.6)  # in radial half-axes inside the endocardium
    coronary_chance: float = 0.8  # each side
    coronary_position: Range = (0.8, 1.1)  # in RV half-angles
    coronary_radius_mm: Range = (0.8, 2.0)
    defect_half_width_deg: Range = (30.0, 70.0)
    subendocardial_extent: Range = (0.4, 0.65)  # of the wall thickness
    dark_rim_chance: float = 0.6
    dark_rim_amplitude: Range = (0.1, 0.45)  # of the endocardial signal
    dark_rim_width_mm: Range = (0.8, 2.0)
    dark_rim_decay_s: Range = (2.0, 6.0)  # after the LV peak


@dataclass(frozen=True)
class PlacementPriors:
    """Heart position in the thorax; liver, stomach and spleen under it."""

    wall_gap_mm: Range = (0.0, 10.0)  # heart to anterior chest wall
    lv_x_mm: Range = (-5.0, 45.0)  # LV centre, left of the body axis
    lv_y_extra_mm: Range = (0.0, 15.0)  # posterior of the most anterior free position
    liver: tuple[Range, Range, Range] = ((100, 145), (80, 150), (65, 120))  # direction deg, half-axes mm
    stomach_chance: float = 0.45
    stomach: tuple[Range, Range, Range] = ((55, 95), (25, 50), (20, 40))
    spleen_chance: float = 0.25
    spleen: tuple[Range, Range, Range] = ((40, 70), (20, 35), (30, 50))
    organ_power: Range = (2.0, 2.6)  # superellipse exponent
    liver_gap_mm: Range = (-6.0, 8.0)  # from the heart
    stomach_gap_mm: Range = (0.0, 25.0)
    spleen_gap_mm: Range = (30.0, 70.0)
    diaphragm_mm: Range = (2.5, 5.0)


@dataclass(frozen=True)
class AcquisitionPriors:
    """Field of view, matrix, fold-over, reconstruction, noise and stored-value scale."""

    pixel_mm: Range = (
        1.6,
        2.8,
    )  # acquired pixel size; hearts too large for the 96 crop at the coarsest shrink
    fov_to_body: Range = (0.95, 1.3)  # field-of-view width / body width
    fov_mm: Range = (280.0, 440.0)  # field-of-view width, clipped to this
    cols: tuple[int, ...] = tuple(range(112, 225, 8))  # frequency-encoding matrix sizes
    rows: tuple[int, int] = (96, 192)  # phase-encoding matrix size, a multiple of 8
    rows_to_body: Range = (0.92, 1.2)  # phase field of view / body height
    rows_to_cols: Range = (0.85, 1.0)  # rectangular field of view
    fov_to_body_fixed_matrix: Range = (0.95, 1.25)  # fov width / body width when the matrix is given
    fov_center_share: Range = (0.0, 0.9)  # field-of-view centre from the body axis toward the heart
    fov_center_jitter_mm: float = 8.0  # standard deviation
    fold_chance: float = 0.5  # body beyond the phase field of view folds over (else oversampling)
    fold_cap: float = 0.12  # most folded rows, share of the rows
    full_phase_resolution_chance: float = 0.3
    phase_resolution: Range = (0.65, 1.0)  # share of the phase-encoding k-space lines, else
    partial_fourier: tuple[float, ...] = (1.0, 7 / 8, 6 / 8)
    partial_fourier_chances: tuple[float, ...] = (0.5, 0.3, 0.2)
    heart_blur_chance: float = 0.7
    heart_blur_mm: Range = (0.0, 1.8)  # cardiac motion during the shot
    filter_chance: float = 0.35
    filter: Range = (0.2, 0.6)  # k-space taper width
    ghost_chance: float = 0.4
    ghost: Range = (0.004, 0.03)  # N/2 ghost amplitude
    snr: Range = (15.0, 60.0)  # LV blood at peak over noise sigma, log-uniform
    scale: Range = (50.0, 4000.0)  # stored value of unit signal, log-uniform
    integer_chance: float = 0.6  # stored values rounded to integers
    coil_exponent: Range = (0.25, 1.0)  # coil shading kept by the reconstruction's normalisation
    coil_elements: tuple[int, int] = (3, 6)  # per array (anterior, posterior)
    coil_size_mm: Range = (70.0, 150.0)  # sensitivity radius of one element
    coil_gain: Range = (0.6, 1.3)  # relative amplitude of one element
    noise_ripple: Range = (0.0, 0.3)  # smooth modulation of the noise level (g-factor-like)


@dataclass(frozen=True)
class TracerPriors:
    """Bolus, transit, recirculation and tissue perfusion (flows in ml/min/g)."""

    bolus_mean_s: Range = (2.5, 5.0)
    bolus_shape: Range = (2.5, 5.0)  # gamma shape
    pulmonary_mean_stress_s: Range = (2.5, 4.5)
    pulmonary_mean_rest_s: Range = (3.0, 6.0)
    pulmonary_shape: Range = (4.0, 9.0)
    quick_share: Range = (0.3, 0.6)  # of the fast systemic paths (heart, brain, upper body)
    quick_mean_s: Range = (6.0, 10.0)
    quick_shape: Range = (4.0, 8.0)
    slow_mean_s: Range = (15.0, 25.0)
    slow_shape: Range = (2.5, 4.0)
    stress_transit: float = 0.75  # systemic transit times under stress, relative
    recirculation: Range = (0.55, 0.8)
    peak_lv_mM: Range = (3.0, 10.0)  # log-uniform
    flow_stress: Range = (1.8, 4.0)
    flow_rest: Range = (0.6, 1.3)
    blood_volume: Range = (0.07, 0.11)  # ml/ml
    stress_blood_volume: float = 1.3  # blood volume under stress, relative
    extraction_stress: Range = (0.3, 0.45)
    extraction_rest: Range = (0.45, 0.65)
    interstitial_volume: Range = (0.18, 0.3)  # ml/ml
    myocardial_delay_s: Range = (0.3, 1.2)
    endo_epi_stress: Range = (0.9, 1.1)  # endocardial / epicardial flow
    endo_epi_rest: Range = (1.0, 1.2)
    aorta_delay_s: Range = (0.3, 1.0)
    portal_mean_s: Range = (7.0, 14.0)
    skeletal_flow: Range = (0.03, 0.12)
    spleen_flow: Range = (1.0, 2.0)
    defect_flow_stress: Range = (0.15, 0.5)  # of the remote flow
    defect_flow_rest: Range = (0.3, 0.6)
    defect_delay_s: Range = (0.5, 2.5)  # extra
    defect_blood_volume: Range = (0.6, 0.9)  # relative
    defect_ps: Range = (0.5, 1.0)  # relative permeability-surface product


@dataclass(frozen=True)
class SignalPriors:
    """Saturation-recovery signal: relaxivities, timing, tissue properties, inflow."""

    r1_15T_per_mM_s: Range = (3.5, 5.2)
    r1_3T_per_mM_s: Range = (3.2, 4.6)
    saturation_delay_s: Range = (0.09, 0.125)
    echo_time_s: Range = (0.0010, 0.0013)
    r2star_blood_per_mM_s: Range = (3.0, 12.0)  # at 1.5 T
    r2star_3T_gain: float = 0.5  # r2* at 3 T is (1 + this) times higher
    proton_density: Range = (0.9, 1.1)  # of each tissue's, relative
    t1: Range = (0.9, 1.1)  # of each tissue's, relative
    fat_proton_density: Range = (0.7, 1.1)  # relative
    lv_inflow_lead_s: Range = (0.3, 1.2)  # unmixed inflow runs ahead of the LV blood signal
    rv_inflow_lead_s: Range = (0.5, 1.5)


@dataclass(frozen=True)
class PaintPriors:
    """Fine anatomy and textures painted on the fine grid (mm unless noted)."""

    texture_mm: tuple[Range, Range, Range] = ((0.7, 1.4), (3.0, 6.0), (10.0, 20.0))  # fine, mid, coarse
    rib_spacing_mm: Range = (22.0, 32.0)  # along the cavity outline
    rib_chance: float = 0.65  # of each rib position being in the slice
    rib_offset_mm: Range = (0.0, 4.0)  # outside the cavity
    rib_half_length_mm: Range = (4.0, 12.0)
    rib_half_thickness_mm: Range = (3.0, 4.5)
    sternum_chance: float = 0.8
    sternum_offset_mm: Range = (2.0, 6.0)  # in front of the cavity
    sternum_x_mm: Range = (-5.0, 5.0)
    sternum_half_width_mm: Range = (12.0, 18.0)
    sternum_half_height_mm: Range = (4.0, 7.0)
    mammary_angle: Range = (0.12, 0.25)  # rad from the midline, internal mammary arteries
    mammary_depth_mm: Range = (0.0, 3.0)  # inside the cavity
    mammary_radius_mm: Range = (1.0, 2.0)
    mammary_fill: Range = (0.4, 1.0)  # partial volume
    spinous_gap_mm: Range = (8.0, 12.0)  # spinous process behind the canal
    spinous_half_width_mm: Range = (3.0, 5.0)
    spinous_half_length_mm: Range = (8.0, 14.0)
    oesophagus_chance: float = 0.6
    oesophagus_x_mm: Range = (-12.0, 4.0)  # from the spine
    oesophagus_gap_mm: Range = (6.0, 14.0)  # in front of the vertebra
    oesophagus_half_axes_mm: tuple[Range, Range] = ((5.0, 8.0), (4.0, 6.0))
    oesophagus_air_chance: float = 0.5
    arms_chance: float = 0.35
    arm_radius_mm: Range = (35.0, 55.0)
    arm_gap_mm: Range = (0.0, 20.0)  # beside the body
    arm_y_mm: Range = (-20.0, 50.0)
    arm_fat_mm: Range = (4.0, 15.0)
    humerus_offset_mm: Range = (-10.0, 10.0)  # from the arm's centre, each axis
    humerus_radius_mm: Range = (9.0, 13.0)
    fat_septa: Range = (0.05, 0.35)  # darkness of the subcutaneous fat septa
    gland_threshold: Range = (-0.5, 1.0)  # of a mid-scale field; larger: less breast gland
    lung_vessels: tuple[int, int] = (15, 54)  # candidates (those outside the lungs are dropped)
    lung_vessel_x_mm: Range = (-170.0, 150.0)  # from the LV centre
    lung_vessel_y_mm: Range = (-130.0, 100.0)
    lung_vessel_radius_mm: Range = (0.8, 4.5)  # log-uniform
    lung_vessel_elongation: Range = (1.0, 2.5)
    pulmonary_artery_chance: float = 0.55  # else a vein
    lung_vessel_fill: Range = (0.3, 1.0)  # partial volume
    liver_vessels: tuple[int, int] = (3, 12)
    liver_vessel_depth: Range = (0.15, 0.8)  # share of the liver radius
    liver_vessel_radius_mm: Range = (2.0, 6.0)
    liver_vessel_elongation: Range = (1.0, 1.8)
    stomach_wall_mm: Range = (3.0, 6.0)
    stomach_level: Range = (0.2, 0.9)  # gas-fluid level above the centre, share of the largest radius
    stomach_gas_chance: float = 0.7
    stomach_content: Range = (0.6, 2.5)  # signal, relative
    epicardial_septa: Range = (0.1, 0.4)  # darkness of the epicardial fat septa
    lv_inflow: Range = (0.3, 1.0)  # amplitude of the unmixed-inflow pattern in the LV blood
    rv_inflow: Range = (0.3, 1.0)
    myo_heterogeneity: Range = (0.2, 0.8)  # amplitude of patchy myocardial enhancement


@dataclass(frozen=True)
class PhantomPriors:
    """All ranges a phantom study is drawn from, one section per step."""

    kind: KindPriors = field(default_factory=KindPriors)
    timing: TimingPriors = field(default_factory=TimingPriors)
    motion: MotionPriors = field(default_factory=MotionPriors)
    body: BodyPriors = field(default_factory=BodyPriors)
    heart: HeartPriors = field(default_factory=HeartPriors)
    placement: PlacementPriors = field(default_factory=PlacementPriors)
    acquisition: AcquisitionPriors = field(default_factory=AcquisitionPriors)
    tracer: TracerPriors = field(default_factory=TracerPriors)
    signal: SignalPriors = field(default_factory=SignalPriors)
    paint: PaintPriors = field(default_factory=PaintPriors)

    @classmethod
    def from_dict(cls, data: dict) -> PhantomPriors:
        """The default table with the sections and fields named in ``data`` (lists for pairs) replaced."""
        return _replaced(cls(), data, "priors")


def _replaced(table, data: dict, where: str):
    if not isinstance(data, dict):
        raise PerfGenError(f"{where} must be a mapping of field names to values, got {data!r}")
    names = {f.name for f in dataclasses.fields(table)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PerfGenError(f"{where}: unknown field(s) {unknown}; known: {sorted(names)}")
    changes = {}
    for name, value in data.items():
        current = getattr(table, name)
        if dataclasses.is_dataclass(current):
            changes[name] = _replaced(current, value, f"{where}.{name}")
        else:
            changes[name] = _tuples(value)
    return dataclasses.replace(table, **changes)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
