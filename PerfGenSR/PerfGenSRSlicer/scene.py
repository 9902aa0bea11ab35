"""Everything the Slicer module does to the MRML scene, without Qt: volume sequences to and from
:class:`~PerfGenSRLib.io.Study`, super-resolved sequences joining the input's sequence browser,
perfusion ROI segments, ROI signal-time curves as a table and a plot chart, and the compare views.

Every function takes the scene (or nodes in it) explicitly, so the same code runs inside 3D Slicer
and under the PyPI ``slicer-core`` package (real MRML nodes, no application), where the tests run.
Public names are camelCase, as in Slicer's own Python API.

Geometry: MRML volumes are in RAS; a :class:`Study` carries LPS geometry like every other study in
PerfGenSR (SimpleITK, DICOM), so a study read here can be written with :func:`io.write_study` as is.
The conversion flips the first two axes both ways and is exact.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from PerfGenSRLib import kspace
from PerfGenSRLib.defaults import DEFAULT_SAMPLER
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.io import Study, validate_frames

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])  # its own inverse
SECONDS_PER_UNIT = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}
METHOD_LABELS = {"zeropad": "zero-pad", "gan": "GAN", "perfgen": "PerfGen"}
PERFUSION_SEGMENTS = (  # name, colour: blood red, deoxygenated-blood blue, muscle ochre
    ("LV blood", (0.85, 0.20, 0.18)),
    ("RV blood", (0.22, 0.42, 0.85)),
    ("Myocardium", (0.92, 0.72, 0.30)),
)
LINE_STYLES = ("LineStyleSolid", "LineStyleDash", "LineStyleDot", "LineStyleDashDot", "LineStyleDashDotDot")
COMPARE_VIEW_PREFIX = "PerfGenSRCompare"
COMPARE_VIEW_COLORS = ("#F34A33", "#6EB04B", "#EDD54C", "#4A90D9", "#B35ABF", "#E3A23B", "#45B5AA", "#9A9A9A")
COMPARE_PLOT_VIEW = "PerfGenSRComparePlot"
UNCERTAINTY_COLOR_NODE_ID = "vtkMRMLColorTableNodeIron"  # one of Slicer's built-in colour tables
UNCERTAINTY_OPACITY = 0.5
ROLE = "PerfGenSR.Role"  # node attribute: "result", "uncertainty" or "lowres"
METHOD = "PerfGenSR.Method"
LABEL = "PerfGenSR.Label"  # the result's name among the input's results ("PerfGen", "PerfGen 2", ...)
FRACTION = "PerfGenSR.Fraction"
SOURCE_REFERENCE = "PerfGenSRSource"  # node reference to the input sequence (survives scene import)
UNCERTAINTY_REFERENCE = "PerfGenSRUncertainty"
LOW_RES_REFERENCE = "PerfGenSRLowRes"
INTEGER_RANGES = {  # VTK integer scalar types a result may keep: numpy type
    vtk.VTK_CHAR: np.int8,
    vtk.VTK_SIGNED_CHAR: np.int8,
    vtk.VTK_UNSIGNED_CHAR: np.uint8,
    vtk.VTK_SHORT: np.int16,
    vtk.VTK_UNSIGNED_SHORT: np.uint16,
    vtk.VTK_INT: np.int32,
    vtk.VTK_UNSIGNED_INT: np.uint32,
}

_privateLogics: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _moduleLogic(scene: slicer.vtkMRMLScene, module: str, logicClass: type):
    """Slicer's logic of ``module`` when ``scene`` is Slicer's own scene, else one attached to ``scene`` here."""
    modules = getattr(slicer, "modules", None)
    if modules is not None and hasattr(modules, module) and getattr(slicer, "mrmlScene", None) is scene:
        return getattr(modules, module).logic()
    logics = _privateLogics.setdefault(scene, {})
    if module not in logics:
        logic = logicClass()
        logic.SetMRMLScene(scene)
        logics[module] = logic
    return logics[module]


def sequencesLogic(scene: slicer.vtkMRMLScene) -> slicer.vtkSlicerSequencesLogic:
    """The Sequences module logic watching ``scene`` (it creates and updates proxy nodes)."""
    return _moduleLogic(scene, "sequences", slicer.vtkSlicerSequencesLogic)


def segmentationsLogic(scene: slicer.vtkMRMLScene) -> slicer.vtkSlicerSegmentationsModuleLogic:
    """The Segmentations module logic for ``scene`` (it registers the labelmap conversion rules)."""
    return _moduleLogic(scene, "segmentations", slicer.vtkSlicerSegmentationsModuleLogic)


# --- volumes and geometry -------------------------------------------------------------------------


def _volumeArray(volumeNode: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    image = volumeNode.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise PerfGenError(f"volume '{volumeNode.GetName()}' holds no image data; load the series again")
    if image.GetNumberOfScalarComponents() != 1:
        raise PerfGenError(
            f"volume '{volumeNode.GetName()}' has {image.GetNumberOfScalarComponents()} components "
            "per voxel; give a scalar magnitude series"
        )
    columns, rows, slices = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return np.array(scalars, dtype=np.float32).reshape(slices, rows, columns)


def _volumeGeometry(volumeNode: slicer.vtkMRMLVolumeNode) -> dict:
    directions = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASDirectionMatrix(directions)
    rasDirection = np.array([[directions.GetElement(r, c) for c in range(3)] for r in range(3)])
    return dict(
        spacing=tuple(float(s) for s in volumeNode.GetSpacing()),
        origin=tuple(float(v) for v in LPS_FROM_RAS @ np.array(volumeNode.GetOrigin())),
        direction=tuple(float(v) for v in (LPS_FROM_RAS @ rasDirection).ravel()),
    )


def _ijkToRas(study: Study) -> vtk.vtkMatrix4x4:
    """The IJK-to-RAS matrix of ``study``'s (LPS) geometry."""
    direction = LPS_FROM_RAS @ np.array(study.direction, dtype=float).reshape(3, 3)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, direction[r, c] * study.spacing[c])
        matrix.SetElement(r, 3, (LPS_FROM_RAS @ np.array(study.origin, dtype=float))[r])
    return matrix


