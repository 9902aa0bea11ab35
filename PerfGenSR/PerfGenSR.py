"""PerfGenSR: super-resolution of myocardial first-pass perfusion MRI sequences in 3D Slicer.

Thin Slicer module: the panel (Widget) collects settings in a parameter node and runs the engine
in a background process (``PerfGenSRSlicer.process``) polled by a Qt timer; the Logic delegates all
scene work to ``PerfGenSRSlicer.scene`` and all computing to the engine. PerfGenSRLib is imported
inside functions, so loading the module at Slicer start-up stays light and never needs PyTorch.
"""

import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLSegmentationNode, vtkMRMLSequenceNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

METHOD_CHECKBOXES = {"zeropad": "zeropadCheckBox", "gan": "ganCheckBox", "perfgen": "perfgenCheckBox"}
MODEL_PATH_EDITS = {"gan": "ganModelPathLineEdit", "perfgen": "perfgenModelPathLineEdit"}
ENGINE_PACKAGES = {"scipy": "scipy", "safetensors": "safetensors", "tqdm": "tqdm"}  # import name: pip name
COMPARE_LAYOUT_ID = 8731
PHANTOM_SAMPLE = "PerfGenSRPhantom"
PHANTOM_ROIS = {"LV blood": "lv_blood", "RV blood": "rv_blood", "Myocardium": "myocardium"}  # segment: mask
POLL_INTERVAL_MS = 200


#
# PerfGenSR
#


class PerfGenSR(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "PerfGenSR"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences", "Segmentations", "Plots"]
        self.parent.contributors = ["PerfGenSR contributors"]
        self.parent.helpText = (
            "Super-resolve a first-pass myocardial perfusion MRI series (a volume sequence) with PerfGen, a "
            "conditional diffusion model, or the GAN and zero-padding baselines; compare them side by side "
            "while scrubbing through time, draw LV / RV / myocardium ROIs and read their signal-time curves. "
            "Runs in the background: the button turns into Cancel while it works."
        )
        self.parent.acknowledgementText = (
            "Implements PerfGen (Sun et al., 2025: diffusion super-resolution of myocardial perfusion MRI). "
            "Uses the PyTorch extension (PyTorchUtils) to install PyTorch."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the phantom perfusion study to the Sample Data module (generated on first use, no download)."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="PerfGenSR",
        sampleName=PHANTOM_SAMPLE,
        uris="generated:perfgensr-phantom",
        fileNames=f"{PHANTOM_SAMPLE}.nii.gz",
        nodeNames=PHANTOM_SAMPLE,
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "PerfGenSR.png"),
        loadFileType="SequenceFile",
        customDownloader=lambda source: PerfGenSRLogic().loadPhantom(),
    )


#
# Parameter node
#


@parameterNodeWrapper
class PerfGenSRParameterNode:
    """Panel settings, saved with the scene."""

    inputSequence: vtkMRMLSequenceNode
    useZeropad: bool = True
    useGan: bool = False
    usePerfgen: bool = True
    retrospective: bool = False
    lrFraction: Annotated[float, WithinRange(0.05, 1.0)] = 0.35
    perfgenModel: str = ""
    ganModel: str = ""
    sampler: str = "ddim"
    steps: Annotated[int, WithinRange(0, 2000)] = 0  # 0: the sampler's default
    samples: Annotated[int, WithinRange(0, 32)] = 0  # 0: PerfGen's default
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    device: str = "auto"
    segmentation: vtkMRMLSegmentationNode


#
# PerfGenSRWidget
#


class PerfGenSRWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: settings, the background run with progress and cancel, ROI curves."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # the run in progress: a dict with the job, pending methods, results
        self._curves = (None, None)  # table and chart nodes of the last curves
        self._availableMethods = []  # zero-pad, and the learned methods whose bundled model exists
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onTimer)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PerfGenSR.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = PerfGenSRLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.installTorchButton.connect("clicked(bool)", self.onInstallTorch)
        self.ui.createSegmentsButton.connect("clicked(bool)", self.onCreateSegments)
        self.ui.computeCurvesButton.connect("clicked(bool)", self.onComputeCurves)
        self.ui.saveCsvButton.connect("clicked(bool)", self.onSaveCsv)
        self.ui.openTrainingButton.connect(
            "clicked(bool)", lambda: slicer.util.selectModule("PerfGenSRTrain")
        )
        self.ui.samplerComboBox.connect("currentIndexChanged(int)", self.onManualSettingChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onManualSettingChanged)
        for name in MODEL_PATH_EDITS.values():
            getattr(self.ui, name).connect("currentPathChanged(QString)", self.onManualSettingChanged)

        self.ui.progressBar.setMaximum(1)
        self.ui.progressBar.setValue(0)
        self.initializeParameterNode()
        self.refreshEngineChoices()

    def cleanup(self) -> None:
        if self._run is not None:
            self.cancelRun()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode
            )

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self.cancelRun()
        self._curves = (None, None)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputSequence:
            self._parameterNode.inputSequence = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceNode")

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode
            )
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode
            )
            self.updateGUIFromParameterNode()

    # --- settings the parameter node wrapper does not connect by itself -----------------------------

    def refreshEngineChoices(self) -> None:
        """Show the methods whose models are available, the devices torch finds, the bundled models."""
        torchInstalled = self.logic.torchInstalled()
        available = self.logic.availableMethods() if torchInstalled else []
        self.ui.installTorchButton.visible = not torchInstalled or bool(self.logic.missingEnginePackages())
        if self._parameterNode:
            for method in MODEL_PATH_EDITS:
                attribute = f"{method}Model"
                if not getattr(self._parameterNode, attribute):
                    setattr(
                        self._parameterNode,
                        attribute,
                        self.logic.bundledModelPath(method) if torchInstalled else "",
                    )
        self._availableMethods = available
        wasBlocked = self.ui.deviceComboBox.blockSignals(True)
        self.ui.deviceComboBox.clear()
        for label, device in self.logic.devices():
            self.ui.deviceComboBox.addItem(label, device)
        self.ui.deviceComboBox.blockSignals(wasBlocked)
        if not torchInstalled:
            self.ui.statusLabel.text = "PyTorch is not installed: press Install PyTorch to set it up."
        self.updateGUIFromParameterNode()

    def _modelPath(self, method: str) -> str:
        return getattr(self._parameterNode, f"{method}Model", "") if self._parameterNode else ""

    def onManualSettingChanged(self, *args) -> None:
        if not self._parameterNode:
            return
        # read every widget first: each assignment below refreshes the panel from the parameter node
        sampler, device = self.ui.samplerComboBox.currentText, self.ui.deviceComboBox.currentData or "auto"
        models = {method: getattr(self.ui, name).currentPath for method, name in MODEL_PATH_EDITS.items()}
        self._parameterNode.sampler = sampler
        self._parameterNode.device = device
        for method, path in models.items():
            setattr(self._parameterNode, f"{method}Model", path)

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        parameters = self._parameterNode
        if not parameters:
            return
        for widget in (
            self.ui.samplerComboBox,
            self.ui.deviceComboBox,
            self.ui.perfgenModelPathLineEdit,
            self.ui.ganModelPathLineEdit,
        ):
            widget.blockSignals(True)
        self.ui.samplerComboBox.currentText = parameters.sampler
        self.ui.deviceComboBox.setCurrentIndex(max(0, self.ui.deviceComboBox.findData(parameters.device)))
        self.ui.perfgenModelPathLineEdit.currentPath = parameters.perfgenModel
        self.ui.ganModelPathLineEdit.currentPath = parameters.ganModel
        for widget in (
            self.ui.samplerComboBox,
            self.ui.deviceComboBox,
            self.ui.perfgenModelPathLineEdit,
            self.ui.ganModelPathLineEdit,
        ):
            widget.blockSignals(False)

        for method, name in METHOD_CHECKBOXES.items():
            getattr(self.ui, name).visible = method in self.shownMethods()
        running = self._run is not None
        methods = self.checkedMethods()
        ready = bool(parameters.inputSequence and methods)
        for widget in (
            self.ui.inputSequenceSelector,
            self.ui.zeropadCheckBox,
            self.ui.ganCheckBox,
            self.ui.perfgenCheckBox,
            self.ui.retrospectiveCheckBox,
            self.ui.advancedCollapsibleGroupBox,
            self.ui.installTorchButton,
            self.ui.segmentationSelector,
        ):
            widget.enabled = not running
        self.ui.lrFractionSpinBox.enabled = not running and parameters.retrospective
        self.ui.samplerComboBox.enabled = self.ui.stepsSpinBox.enabled = "perfgen" in methods
        self.ui.applyButton.text = "Cancel" if running else "Super-resolve sequence"
        self.ui.applyButton.enabled = running or ready
        self.ui.applyButton.toolTip = (
            "Stop the run; nothing is added to the scene"
            if running
            else "Super-resolve every frame with the checked methods"
            if ready
            else "Choose an input sequence and at least one method"
        )
        self.ui.createSegmentsButton.enabled = not running and bool(parameters.inputSequence)
        self.ui.computeCurvesButton.enabled = not running and bool(
            parameters.inputSequence and parameters.segmentation
        )
        self.ui.saveCsvButton.enabled = self._curves[0] is not None

    def checkedMethods(self) -> list[str]:
        """Methods checked and shown in the panel, in a fixed order."""
        return [
            method
            for method, name in METHOD_CHECKBOXES.items()
            if method in self.shownMethods() and getattr(self.ui, name).checked
        ]

    def shownMethods(self) -> list[str]:
        """Methods offered in the panel: those with a bundled model, and learned ones given a model file."""
        return [
            method
            for method in METHOD_CHECKBOXES
            if method in self._availableMethods or (self._availableMethods and self._modelPath(method))
        ]

    # --- background run --------------------------------------------------------------------------

    def onInstallTorch(self) -> None:
        with slicer.util.tryWithErrorDisplay("Installing PyTorch failed.", waitCursor=True):
            if self.logic.installDependencies():
                self.ui.statusLabel.text = "Dependencies installed."
        self.refreshEngineChoices()

    def onApplyButton(self) -> None:
        if self._run is not None:
            self.cancelRun()
            return
        if not self.logic.torchInstalled() or self.logic.missingEnginePackages():
            if not self.logic.installDependencies():
                self.ui.statusLabel.text = "PerfGenSR needs PyTorch and its engine packages to run."
                return
            self.refreshEngineChoices()
        parameters, methods = self._parameterNode, self.checkedMethods()
        if not (parameters.inputSequence and methods):
            self.ui.statusLabel.text = "Choose an input sequence and at least one method."
            return
        self._run = {
            "input": parameters.inputSequence,
            "pending": methods,
            "count": len(methods),
            "results": [],
            "fraction": parameters.lrFraction if parameters.retrospective else None,
            "job": None,
        }
        self.ui.progressBar.setMaximum(0)  # busy until the first frame count arrives
        self.startNextMethod()

    def startNextMethod(self) -> None:
        run, parameters = self._run, self._parameterNode
        method = run["pending"].pop(0)
        run["method"] = method
        self.ui.statusLabel.text = f"{self.methodLabel(method)}: starting..."
        try:
            run["job"] = self.logic.startSuperResolve(
                run["input"],
                method,
                model=self._modelPath(method) or None,
                sampler=parameters.sampler,
                steps=parameters.steps or None,
                samples=parameters.samples or None,
                seed=parameters.seed,
                device=parameters.device,
                lrFraction=run["fraction"],
            )
        except Exception as error:  # a PerfGenError from the engine, or an OS error starting it
            self.finishRun(f"{self.methodLabel(method)} could not start: {error}")
            return
        self._timer.start()
        self.updateGUIFromParameterNode()

    def onTimer(self) -> None:
        run = self._run
        if run is None or run["job"] is None:
            self._timer.stop()
            return
        progress = run["job"].poll()
        finishedMethods = run["count"] - len(run["pending"]) - 1
        if progress.total:
            self.ui.progressBar.setMaximum(progress.total * run["count"])
            self.ui.progressBar.setValue(progress.total * finishedMethods + progress.done)
            self.ui.statusLabel.text = (
                f"{self.methodLabel(run['method'])}: {progress.done} of {progress.total} "
                f"frames (method {finishedMethods + 1} of {run['count']})"
            )
        if not progress.finished:
            return
        self._timer.stop()
        try:
            run["results"].append((run["method"], run["job"].result()))
        except Exception as error:  # the engine's one-line message
            self.finishRun(f"{self.methodLabel(run['method'])} failed: {error}")
            return
        if run["pending"]:
            self.startNextMethod()
        else:
            self.finishRun()

    def cancelRun(self) -> None:
        """Stop the background process tree; nothing is added to the scene."""
        if self._run and self._run["job"] is not None:
            self._run["job"].cancel()
        self.finishRun("Cancelled; nothing was added to the scene.", show=False)

    def finishRun(self, error: str | None = None, show: bool = True) -> None:
        """Add all results at once on success; on failure say why and add nothing."""
        run, self._run = self._run, None
        self._timer.stop()
        self.ui.progressBar.setMaximum(1)
        self.ui.progressBar.setValue(1 if error is None else 0)
        if error is not None:
            self.ui.statusLabel.text = error if not show else f"{error} Nothing was added to the scene."
            if show:
                slicer.util.errorDisplay(error, windowTitle="PerfGenSR")
        else:
            with slicer.util.tryWithErrorDisplay("Adding the results to the scene failed.", waitCursor=True):
                self.logic.addResults(run["input"], run["results"], run["fraction"])
                self.logic.showComparison(run["input"])
                labels = ", ".join(self.methodLabel(method) for method, _ in run["results"])
                self.ui.statusLabel.text = (
                    f"Done: {labels} added to the sequence browser of '{run['input'].GetName()}'."
                )
        self.updateGUIFromParameterNode()

    @staticmethod
    def methodLabel(method: str) -> str:
        return {"zeropad": "Zero-pad", "gan": "GAN", "perfgen": "PerfGen"}.get(method, method)

    # --- ROIs and curves -------------------------------------------------------------------------

    def onCreateSegments(self) -> None:
        with slicer.util.tryWithErrorDisplay("Creating the ROI segments failed.", waitCursor=True):
            parameters = self._parameterNode
            parameters.segmentation = self.logic.createSegments(
                parameters.segmentation, parameters.inputSequence
            )
            self.logic.openSegmentEditor(parameters.segmentation, parameters.inputSequence)

    def onComputeCurves(self) -> None:
        with slicer.util.tryWithErrorDisplay("Computing the curves failed.", waitCursor=True):
            parameters = self._parameterNode
            self._curves = self.logic.computeCurves(
                parameters.inputSequence, parameters.segmentation, *self._curves
            )
            slicer.modules.plots.logic().ShowChartInLayout(self._curves[1])
        self.updateGUIFromParameterNode()

    def onSaveCsv(self) -> None:
        path = qt.QFileDialog.getSaveFileName(
            slicer.util.mainWindow(), "Save signal-time curves", "curves.csv", "CSV files (*.csv)"
        )
        if path:
            with slicer.util.tryWithErrorDisplay("Saving the curves failed."):
                if not self.logic.saveCurves(self._curves[0], path):
                    raise RuntimeError(f"could not write {path}")
                self.ui.statusLabel.text = f"Curves saved to {path}."


