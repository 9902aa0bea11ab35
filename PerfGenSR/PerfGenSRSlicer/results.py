"""Super-resolved sequences in the scene: a result (with its uncertainty and the simulated LR
series) joins the input's sequence browser, labelled among the input's results and tied to the
input by node references that survive saving and importing the scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import slicer

from PerfGenSRLib import kspace
from PerfGenSRLib.defaults import METHOD_NAMES, SuperResolveOptions

from .scene import (
    ROLE,
    browserForSequence,
    buildSequence,
    matchWindowLevel,
    scalarType,
    sequencesLogic,
    sequenceToArray,
)

if TYPE_CHECKING:
    from PerfGenSRLib.sample import SuperResolution

    from .process import SuperResolveResult

METHOD = "PerfGenSR.Method"  # node attribute: the method that made a result
LABEL = "PerfGenSR.Label"  # the result's name among the input's results ("PerfGen", "PerfGen 2", ...)
FRACTION = "PerfGenSR.Fraction"
SOURCE_REFERENCE = "PerfGenSRSource"  # node reference to the input sequence (survives scene import)
UNCERTAINTY_REFERENCE = "PerfGenSRUncertainty"
LOW_RES_REFERENCE = "PerfGenSRLowRes"


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
    label = METHOD_NAMES.get(method, method)
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
    result: SuperResolution | SuperResolveResult,
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
    type where it holds the values (:func:`.scene.framesAs`; the uncertainty stays float). ``label`` names
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
        "result": buildSequence(
            result.study, f"{baseName} {label}", inputSequenceNode, {**tags, ROLE: "result"}, inputType
        )
    }
    if result.uncertainty is not None:
        built["uncertainty"] = buildSequence(
            result.uncertainty, f"{baseName} {label} SD", inputSequenceNode, {**tags, ROLE: "uncertainty"}
        )
    lowRes = None
    if lrFraction is not None:
        lowRes = _findLowRes(scene, inputSequenceNode, lrFraction)
        if lowRes is None:
            built["lowres"] = buildSequence(
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
    simulateFraction: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    browserNode: slicer.vtkMRMLSequenceBrowserNode | None = None,
    label: str | None = None,
    replace: bool = False,
    **options,
) -> slicer.vtkMRMLSequenceNode:
    """Super-resolve a volume sequence in this process; the result joins the input's sequence browser.

    ``options`` are the other fields of :class:`~PerfGenSRLib.defaults.SuperResolveOptions` (those of
    ``perfgen-sr super-resolve``); ``simulateFraction`` degrades the input first
    (retrospective use: the input stays as the HR reference, the LR series is added too) and
    ``samples`` > 1 adds an uncertainty (SD) sequence; ``label`` and ``replace`` as in
    :func:`addResultSequences`. The input is never modified; on an error or a cancel
    (:class:`~PerfGenSRLib.errors.Cancelled`) nothing is added to the scene.
    """
    from PerfGenSRLib.sample import super_resolve_study  # torch is imported only when a run is asked for

    if simulateFraction is not None:
        kspace.check_fraction(simulateFraction)
    study = sequenceToArray(inputSequenceNode)
    settings = SuperResolveOptions(method, **options)
    result = super_resolve_study(
        study,
        **asdict(settings),
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