def scalarType(sequenceNode: slicer.vtkMRMLSequenceNode) -> int:
    """The VTK scalar type of the sequence's first volume (``vtk.VTK_FLOAT`` if it has none)."""
    first = sequenceNode.GetNthDataNode(0) if sequenceNode.GetNumberOfDataNodes() else None
    image = first.GetImageData() if first is not None and first.IsA("vtkMRMLVolumeNode") else None
    return image.GetScalarType() if image is not None else vtk.VTK_FLOAT


def framesAs(frames: np.ndarray, vtkType: int) -> tuple[np.ndarray, int]:
    """``frames`` in the VTK scalar type ``vtkType`` where it can hold them, else float32.

    Float types are kept (float32 values widen exactly to double). An integer type is kept when the
    rounded values fit its range: the rounding is at most half a unit, the input's own quantisation.
    """
    if vtkType == vtk.VTK_DOUBLE:
        return frames.astype(np.float64), vtk.VTK_DOUBLE
    integer = INTEGER_RANGES.get(vtkType)
    if integer is not None and frames.size:
        rounded = np.rint(frames)
        limits = np.iinfo(integer)
        if np.isfinite(rounded).all() and rounded.min() >= limits.min and rounded.max() <= limits.max:
            return rounded.astype(integer), vtkType
    return frames.astype(np.float32), vtk.VTK_FLOAT


def _volumeNode(
    frame: np.ndarray, study: Study, name: str, vtkType: int = vtk.VTK_FLOAT
) -> slicer.vtkMRMLScalarVolumeNode:
    """A scalar volume (not in any scene) holding ``frame`` ``(Z, H, W)`` with ``study``'s geometry,
    stored as ``vtkType`` (which the frames must already have)."""
    image = vtk.vtkImageData()
    image.SetDimensions(frame.shape[2], frame.shape[1], frame.shape[0])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(frame).ravel(), deep=True, array_type=vtkType)
    image.GetPointData().SetScalars(scalars)
    volume = slicer.vtkMRMLScalarVolumeNode()
    volume.SetName(name)
    volume.SetAndObserveImageData(image)
    volume.SetIJKToRASMatrix(_ijkToRas(study))
    return volume


def _frameTimes(sequenceNode: slicer.vtkMRMLSequenceNode) -> np.ndarray | None:
    scale = SECONDS_PER_UNIT.get(sequenceNode.GetIndexUnit().strip().lower())
    if scale is None or sequenceNode.GetIndexType() != slicer.vtkMRMLSequenceNode.NumericIndex:
        return None
    try:
        values = np.array(
            [float(sequenceNode.GetNthIndexValue(i)) for i in range(sequenceNode.GetNumberOfDataNodes())]
        )
    except ValueError:
        return None
    return (values - values[0]) * scale


