"""What an MR image header says about its acquisition: the phase-encoding direction, the acquired
matrix, and how many central phase-encoding lines of the reconstructed grid were measured, which is
what data consistency keeps for a truly low-resolution series (Docs/dicom.md, "Measured lines from
the header").

Tags read, enhanced multi-frame first (MR FOV/Geometry Sequence (0018,9125) of the shared, else the
first per-frame, functional groups), then the classic MR Image module:

- In-plane Phase Encoding Direction (0018,1312): ``COL`` is phase encoded along a column, so the lines
  are counted by the image's rows (the study's ``rows`` axis, -2); ``ROW`` along a row (``columns``, -1).
- phase-encoding steps: MR Acquisition Phase Encoding Steps in-plane (0018,9231), else Acquisition
  Matrix (0018,1310), "frequency rows, frequency columns, phase rows, phase columns", of which the
  slot of the direction is read (``COL``: the fourth, ``ROW``: the third; the other two are zero).
  A matrix whose phase steps sit only in the other direction's slot contradicts the direction and
  gives nothing.
- Percent Phase Field of View (0018,0094), to relate the acquired phase field of view
  (frequency field of view x percent) to the reconstructed one (lines x pixel spacing); where they
  differ (a square image of a rectangular field of view), the steps are scaled by their ratio.
- Percent Sampling (0018,0093) is kept but not applied: scanners write the acquired phase steps in
  the matrix already (Siemens: steps = base resolution x percent sampling x percent phase FOV), so
  applying it again would count it twice.
- Partial Fourier (0018,9081) and its direction (0018,9036) in the MR Modifier Sequence (enhanced
  objects only) are reported: the fraction is in no standard tag, so the lines count the symmetric
  extent the scanner reconstructed.

Not read: vendor private headers (the Siemens CSA header's ``sKSpace`` partial Fourier and
interpolation, GE and Philips private groups), parallel-imaging factors (they skip outer lines
within the extent, which the reconstruction fills), slice-direction encoding.

measured lines = round(steps x (lines x pixel spacing along phase) / (frequency FOV x percent phase
FOV / 100)), at most the lines of the reconstructed grid; without Percent Phase FOV the ratio is 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .study import Study

AXIS_OF_DIRECTION = {"COL": "rows", "ROW": "columns"}
FOV_RATIO_TOLERANCE = 0.02  # pixel spacings and percents are rounded: within 2 % the fields of view agree
FOV_RATIO_RANGE = (0.5, 2.0)  # outside it the Percent Phase FOV does not describe this image


@dataclass(frozen=True)
class MeasuredLines:
    """Central phase-encoding lines measured on the reconstructed grid, as a header gives them.

    ``lines`` is None when the header gives no usable count, ``phase_axis`` (``rows`` or ``columns``)
    None when it gives no direction; ``source`` names the tags that gave them, or says why none did."""

    lines: int | None
    matrix: int | None
    phase_axis: str | None
    source: str

    @property
    def full_resolution(self) -> bool:
        """Every line of the grid was measured: nothing for data consistency to keep."""
        return self.lines is not None and self.matrix is not None and self.lines >= self.matrix


NO_HEADER = MeasuredLines(None, None, None, "the input carries no MR acquisition header")


def read_acquisition(header, rows: int, columns: int, pixel_spacing: tuple[float, float]) -> dict:
    """Study meta entries from an MR header (a pydicom Dataset) of a ``rows`` x ``columns`` image with
    ``pixel_spacing`` (row spacing, column spacing): ``phase_encoding``, ``acquisition_matrix``
    (acquired ``[rows, columns]``), ``percent_sampling``, ``percent_phase_fov``, ``partial_fourier``
    and ``measured_lines`` (a :class:`MeasuredLines` as a dict)."""
    enhanced = _enhanced_fields(header) or {}
    fields = enhanced
    if not enhanced.get("phase"):  # no enhanced steps: the classic matrix, with what the geometry said
        classic = _classic_fields(header, enhanced.get("direction"))
        kept = {k: v for k, v in enhanced.items() if v is not None and k not in ("phase", "steps_tag")}
        fields = {**classic, **kept}
    direction, phase, frequency = fields["direction"], fields["phase"], fields["frequency"]
    info: dict = {}
    if direction in AXIS_OF_DIRECTION:
        info["phase_encoding"] = direction
    if fields.get("matrix"):
        info["acquisition_matrix"] = fields["matrix"]
    elif phase and frequency and direction in AXIS_OF_DIRECTION:
        info["acquisition_matrix"] = [phase, frequency] if direction == "COL" else [frequency, phase]
    for key in ("percent_sampling", "percent_phase_fov", "partial_fourier"):
        if fields.get(key) is not None:
            info[key] = fields[key]
    info["measured_lines"] = asdict(_measured(fields, rows, columns, pixel_spacing))
    return info


def measured_lines(study) -> MeasuredLines:
    """What ``study``'s header said about its measured lines (:data:`NO_HEADER` for a study read from
    a file without one)."""
    found = study.meta.get("measured_lines")
    return MeasuredLines(**found) if isinstance(found, dict) else NO_HEADER


def _measured(fields: dict, rows: int, columns: int, pixel_spacing: tuple[float, float]) -> MeasuredLines:
    direction, phase, steps_tag = fields["direction"], fields["phase"], fields["steps_tag"]
    if direction is None:
        return MeasuredLines(None, None, None, "no In-plane Phase Encoding Direction (0018,1312)")
    if direction not in AXIS_OF_DIRECTION:
        return MeasuredLines(
            None,
            None,
            None,
            f"In-plane Phase Encoding Direction (0018,1312) is '{direction}', not ROW or COL",
        )
    axis = AXIS_OF_DIRECTION[direction]
    matrix, frequency_lines = (rows, columns) if direction == "COL" else (columns, rows)
    spacing_phase, spacing_frequency = pixel_spacing if direction == "COL" else pixel_spacing[::-1]
    named = f"In-plane Phase Encoding Direction {direction}"
    if fields.get("contradiction"):
        return MeasuredLines(None, matrix, axis, fields["contradiction"])
    if not phase:
        return MeasuredLines(None, matrix, axis, f"no phase-encoding steps in {steps_tag}; {named}")
    tags, ratio = [steps_tag, named], 1.0
    percent = fields.get("percent_phase_fov")
    if percent:
        acquired_fov = frequency_lines * spacing_frequency * percent / 100.0
        ratio = matrix * spacing_phase / acquired_fov
        if not FOV_RATIO_RANGE[0] <= ratio <= FOV_RATIO_RANGE[1]:
            return MeasuredLines(
                None,
                matrix,
                axis,
                f"Percent Phase Field of View (0018,0094) {percent:g} % gives a {acquired_fov:.0f} mm phase "
                f"field of view, the image's is {matrix * spacing_phase:.0f} mm; {named}",
            )
        if abs(ratio - 1.0) <= FOV_RATIO_TOLERANCE:
            ratio = 1.0
        else:
            tags.append(f"Percent Phase Field of View 0018,0094 ({percent:g} %)")
    lines = max(1, min(matrix, int(round(phase * ratio))))
    source = ", ".join(tags[:-1]) + " and " + tags[-1]
    if fields.get("partial_fourier"):
        source += "; partial Fourier along phase (0018,9081): its fraction is in no tag, the lines are the extent reconstructed"
    return MeasuredLines(lines, matrix, axis, source)


def _enhanced_fields(header) -> dict | None:
    """The MR FOV/Geometry Sequence of an enhanced object, or None where there is none."""
    geometry = _functional_group(header, "MRFOVGeometrySequence")
    if geometry is None:
        return None
    direction = geometry.get("InPlanePhaseEncodingDirection", header.get("InPlanePhaseEncodingDirection"))
    modifier = _functional_group(header, "MRModifierSequence")
    partial = modifier is not None and str(modifier.get("PartialFourier", "")).upper() == "YES"
    partial_direction = str(modifier.get("PartialFourierDirection", "")).upper() if partial else ""
    return {
        "direction": None if direction in (None, "") else str(direction).upper(),
        "phase": _positive(geometry.get("MRAcquisitionPhaseEncodingStepsInPlane")),
        "frequency": _positive(geometry.get("MRAcquisitionFrequencyEncodingSteps")),
        "steps_tag": "MR Acquisition Phase Encoding Steps in-plane 0018,9231 (MR FOV/Geometry Sequence)",
        "percent_sampling": _percent(geometry.get("PercentSampling", header.get("PercentSampling"))),
        "percent_phase_fov": _percent(
            geometry.get("PercentPhaseFieldOfView", header.get("PercentPhaseFieldOfView"))
        ),
        "partial_fourier": partial_direction in ("PHASE", "COMBINATION") or None,
    }


def _classic_fields(header, direction: str | None = None) -> dict:
    direction = direction or header.get("InPlanePhaseEncodingDirection")
    direction = None if direction in (None, "") else str(direction).upper()
    fields = {
        "direction": direction,
        "phase": None,
        "frequency": None,
        "steps_tag": "Acquisition Matrix 0018,1310",
        "percent_sampling": _percent(header.get("PercentSampling")),
        "percent_phase_fov": _percent(header.get("PercentPhaseFieldOfView")),
    }
    matrix = header.get("AcquisitionMatrix")
    if matrix is None or len(matrix) != 4 or not any(matrix):
        return fields
    values = [int(v or 0) for v in matrix]
    # frequency rows, frequency columns, phase rows, phase columns: "rows" slots count image columns
    fields["matrix"] = [max(values[1], values[3]), max(values[0], values[2])]
    if direction in AXIS_OF_DIRECTION:
        phase_slot, other_slot = (3, 2) if direction == "COL" else (2, 3)
        fields["phase"] = _positive(values[phase_slot])
        fields["frequency"] = _positive(values[3 - phase_slot])
        if not fields["phase"] and values[other_slot]:
            written = "\\".join(map(str, values))
            fields["contradiction"] = (
                f"Acquisition Matrix (0018,1310) {written} holds phase steps for "
                f"{'ROW' if direction == 'COL' else 'COL'} but In-plane Phase Encoding Direction (0018,1312) "
                f"says {direction}"
            )
    return fields


def _functional_group(header, sequence: str):
    """The first item of ``sequence`` in the shared functional groups, else in the first frame's."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = header.get(groups)
        if items and sequence in items[0] and len(items[0][sequence].value):
            return items[0][sequence][0]
    return None