#
# PerfGenSRLogic
#


class PerfGenSRLogic(ScriptedLoadableModuleLogic):
    """What the module does, usable without the panel (scripts, the self-test)."""

    def getParameterNode(self) -> PerfGenSRParameterNode:
        return PerfGenSRParameterNode(super().getParameterNode())

    # --- dependencies and choices ----------------------------------------------------------------

    @staticmethod
    def torchInstalled() -> bool:
        """Whether PyTorch can be imported (checked without importing it)."""
        return importlib.util.find_spec("torch") is not None

    @staticmethod
    def missingEnginePackages() -> list[str]:
        """pip names of the engine's packages that Slicer's Python lacks."""
        return [pip for module, pip in ENGINE_PACKAGES.items() if importlib.util.find_spec(module) is None]

    def installDependencies(self) -> bool:
        """Offer to install what the engine lacks, each step after the user's confirmation; True when ready."""
        missing = self.missingEnginePackages()
        if missing:
            if not slicer.util.confirmOkCancelDisplay(
                f"PerfGenSR needs these Python packages: {', '.join(missing)}. Install them now with pip?",
                windowTitle="PerfGenSR",
            ):
                return False
            slicer.util.pip_install(missing)
        if not self.torchInstalled():
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                slicer.util.errorDisplay(
                    "PerfGenSR needs PyTorch. Install the PyTorch extension from the Extensions Manager, restart "
                    "Slicer, then press Install PyTorch.",
                    windowTitle="PerfGenSR",
                )
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
                return False
        return True

    def availableMethods(self) -> list[str]:
        """Methods usable now: zero-pad, plus the learned methods whose bundled model exists."""
        from PerfGenSRLib.sample import available_methods

        return available_methods()

    def bundledModelPath(self, method: str) -> str:
        """Path of the bundled model of ``method``, or '' when there is none."""
        from PerfGenSRLib.models import bundled_model_path, has_bundled_model

        return str(bundled_model_path(method)) if has_bundled_model(method) else ""

    def devices(self) -> list[tuple[str, str]]:
        """(label, device) choices: auto, the CPU, and each CUDA GPU (torch is asked only if installed)."""
        choices = [("auto", "auto"), ("CPU", "cpu")]
        if self.torchInstalled():
            import torch

            choices += [
                (f"GPU {i}: {torch.cuda.get_device_name(i)}", f"cuda:{i}")
                for i in range(torch.cuda.device_count())
            ]
        return choices

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's own Python interpreter (PythonSlicer), which runs the engine in the background."""
        return shutil.which("PythonSlicer") or sys.executable

    # --- super-resolution ------------------------------------------------------------------------

    def startSuperResolve(
        self,
        inputSequenceNode,
        method: str,
        *,
        model=None,
        sampler="ddim",
        steps=None,
        samples=None,
        seed=0,
        device="auto",
        lrFraction=None,
    ):
        """Start super-resolving the sequence in a background process; poll() and result() the job."""
        from PerfGenSRSlicer.process import SuperResolveJob
        from PerfGenSRSlicer.scene import sequenceToArray

        return SuperResolveJob(
            sequenceToArray(inputSequenceNode),
            method,
            python=self.pythonExecutable(),
            model=model,
            sampler=sampler,
            steps=steps,
            samples=samples,
            seed=seed,
            device=device,
            lr_fraction=lrFraction,
        )

    def addResults(self, inputSequenceNode, results, lrFraction=None) -> list:
        """Add (method, result) pairs as synchronized sequences of the input's browser."""
        from PerfGenSRSlicer.scene import addResultSequences

        return [
            addResultSequences(slicer.mrmlScene, inputSequenceNode, method, result, lrFraction=lrFraction)
            for method, result in results
        ]

    def superResolve(self, inputSequenceNode, method: str = "perfgen", **options):
        """Super-resolve in this process (blocking; for scripts and tests); options as superResolveSequence."""
        from PerfGenSRSlicer.scene import superResolveSequence

        return superResolveSequence(slicer.mrmlScene, inputSequenceNode, method, **options)

    def showComparison(self, inputSequenceNode) -> None:
        """Side-by-side layout: one linked slice view per series (input, LR, each method), one window/level."""
        from PerfGenSRSlicer import scene

        sequences = scene.resultSequences(slicer.mrmlScene, inputSequenceNode)
        browser = scene.browserForSequence(slicer.mrmlScene, inputSequenceNode)
        volumes = [browser.GetProxyNode(sequence) for sequence in sequences.values()]
        description = scene.compareLayoutDescription(list(sequences))
        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        if layoutNode.IsLayoutDescription(COMPARE_LAYOUT_ID):
            layoutNode.SetLayoutDescription(COMPARE_LAYOUT_ID, description)
        else:
            layoutNode.AddLayoutDescription(COMPARE_LAYOUT_ID, description)
        layoutManager.setLayout(COMPARE_LAYOUT_ID)
        scene.showInCompareViews(slicer.mrmlScene, volumes)
        scene.matchWindowLevel(inputSequenceNode, volumes)
        for name in scene.compareViewNames(len(volumes)):
            sliceWidget = layoutManager.sliceWidget(name)
            if sliceWidget:
                sliceWidget.sliceLogic().FitSliceToAll()
        slicer.modules.sequences.setToolBarActiveBrowserNode(browser)

    # --- ROIs and curves -------------------------------------------------------------------------

    def createSegments(self, segmentationNode, inputSequenceNode):
        """LV blood / RV blood / myocardium segments on the input's grid (a new segmentation if None)."""
        from PerfGenSRSlicer import scene

        browser = scene.browserForSequence(slicer.mrmlScene, inputSequenceNode)
        return scene.createPerfusionSegments(
            slicer.mrmlScene, segmentationNode, browser.GetProxyNode(inputSequenceNode)
        )

    def openSegmentEditor(self, segmentationNode, inputSequenceNode) -> None:
        """Switch to the Segment Editor, drawing into ``segmentationNode`` over the input's proxy volume."""
        from PerfGenSRSlicer import scene

        proxy = scene.browserForSequence(slicer.mrmlScene, inputSequenceNode).GetProxyNode(inputSequenceNode)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentationNode)
        editor.setSourceVolumeNode(proxy)

    def computeCurves(self, inputSequenceNode, segmentationNode, tableNode=None, chartNode=None):
        """Signal-time curves of each ROI for the input and every result made from it: (table, chart)."""
        from PerfGenSRSlicer import scene

        sequences = scene.resultSequences(slicer.mrmlScene, inputSequenceNode)
        reusable = [
            node if node is not None and node.GetScene() is slicer.mrmlScene else None
            for node in (tableNode, chartNode)
        ]  # refill the last curves unless they were deleted
        return scene.signalTimeCurves(
            slicer.mrmlScene, sequences, segmentationNode, tableNode=reusable[0], chartNode=reusable[1]
        )

    @staticmethod
    def saveCurves(tableNode, path: str) -> bool:
        """Write the curves table as CSV."""
        return slicer.util.saveNode(tableNode, path)

    # --- sample data -----------------------------------------------------------------------------

    def loadPhantom(self, frames: int = 40, seed: int = 0):
        """A phantom perfusion study as a sequence with its browser (generated into the cache on first use)."""
        from PerfGenSRLib import io, phantom
        from PerfGenSRSlicer import scene

        cache = Path(slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory())
        path = cache / f"{PHANTOM_SAMPLE}-seed{seed}-{frames}frames-v2.nii.gz"  # v2: 2D+t written as 4D NIfTI
        if not path.exists():
            io.write_study(phantom.make_phantom(seed, frames=frames).to_study(), path)
        sequence = scene.studyToSequence(slicer.mrmlScene, io.read_study(path), PHANTOM_SAMPLE)
        browser = scene.browserForSequence(slicer.mrmlScene, sequence)
        slicer.util.setSliceViewerLayers(background=browser.GetProxyNode(sequence), fit=True)
        return sequence