# --- sequences <-> studies ------------------------------------------------------------------------


def sequenceToArray(sequenceNode: slicer.vtkMRMLSequenceNode) -> Study:
    """The frames of a volume sequence as a :class:`Study` ``(T, Z, H, W)`` with LPS geometry and times.

    Frame times (seconds from the first frame) come from the index values when the index unit is a
    time unit (s, ms, min), else they are ``None``. The sequence is only read, never modified.
    """
    if sequenceNode is None or sequenceNode.GetNumberOfDataNodes() == 0:
        raise PerfGenError("the input sequence is empty; load a perfusion series as a volume sequence first")
    first = sequenceNode.GetNthDataNode(0)
    if not first.IsA("vtkMRMLScalarVolumeNode"):
        raise PerfGenError(
            f"sequence '{sequenceNode.GetName()}' holds {first.GetClassName()} items; "
            "choose a sequence of scalar volumes (a perfusion series)"
        )
    frames = [
        _volumeArray(sequenceNode.GetNthDataNode(i)) for i in range(sequenceNode.GetNumberOfDataNodes())
    ]
    if any(frame.shape != frames[0].shape for frame in frames):
        raise PerfGenError(
            f"the volumes of sequence '{sequenceNode.GetName()}' differ in size; "
            "PerfGenSR needs one matrix size for the whole series"
        )
    study = Study(
        validate_frames(np.stack(frames), f"sequence '{sequenceNode.GetName()}'"),
        frame_times=_frameTimes(sequenceNode),
        single_slice=frames[0].shape[0] == 1,
        meta={"source_format": "slicer", "name": sequenceNode.GetName()},
        **_volumeGeometry(first),
    )
    return study


def _copyIndex(
    target: slicer.vtkMRMLSequenceNode, reference: slicer.vtkMRMLSequenceNode | None, study: Study
) -> list[str]:
    if reference is not None:
        if reference.GetNumberOfDataNodes() != study.shape[0]:
            raise PerfGenError(
                f"{study.shape[0]} frames do not match the {reference.GetNumberOfDataNodes()} "
                f"items of sequence '{reference.GetName()}'"
            )
        target.SetIndexName(reference.GetIndexName())
        target.SetIndexUnit(reference.GetIndexUnit())
        target.SetIndexType(reference.GetIndexType())
        return [reference.GetNthIndexValue(i) for i in range(reference.GetNumberOfDataNodes())]
    target.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    if study.frame_times is None:
        target.SetIndexName("frame")
        target.SetIndexUnit("")
    else:
        target.SetIndexName("time")
        target.SetIndexUnit("s")
    return [f"{value:g}" for value in study.times()]


def _buildSequence(
    study: Study,
    name: str,
    reference: slicer.vtkMRMLSequenceNode | None,
    attributes: Mapping[str, str] = {},
    vtkType: int = vtk.VTK_FLOAT,
) -> slicer.vtkMRMLSequenceNode:
    """A volume sequence of ``study``'s frames, not yet in any scene, in ``vtkType`` where exact
    (:func:`framesAs`)."""
    sequence = slicer.vtkMRMLSequenceNode()
    sequence.SetName(name)
    for key, value in attributes.items():
        sequence.SetAttribute(key, value)
    frames, vtkType = framesAs(study.frames, vtkType)
    for frame, value in zip(frames, _copyIndex(sequence, reference, study), strict=True):
        sequence.SetDataNodeAtValue(_volumeNode(frame, study, name, vtkType), value)
    return sequence


def studyToSequence(
    scene: slicer.vtkMRMLScene,
    study: Study,
    name: str,
    referenceSequenceNode: slicer.vtkMRMLSequenceNode | None = None,
    scalarType: int = vtk.VTK_FLOAT,
) -> slicer.vtkMRMLSequenceNode:
    """Add a volume sequence of ``study`` to ``scene``, with the index values of ``referenceSequenceNode``.

    Without a reference the index is the frame times in seconds (or frame numbers when unknown).
    Voxels are stored as ``scalarType`` where it holds them (:func:`framesAs`).
    """
    sequencesLogic(scene)
    sequence = _buildSequence(study, name, referenceSequenceNode, vtkType=scalarType)
    scene.AddNode(sequence)
    return sequence


