"""Perfusion ROIs and their curves: segments to draw into (or filled from known masks), segments
rasterised to masks on a volume's grid, and mean signal per ROI over time as a table and a plot chart,
with each curve's time to peak and maximal upslope in a second table that the curves table references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from PerfGenSRLib.curves import max_upslope, time_to_peak
from PerfGenSRLib.defaults import CURVE_ROIS, ROI_BY_KEY
from PerfGenSRLib.errors import PerfGenError

from .scene import ROLE, segmentationsLogic, sequenceToArray

MEASURES_REFERENCE = "PerfGenSRCurveMeasures"  # curves table -> its measures table
LINE_STYLES = ("LineStyleSolid", "LineStyleDash", "LineStyleDot", "LineStyleDashDot", "LineStyleDashDotDot")


def createPerfusionSegments(
    scene: slicer.vtkMRMLScene,
    segmentationNode: slicer.vtkMRMLSegmentationNode | None,
    referenceVolumeNode: slicer.vtkMRMLVolumeNode | None,
) -> slicer.vtkMRMLSegmentationNode:
    """Add an empty segment per curve ROI (``defaults.CURVE_ROIS``: LV blood, RV blood, myocardium,
    in their colours) to draw ROIs into.

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
    for roi in (ROI_BY_KEY[key] for key in CURVE_ROIS):
        if not segmentation.GetSegmentIdBySegmentName(roi.name):
            segmentation.AddEmptySegment(roi.name.replace(" ", "_"), roi.name, list(roi.colour))
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


def _fillMeasures(
    scene: slicer.vtkMRMLScene, table: slicer.vtkMRMLTableNode, times: np.ndarray, timed: bool, curves: dict
) -> slicer.vtkMRMLTableNode:
    """The measures table of ``table`` (added and referenced if missing): one row per curve with its
    peak, time to peak and maximal upslope (``PerfGenSRLib.curves``, 1-frame smoothing)."""
    measures = table.GetNodeReference(MEASURES_REFERENCE)
    if measures is None:
        measures = scene.AddNewNodeByClass(
            "vtkMRMLTableNode", scene.GenerateUniqueName(f"{table.GetName()} measures")
        )
        table.SetNodeReferenceID(MEASURES_REFERENCE, measures.GetID())
    unit = "s" if timed else "frame"
    names = vtk.vtkStringArray()
    names.SetName("Curve")
    for name in curves:
        names.InsertNextValue(name)
    vtkTable = measures.GetTable()
    vtkTable.Initialize()
    vtkTable.AddColumn(names)
    for name, values in (
        ("Peak", [float(np.max(c)) for c in curves.values()]),
        (f"Time to peak ({unit})", [time_to_peak(c, times) for c in curves.values()]),
        (f"Max upslope (/{unit})", [max_upslope(c, times) for c in curves.values()]),
    ):
        vtkTable.AddColumn(_column(name, np.asarray(values)))
    measures.Modified()
    return measures


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
    chart nodes can be passed to be refilled. The table references (``MEASURES_REFERENCE``) a
    measures table, refilled with it: one row per curve with its peak, time to peak and maximal
    upslope (in seconds where the sequences have times, else frames).
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
    columns, series, curves = [_column(timeName, first.times())], [], {}
    for styleIndex, (method, study) in enumerate(studies.items()):
        masks = segmentMasks(segmentationNode, sequences[method].GetNthDataNode(0))
        if not masks:
            raise PerfGenError(
                f"segmentation '{segmentationNode.GetName()}' has no painted segment on the grid "
                f"of '{sequences[method].GetName()}'; draw the ROIs in the Segment Editor first"
            )
        for roi, mask in masks.items():
            name = f"{roi} ({method})"
            curves[name] = study.frames[:, mask].mean(axis=1)
            columns.append(_column(name, curves[name]))
            series.append((name, colors[roi], LINE_STYLES[styleIndex % len(LINE_STYLES)]))
    vtkTable = table.GetTable()
    vtkTable.Initialize()
    for column in columns:
        vtkTable.AddColumn(column)
    table.Modified()
    _fillMeasures(scene, table, first.times(), timed, curves)
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