#
# PerfGenSRTest
#


class PerfGenSRTest(ScriptedLoadableModuleTest):
    """Self-test: phantom sequence in, zero-pad and PerfGen (few steps) through the logic, curves out."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PerfGenSR_superResolveAndCurves()

    def test_PerfGenSR_superResolveAndCurves(self):
        from PerfGenSRLib import phantom
        from PerfGenSRSlicer import scene

        logic = PerfGenSRLogic()
        self.delayDisplay("Loading the phantom perfusion study")
        inputSequence = logic.loadPhantom(frames=6)
        frames = inputSequence.GetNumberOfDataNodes()
        self.assertEqual(frames, 6)
        values = [inputSequence.GetNthIndexValue(i) for i in range(frames)]

        if logic.torchInstalled():
            self.delayDisplay("Zero-pad, retrospective at 35% of the lines")
            zeropad = logic.superResolve(inputSequence, "zeropad", simulateFraction=0.35, device="cpu")
            self.delayDisplay("PerfGen, 2 DDIM steps, 2 samples")
            perfgen = logic.superResolve(
                inputSequence,
                "perfgen",
                model=self._perfgenModel(logic),
                steps=2,
                samples=2,
                simulateFraction=0.35,
                device="cpu",
            )
            browser = scene.browserForSequence(slicer.mrmlScene, inputSequence)
            for sequence in (
                zeropad,
                perfgen,
                perfgen.GetNodeReference(scene.UNCERTAINTY_REFERENCE),
                zeropad.GetNodeReference(scene.LOW_RES_REFERENCE),
            ):
                self.assertEqual(
                    [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())], values
                )
                self.assertTrue(browser.IsSynchronizedSequenceNode(sequence.GetID(), True))
                self.assertIsNotNone(browser.GetProxyNode(sequence))
            self.assertIs(
                perfgen.GetNodeReference(scene.LOW_RES_REFERENCE),
                zeropad.GetNodeReference(scene.LOW_RES_REFERENCE),
            )
            logic.showComparison(inputSequence)
        else:
            self.delayDisplay("PyTorch is not installed: checking the scene logic without super-resolution")

        self.delayDisplay("ROI segments and signal-time curves")
        segmentation = logic.createSegments(None, inputSequence)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 3)
        reference = scene.browserForSequence(slicer.mrmlScene, inputSequence).GetProxyNode(inputSequence)
        masks = phantom.make_phantom(0, frames=6).masks  # the phantom's true ROIs stand in for drawn ones
        for segmentName, maskName in PHANTOM_ROIS.items():
            scene.setSegmentFromMask(slicer.mrmlScene, segmentation, segmentName, masks[maskName], reference)
        rois = len(scene.segmentMasks(segmentation, reference))
        self.assertEqual(rois, len(PHANTOM_ROIS))
        table, chart = logic.computeCurves(inputSequence, segmentation)
        methods = len(scene.resultSequences(slicer.mrmlScene, inputSequence))
        self.assertEqual(table.GetTable().GetNumberOfRows(), frames)
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), rois * methods)
        self.assertEqual(table.GetTable().GetNumberOfColumns(), 1 + rois * methods)
        logging.info("PerfGenSR self-test passed")
        self.delayDisplay("Test passed")

    def _perfgenModel(self, logic) -> str:
        """The bundled PerfGen model, or a tiny untrained one written for this test."""
        bundled = logic.bundledModelPath("perfgen")
        if bundled:
            return bundled
        from PerfGenSRLib.models import save_model
        from PerfGenSRLib.schedule import DiffusionSchedule
        from PerfGenSRLib.unet import PRESETS, UNet

        path = Path(slicer.app.temporaryPath) / "PerfGenSRTest" / "perfgen-tiny.safetensors"
        save_model(
            path,
            UNet(PRESETS["tiny"]),
            "perfgen-unet",
            PRESETS["tiny"],
            extra={"schedule": DiffusionSchedule().config()},
        )
        return str(path)