def browserForSequence(
    scene: slicer.vtkMRMLScene, sequenceNode: slicer.vtkMRMLSequenceNode
) -> slicer.vtkMRMLSequenceBrowserNode:
    """The first sequence browser showing ``sequenceNode``, created (with a proxy volume) if none does."""
    logic = sequencesLogic(scene)
    browser = logic.GetFirstBrowserNodeForSequenceNode(sequenceNode)
    if browser is None:
        browser = slicer.vtkMRMLSequenceBrowserNode()
        browser.SetName(scene.GenerateUniqueName(f"{sequenceNode.GetName()} browser"))
        scene.AddNode(browser)
        browser.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
        logic.UpdateProxyNodesFromSequences(browser)
    return browser


def _windowLevel(study: Study) -> tuple[float, float]:
    low, high = np.percentile(study.frames, [0.5, 99.5])
    return float(max(high - low, 1e-6)), float((high + low) / 2)


def matchWindowLevel(
    referenceSequenceNode: slicer.vtkMRMLSequenceNode, volumeNodes: Sequence[slicer.vtkMRMLVolumeNode]
) -> tuple[float, float]:
    """Give ``volumeNodes`` one fixed window/level, from the robust intensity range of the reference."""
    window, level = _windowLevel(sequenceToArray(referenceSequenceNode))
    for volume in volumeNodes:
        if volume.GetDisplayNode() is None:
            volume.CreateDefaultDisplayNodes()
        display = volume.GetDisplayNode()
        if display is not None:
            display.SetAutoWindowLevel(False)
            display.SetWindowLevel(window, level)
    return window, level


def _madeFrom(scene: slicer.vtkMRMLScene, inputSequenceNode, role: str) -> list[slicer.vtkMRMLSequenceNode]:
    """Sequences of ``role`` that reference ``inputSequenceNode`` as their source, in scene order."""
    nodes = scene.GetNodesByClass("vtkMRMLSequenceNode")
    found = []
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetAttribute(ROLE) == role and node.GetNodeReference(SOURCE_REFERENCE) is inputSequenceNode:
            found.append(node)
    return found


def _findLowRes(scene, inputSequenceNode, fraction: float) -> slicer.vtkMRMLSequenceNode | None:
    for node in _madeFrom(scene, inputSequenceNode, "lowres"):
        if node.GetAttribute(FRACTION) == f"{fraction:g}":
            return node
    return None


def resultLabel(method: str, name: str = "") -> str:
    """A result's label: the method's name, with the user's ``name`` for the run in brackets."""
    label = METHOD_LABELS.get(method, method)
    return f"{label} ({name.strip()})" if name.strip() else label


def _freeLabel(taken: set[str], label: str) -> str:
    if label not in taken:
        return label
    number = 2
    while f"{label} {number}" in taken:
        number += 1
    return f"{label} {number}"


def _removeResult(scene: slicer.vtkMRMLScene, resultNode: slicer.vtkMRMLSequenceNode) -> None:
    """Remove a result and its uncertainty (its LR series stays: other results may share it)."""
    uncertainty = resultNode.GetNodeReference(UNCERTAINTY_REFERENCE)
    for node in (resultNode, uncertainty):
        if node is not None:
            for browser in _browsersOf(scene, node):
                browser.RemoveSynchronizedSequenceNode(node.GetID())
            scene.RemoveNode(node)


def _browsersOf(scene: slicer.vtkMRMLScene, sequenceNode) -> list:
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    return [
        browsers.GetItemAsObject(i)
        for i in range(browsers.GetNumberOfItems())
        if browsers.GetItemAsObject(i).IsSynchronizedSequenceNode(sequenceNode.GetID(), True)
    ]


