"""The compare layout: one linked slice view per compared series (each uncertainty map as a colour
overlay on its result) above a plot view for the curves, and the view nodes Slicer makes for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import slicer

COMPARE_VIEW_PREFIX = "PerfGenSRCompare"
COMPARE_VIEW_COLORS = ("#F34A33", "#6EB04B", "#EDD54C", "#4A90D9", "#B35ABF", "#E3A23B", "#45B5AA", "#9A9A9A")
COMPARE_PLOT_VIEW = "PerfGenSRComparePlot"
UNCERTAINTY_COLOR_NODE_ID = "vtkMRMLColorTableNodeIron"  # one of Slicer's built-in colour tables
UNCERTAINTY_OPACITY = 0.5


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
