"""Volume sequences to and from :class:`~PerfGenSRLib.io.Study`, the module logics a scene needs,
sequence browsers and window/level: what the other ``PerfGenSRSlicer`` MRML modules build on.

Geometry: MRML volumes are in RAS; a :class:`Study` carries LPS geometry like every other study in
PerfGenSR (SimpleITK, DICOM), so a study read here can be written with :func:`io.write_study` as is.
The conversion flips the first two axes both ways and is exact.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.study import Study, validate_frames

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
ROLE = "PerfGenSR.Role"  # node attribute: what PerfGenSR made a node as ("result", "uncertainty", "lowres", "curve")
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


def buildSequence(
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
    sequence = buildSequence(study, name, referenceSequenceNode, vtkType=scalarType)
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