def addResultSequences(
    scene: slicer.vtkMRMLScene,
    inputSequenceNode: slicer.vtkMRMLSequenceNode,
    method: str,
    result,
    *,
    lrFraction: float | None = None,
    browserNode: slicer.vtkMRMLSequenceBrowserNode | None = None,
    label: str | None = None,
    replace: bool = False,
) -> slicer.vtkMRMLSequenceNode:
    """Add a super-resolution ``result`` (``.study``, ``.uncertainty``, ``.low_res``) to the input's browser.

    The result (and its uncertainty, when present, and with ``lrFraction`` the simulated LR series,
    shared between methods) become synchronized sequences of the input's sequence browser, each with
    its own proxy volume, the input's index values, the result's geometry and the input's scalar
    type where it holds the values (:func:`framesAs`; the uncertainty stays float). ``label`` names
    the result among the input's results (default: the method's name); a label already taken gets
    a number ("PerfGen 2") unless ``replace`` is set, which removes the earlier result of that label
    and its uncertainty. Everything is built before anything is added or removed. Returns the result
    sequence; the input and the others are node references from it (``PerfGenSRSource``,
    ``PerfGenSRUncertainty``, ``PerfGenSRLowRes``).
    """
    logic = sequencesLogic(scene)
    browser = browserNode or logic.GetFirstBrowserNodeForSequenceNode(inputSequenceNode)
    baseName = inputSequenceNode.GetName()
    earlier = {node.GetAttribute(LABEL): node for node in _madeFrom(scene, inputSequenceNode, "result")}
    label = (label or "").strip() or resultLabel(method)
    replaced = earlier.get(label) if replace else None
    if not replace:
        label = _freeLabel(set(earlier), label)
    inputType = scalarType(inputSequenceNode)
    tags = {METHOD: method, LABEL: label}
    built = {
        "result": _buildSequence(
            result.study, f"{baseName} {label}", inputSequenceNode, {**tags, ROLE: "result"}, inputType
        )
    }
    if result.uncertainty is not None:
        built["uncertainty"] = _buildSequence(
            result.uncertainty, f"{baseName} {label} SD", inputSequenceNode, {**tags, ROLE: "uncertainty"}
        )
    lowRes = None
    if lrFraction is not None:
        lowRes = _findLowRes(scene, inputSequenceNode, lrFraction)
        if lowRes is None:
            built["lowres"] = _buildSequence(
                result.low_res,
                f"{baseName} LR {lrFraction * 100:g}%",
                inputSequenceNode,
                {ROLE: "lowres", FRACTION: f"{lrFraction:g}"},
                inputType,
            )
    if browser is None:
        browser = browserForSequence(scene, inputSequenceNode)
    if replaced is not None:
        _removeResult(scene, replaced)
    for sequence in built.values():
        scene.AddNode(sequence)
        sequence.SetNodeReferenceID(SOURCE_REFERENCE, inputSequenceNode.GetID())
        browser.AddSynchronizedSequenceNodeID(sequence.GetID())
    logic.UpdateProxyNodesFromSequences(browser)
    resultNode = built["result"]
    if "uncertainty" in built:
        resultNode.SetNodeReferenceID(UNCERTAINTY_REFERENCE, built["uncertainty"].GetID())
    lowRes = built.get("lowres", lowRes)
    if lowRes is not None:
        resultNode.SetNodeReferenceID(LOW_RES_REFERENCE, lowRes.GetID())
    shown = [browser.GetProxyNode(built[role]) for role in ("result", "lowres") if role in built]
    matchWindowLevel(inputSequenceNode, [proxy for proxy in shown if proxy is not None])
    return resultNode


def superResolveSequence(
    scene: slicer.vtkMRMLScene,
    inputSequenceNode: slicer.vtkMRMLSequenceNode,
    method: str = "perfgen",
    *,
    model: str | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    samples: int | None = None,
    seed: int = 0,
    device: str = "auto",
    batch: int = 8,
    simulateFraction: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    browserNode: slicer.vtkMRMLSequenceBrowserNode | None = None,
    label: str | None = None,
    replace: bool = False,
) -> slicer.vtkMRMLSequenceNode:
    """Super-resolve a volume sequence in this process; the result joins the input's sequence browser.

    Options mirror ``perfgen-sr super-resolve``; ``simulateFraction`` degrades the input first
    (retrospective use: the input stays as the HR reference, the LR series is added too) and
    ``samples`` > 1 adds an uncertainty (SD) sequence; ``label`` and ``replace`` as in
    :func:`addResultSequences`. The input is never modified; on an error or a cancel
    (:class:`~PerfGenSRLib.errors.Cancelled`) nothing is added to the scene.
    """
    from PerfGenSRLib.sample import super_resolve_study  # torch is imported only when a run is asked for

    if simulateFraction is not None:
        kspace.check_fraction(simulateFraction)
    study = sequenceToArray(inputSequenceNode)
    result = super_resolve_study(
        study,
        method,
        model=model,
        sampler=sampler,
        steps=steps,
        samples=samples,
        seed=seed,
        device=device,
        batch=batch,
        lr_fraction=simulateFraction,
        progress=progress,
        cancel=cancel,
    )
    return addResultSequences(
        scene,
        inputSequenceNode,
        method,
        result,
        lrFraction=simulateFraction,
        browserNode=browserNode,
        label=label,
        replace=replace,
    )