def _positive(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _percent(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def along_rows(study: Study, phase_axis: str) -> Study:
    """The study with its phase-encoding axis along the rows, as the methods expect (a transpose,
    undone by applying it again)."""
    return study if phase_axis == "rows" else study.with_frames(np.swapaxes(study.frames, -1, -2))


def phase_and_lines(
    study, phase_axis: str | None = None, given_lines: int | None = None, fraction: float | None = None
) -> tuple[str, int | None, str | None]:
    """The phase-encoding axis, the measured lines for data consistency and the line saying where
    they came from (None where there is nothing to say): ``phase_axis`` and ``given_lines`` win over
    the study's DICOM header, which wins over the rows; with a ``fraction`` (retrospective use) the
    lines follow from it."""
    found = measured_lines(study)
    axis = phase_axis or found.phase_axis or "rows"
    if fraction is not None:  # retrospective: the lines follow from --fraction
        return axis, None, None
    size = study.shape[-2 if axis == "rows" else -1]
    off = "data consistency is off unless `measured_lines` is given"
    if given_lines is not None:
        note = f"measured lines: {given_lines} of {size} along {axis} (from `measured_lines`"
        if found.lines is not None and (found.lines, found.phase_axis) != (given_lines, axis):
            note += f", not the header's {found.lines} of {found.matrix} along {found.phase_axis}"
        return axis, given_lines, note + ")"
    if found is NO_HEADER:
        return axis, None, None  # a file without a header: nothing found, nothing to say
    if found.lines is None:
        return axis, None, f"measured lines: none in the header ({found.source}); {off}"
    if found.phase_axis != axis:
        return (
            axis,
            None,
            (
                f"measured lines: the header's {found.lines} of {found.matrix} run along {found.phase_axis}, "
                f"not along `phase_axis` {axis}; {off}"
            ),
        )
    if found.full_resolution:
        return (
            axis,
            None,
            (
                f"measured lines: {found.lines} of {found.matrix} along {axis} (from {found.source}): the header "
                "says full resolution, nothing for data consistency to keep"
            ),
        )
    return (
        axis,
        found.lines,
        f"measured lines: {found.lines} of {found.matrix} along {axis} (from {found.source})",
    )