def resultSequences(
    scene: slicer.vtkMRMLScene, inputSequenceNode: slicer.vtkMRMLSequenceNode
) -> dict[str, slicer.vtkMRMLSequenceNode]:
    """The input and the sequences made from it (found by node reference), by label: "Input",
    "LR <f>%", then every result by its label ("PerfGen", "PerfGen 2", ...) in the order they were added."""
    lowRes = {
        f"LR {float(node.GetAttribute(FRACTION)) * 100:g}%": node
        for node in _madeFrom(scene, inputSequenceNode, "lowres")
    }
    results = {node.GetAttribute(LABEL): node for node in _madeFrom(scene, inputSequenceNode, "result")}
    return {"Input": inputSequenceNode, **lowRes, **results}


# --- ROI segments and signal-time curves ----------------------------------------------------------


def createPerfusionSegments(
    scene: slicer.vtkMRMLScene,
    segmentationNode: slicer.vtkMRMLSegmentationNode | None,
    referenceVolumeNode: slicer.vtkMRMLVolumeNode | None,
) -> slicer.vtkMRMLSegmentationNode:
    """Add empty "LV blood", "RV blood" and "Myocardium" segments (standard colours) to draw ROIs into.

    A new segmentation node is added when ``segmentationNode`` is None; segments that already exist
    by name are kept as they are. The reference volume sets the geometry the segments are drawn on.
    """
    segmentationsLogic(scene)
    if segmentationNode is None:
        segmentationNode = slicer.vtkMRMLSegmentationNode()
        segmentationNode.SetName(scene.GenerateUniqueName("Perfusion ROIs"))
        scene.AddNode(segmentationNode)
    if segmentationNode.GetDisplayNode() is None:
        segmentationNode.CreateDefaultDisplayNodes()
    if referenceVolumeNode is not None:
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
    segmentation = segmentationNode.GetSegmentation()
    for name, color in PERFUSION_SEGMENTS:
        if not segmentation.GetSegmentIdBySegmentName(name):
            segmentation.AddEmptySegment(name.replace(" ", "_"), name, list(color))
    return segmentationNode


def _referenceImage(volumeNode: slicer.vtkMRMLVolumeNode) -> slicer.vtkOrientedImageData:
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(volumeNode.GetImageData().GetDimensions())
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    return image


def setSegmentFromMask(
    scene: slicer.vtkMRMLScene,
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    name: str,
    mask: np.ndarray,
    referenceVolumeNode: slicer.vtkMRMLVolumeNode,
    color: Sequence[float] | None = None,
) -> str:
    """Fill the segment ``name`` (added if missing) from a ``(H, W)`` or ``(Z, H, W)`` mask on the
    reference volume's grid, e.g. a phantom's true ROI; returns the segment ID."""
    segmentationsLogic(scene)
    image = _referenceImage(referenceVolumeNode)
    columns, rows, slices = image.GetDimensions()
    mask = np.asarray(mask)
    if mask.size != columns * rows * slices:
        raise PerfGenError(
            f"a {mask.shape} mask does not fit the {slices}x{rows}x{columns} grid of "
            f"'{referenceVolumeNode.GetName()}'"
        )
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = (mask.reshape(-1) > 0).astype(np.uint8)
    segmentation = segmentationNode.GetSegmentation()
    segmentId = segmentation.GetSegmentIdBySegmentName(name)
    if not segmentId:
        segmentId = (
            segmentation.AddEmptySegment(name.replace(" ", "_"), name, list(color))
            if color is not None
            else segmentation.AddEmptySegment(name.replace(" ", "_"), name)
        )
    if not slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        image, segmentationNode, segmentId
    ):
        raise PerfGenError(f"could not set segment '{name}' of '{segmentationNode.GetName()}'")
    return segmentId


def segmentMasks(
    segmentationNode: slicer.vtkMRMLSegmentationNode, volumeNode: slicer.vtkMRMLVolumeNode
) -> dict[str, np.ndarray]:
    """Each non-empty segment rasterised on ``volumeNode``'s grid: name -> boolean ``(Z, H, W)`` mask."""
    segmentationNode.CreateBinaryLabelmapRepresentation()
    segmentation = segmentationNode.GetSegmentation()
    reference = _referenceImage(volumeNode)
    columns, rows, slices = volumeNode.GetImageData().GetDimensions()
    masks = {}
    for segmentId in segmentation.GetSegmentIDs():
        labelmap = slicer.vtkOrientedImageData()
        segmentationNode.GetBinaryLabelmapRepresentation(segmentId, labelmap)
        extent = labelmap.GetExtent()
        if extent[0] > extent[1] or labelmap.GetPointData().GetScalars() is None:
            continue
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference, resampled
        )
        values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars())
        mask = values.reshape(slices, rows, columns) > 0
        if mask.any():
            masks[segmentation.GetSegment(segmentId).GetName()] = mask
    return masks


def _segmentColors(segmentationNode: slicer.vtkMRMLSegmentationNode) -> dict[str, tuple[float, float, float]]:
    segmentation = segmentationNode.GetSegmentation()
    return {
        segmentation.GetSegment(i).GetName(): tuple(segmentation.GetSegment(i).GetColor())
        for i in segmentation.GetSegmentIDs()
    }


def _column(name: str, values: np.ndarray) -> vtk.vtkDoubleArray:
    column = numpy_support.numpy_to_vtk(
        np.asarray(values, dtype=np.float64), deep=True, array_type=vtk.VTK_DOUBLE
    )
    column.SetName(name)
    return column


def signalTimeCurves(
    scene: slicer.vtkMRMLScene,
    sequences: Mapping[str, slicer.vtkMRMLSequenceNode],
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    *,
    tableNode: slicer.vtkMRMLTableNode | None = None,
    chartNode: slicer.vtkMRMLPlotChartNode | None = None,
) -> tuple[slicer.vtkMRMLTableNode, slicer.vtkMRMLPlotChartNode]:
    """Mean signal per ROI (each non-empty segment) per sequence over time, as a table and a chart.

    ``sequences`` maps a method name ("Input", "PerfGen", ...) to its sequence node; all need the
    same number of frames. The table has a time column (seconds where the sequences have times,
    else frame numbers) then one column ``"<ROI> (<method>)"`` per ROI per method; the chart one
    series per column: colour per ROI (the segment's), line style per method. Existing table and
    chart nodes can be passed to be refilled.
    """
    if not sequences:
        raise PerfGenError("no sequences to measure; super-resolve a sequence or choose an input first")
    segmentationsLogic(scene)
    studies = {name: sequenceToArray(node) for name, node in sequences.items()}
    counts = {study.shape[0] for study in studies.values()}
    if len(counts) != 1:
        raise PerfGenError("the sequences have different numbers of frames; compare sequences of one series")
    first = next(iter(studies.values()))
    timed = first.frame_times is not None
    timeName = "Time (s)" if timed else "Frame"
    table = (
        tableNode
        if tableNode is not None
        else scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName("PerfGenSR curves"))
    )
    chart = (
        chartNode
        if chartNode is not None
        else scene.AddNewNodeByClass(
            "vtkMRMLPlotChartNode", scene.GenerateUniqueName("PerfGenSR curves chart")
        )
    )
    colors = _segmentColors(segmentationNode)
    columns, series = [_column(timeName, first.times())], []
    for styleIndex, (method, study) in enumerate(studies.items()):
        masks = segmentMasks(segmentationNode, sequences[method].GetNthDataNode(0))
        if not masks:
            raise PerfGenError(
                f"segmentation '{segmentationNode.GetName()}' has no painted segment on the grid "
                f"of '{sequences[method].GetName()}'; draw the ROIs in the Segment Editor first"
            )
        for roi, mask in masks.items():
            name = f"{roi} ({method})"
            columns.append(_column(name, study.frames[:, mask].mean(axis=1)))
            series.append((name, colors[roi], LINE_STYLES[styleIndex % len(LINE_STYLES)]))
    vtkTable = table.GetTable()
    vtkTable.Initialize()
    for column in columns:
        vtkTable.AddColumn(column)
    table.Modified()
    oldSeries = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    chart.RemoveAllPlotSeriesNodeIDs()
    for node in oldSeries:
        if node is not None and node.GetAttribute(ROLE) == "curve":
            scene.RemoveNode(node)
    for name, color, style in series:
        plot = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(name))
        plot.SetAttribute(ROLE, "curve")
        plot.SetAndObserveTableNodeID(table.GetID())
        plot.SetXColumnName(timeName)
        plot.SetYColumnName(name)
        plot.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        plot.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        plot.SetLineStyle(getattr(slicer.vtkMRMLPlotSeriesNode, style))
        plot.SetColor(*color)
        chart.AddAndObservePlotSeriesNodeID(plot.GetID())
    chart.SetTitle("Signal-time curves")
    chart.SetXAxisTitle(timeName)
    chart.SetYAxisTitle("Mean signal (a.u.)")
    return table, chart


# --- compare views --------------------------------------------------------------------------------


def compareViewNames(count: int) -> list[str]:
    """Layout names of the slice views of the compare layout, one per compared series."""
    return [f"{COMPARE_VIEW_PREFIX}{i + 1}" for i in range(count)]


def compareLayoutDescription(labels: Sequence[str]) -> str:
    """Slicer layout XML with one slice view per label (a single row up to four, else two rows)
    above a plot view for the signal-time curves (:data:`COMPARE_PLOT_VIEW`)."""
    names = compareViewNames(len(labels))
    views = [
        f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">'
        f'<property name="orientation" action="default">Axial</property>'
        f'<property name="viewlabel" action="default">{label}</property>'
        f'<property name="viewcolor" action="default">{COMPARE_VIEW_COLORS[i % len(COMPARE_VIEW_COLORS)]}</property>'
        f"</view></item>"
        for i, (name, label) in enumerate(zip(names, labels, strict=True))
    ]
    half = len(views) if len(views) <= 4 else (len(views) + 1) // 2
    rows = [row for row in (views[:half], views[half:]) if row]
    plot = (
        f'<item splitSize="300"><view class="vtkMRMLPlotViewNode" singletontag="{COMPARE_PLOT_VIEW}">'
        '<property name="viewlabel" action="default">P</property></view></item>'
    )
    return (
        '<layout type="vertical" split="true">'
        + "".join(
            f'<item splitSize="500"><layout type="horizontal">{"".join(row)}</layout></item>' for row in rows
        )
        + plot
        + "</layout>"
    )


def _nodeByLayoutName(scene: slicer.vtkMRMLScene, className: str, layoutName: str):
    nodes = scene.GetNodesByClass(className)
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetLayoutName() == layoutName:
            return node
    return None


def showInCompareViews(
    scene: slicer.vtkMRMLScene,
    volumeNodes: Sequence[slicer.vtkMRMLVolumeNode],
    overlays: Mapping[int, slicer.vtkMRMLVolumeNode] | None = None,
) -> int:
    """Show each volume in its compare view (in the acquisition plane), views linked; returns views set.

    ``overlays`` maps a view's index to a volume shown over it in colour (an uncertainty map's
    proxy: it follows the browser in time like the volume under it). The compare layout's slice and
    slice-composite nodes must exist (Slicer creates them when the layout from
    :func:`compareLayoutDescription` is shown).
    """
    overlays = overlays or {}
    shown = 0
    for index, (name, volume) in enumerate(zip(compareViewNames(len(volumeNodes)), volumeNodes, strict=True)):
        composite = _nodeByLayoutName(scene, "vtkMRMLSliceCompositeNode", name)
        sliceNode = _nodeByLayoutName(scene, "vtkMRMLSliceNode", name)
        if composite is None or sliceNode is None:
            continue
        composite.SetLinkedControl(False)
        composite.SetBackgroundVolumeID(volume.GetID())
        overlay = overlays.get(index)
        composite.SetForegroundVolumeID(overlay.GetID() if overlay is not None else None)
        if overlay is not None:
            _colourOverlay(overlay)
            composite.SetForegroundOpacity(UNCERTAINTY_OPACITY)
        sliceNode.RotateToVolumePlane(volume)
        shown += 1
    for name in compareViewNames(len(volumeNodes)):
        composite = _nodeByLayoutName(scene, "vtkMRMLSliceCompositeNode", name)
        if composite is not None:
            composite.SetLinkedControl(True)
    return shown


def _colourOverlay(volumeNode: slicer.vtkMRMLVolumeNode) -> None:
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()
    display = volumeNode.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID(UNCERTAINTY_COLOR_NODE_ID)
        display.SetAutoWindowLevel(True)


def comparePlotView(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLPlotViewNode | None:
    """The plot view node of the compare layout (Slicer creates it when the layout is shown)."""
    return _nodeByLayoutName(scene, "vtkMRMLPlotViewNode", COMPARE_PLOT_VIEW)


def showChartInCompareView(scene: slicer.vtkMRMLScene, chartNode: slicer.vtkMRMLPlotChartNode) -> bool:
    """Show ``chartNode`` in the compare layout's plot view; False when that view does not exist."""
    plotView = comparePlotView(scene)
    if plotView is None:
        return False
    plotView.SetPlotChartNodeID(chartNode.GetID())
    return True
