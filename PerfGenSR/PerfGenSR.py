"""PerfGenSR: super-resolution of myocardial first-pass perfusion MRI sequences in 3D Slicer.

Thin Slicer module: the panel (Widget) collects settings in a parameter node and runs the engine
in a background process (``PerfGenSRSlicer.process``) polled by a Qt timer; the Logic delegates all
scene work to ``PerfGenSRSlicer.scene`` and all computing to the engine. Opening the panel never
imports torch or safetensors: packages and models are checked by ``PerfGenSRSlicer.engineinfo``
(torch-free) and the devices are asked of an engine process. Both packages are imported inside
functions, so loading the module at Slicer start-up stays light.

Longer than 500 lines because Slicer finds a scripted module's Widget, Logic and Test classes by
name in this one file; everything else lives in ``PerfGenSRSlicer``.
"""

import contextlib
import logging
import shutil
import sys
import time
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
COMPARE_LAYOUT_ID = 8731
PHANTOM_SAMPLE = "PerfGenSRPhantom"
PHANTOM_FILE = Path(__file__).resolve().parent / "Resources" / "SampleData" / f"{PHANTOM_SAMPLE}.seq.nrrd"
PHANTOM_SHA256 = (
    "59b6f06050ec7c868708477a31c8af1b746080a1c0326df3b5b13229a0b8ff98"  # Scripts/make_sample_data.py
)
POLL_INTERVAL_MS = 200
LOG_LINES = 2000  # lines the panel's log keeps


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
    """Add the phantom perfusion study (shipped with the module) to the Sample Data module.

    It is an ordinary sample: a file URI with a checksum, loaded by Slicer's sequence reader (which
    shows the sequence toolbar), so the Sample Data button and ``SampleData.downloadSample`` agree.
    """
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="PerfGenSR",
        sampleName=PHANTOM_SAMPLE,
        uris=PHANTOM_FILE.as_uri(),
        fileNames=PHANTOM_FILE.name,
        nodeNames=PHANTOM_SAMPLE,
        checksums=f"SHA256:{PHANTOM_SHA256}",
        thumbnailFileName=str(Path(__file__).resolve().parent / "Resources" / "Icons" / "PerfGenSR.png"),
        loadFileType="SequenceFile",
    )


@contextlib.contextmanager
def showErrors(message: str, waitCursor: bool = False):
    """``slicer.util.tryWithErrorDisplay``, with engine errors worded for the panel (no CLI flags)."""
    from PerfGenSRSlicer.engineinfo import user_errors

    with slicer.util.tryWithErrorDisplay(message, waitCursor=waitCursor), user_errors():
        yield


#
# Parameter node
#


@parameterNodeWrapper
class PerfGenSRParameterNode:
    """Panel settings, saved with the scene (a model setting of "" means the bundled model)."""

    inputSequence: vtkMRMLSequenceNode
    useZeropad: bool = True
    useGan: bool = False
    usePerfgen: bool = True
    retrospective: bool = False
    lrFraction: Annotated[float, WithinRange(0.05, 1.0)] = 0.35
    outputName: str = ""
    replaceResults: bool = False
    perfgenModel: str = ""
    ganModel: str = ""
    sampler: str = "mean"  # the engine's DEFAULT_SAMPLER (a test keeps them equal)
    steps: Annotated[int, WithinRange(0, 2000)] = 0  # 0: the sampler's default
    samples: Annotated[int, WithinRange(0, 32)] = 0  # 0: PerfGen's default
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    device: str = "auto"
    segmentation: vtkMRMLSegmentationNode


#
# PerfGenSRWidget
#


class PerfGenSRWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: settings, the background run with log, progress and cancel, ROI curves."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # the run in progress: a dict with the job, pending methods, results
        self._curves = (None, None)  # table and chart nodes of the last curves
        self._availableMethods = ["zeropad"]
        self._devices = None  # (label, device) pairs the engine found; None until it answers
        self._deviceProbe = None
        self._deviceWarning = ""
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
        self.ui.logTextEdit.setMaximumBlockCount(LOG_LINES)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        slicer.app.connect("aboutToQuit()", self.onAboutToQuit)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.installButton.connect("clicked(bool)", self.onInstall)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
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
        self.onAboutToQuit()
        self.removeObservers()

    def onAboutToQuit(self) -> None:
        """End every engine process this panel started (Slicer is quitting or the panel goes away)."""
        if self._run is not None:
            self.cancelRun(show=False)
        self._timer.stop()
        from PerfGenSRSlicer import process

        process.cancel_all()

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
            self.cancelRun(show=False)
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

    # --- what the engine offers (never imports torch here) ----------------------------------------

    def refreshEngineChoices(self) -> None:
        """Methods with a model, missing engine packages, and (from an engine process) the devices."""
        self._availableMethods = self.logic.availableMethods()
        missing = self.logic.missingRequirements()
        self.ui.installButton.visible = bool(missing)
        if missing:
            from PerfGenSRSlicer.engineinfo import describe_missing

            self.ui.statusLabel.text = (
                f"The engine needs {describe_missing(missing)}: press Install engine packages."
            )
        elif self._devices is None and self._deviceProbe is None:
            try:
                self._deviceProbe = self.logic.startDeviceProbe()
                self._timer.start()
            except OSError as error:  # no Python to run the engine with: offer the CPU only
                from PerfGenSRSlicer.engineinfo import CPU

                logging.warning(f"PerfGenSR: could not ask the engine for devices ({error})")
                self._devices = [CPU]
        self.updateGUIFromParameterNode()

    def _modelSetting(self, method: str) -> str:
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
        from PerfGenSRSlicer.engineinfo import device_choices

        choices, current, self._deviceWarning = device_choices(parameters.device, self._devices)
        manual = (
            self.ui.samplerComboBox,
            self.ui.deviceComboBox,
            self.ui.perfgenModelPathLineEdit,
            self.ui.ganModelPathLineEdit,
        )
        for widget in manual:
            widget.blockSignals(True)
        self.ui.samplerComboBox.currentText = parameters.sampler
        self.ui.deviceComboBox.clear()
        for label, device in choices:
            self.ui.deviceComboBox.addItem(label, device)
        self.ui.deviceComboBox.setCurrentIndex(current)
        self.ui.perfgenModelPathLineEdit.currentPath = parameters.perfgenModel
        self.ui.ganModelPathLineEdit.currentPath = parameters.ganModel
        for widget in manual:
            widget.blockSignals(False)

        for method, name in METHOD_CHECKBOXES.items():
            getattr(self.ui, name).visible = method in self.shownMethods()
        running = self._run is not None
        methods = self.checkedMethods()
        self.ui.modelInfoLabel.text = self.modelInfoText(methods)
        self.ui.deviceWarningLabel.text = self._deviceWarning
        self.ui.deviceWarningLabel.visible = bool(self._deviceWarning)
        ready = bool(parameters.inputSequence and methods) and not self._deviceWarning
        for widget in (
            self.ui.inputSequenceSelector,
            self.ui.zeropadCheckBox,
            self.ui.ganCheckBox,
            self.ui.perfgenCheckBox,
            self.ui.retrospectiveCheckBox,
            self.ui.outputNameLineEdit,
            self.ui.replaceResultsCheckBox,
            self.ui.advancedCollapsibleGroupBox,
            self.ui.installButton,
            self.ui.loadSampleButton,
            self.ui.segmentationSelector,
        ):
            widget.enabled = not running
        self.ui.lrFractionSpinBox.enabled = not running and parameters.retrospective
        self.ui.samplerComboBox.enabled = "perfgen" in methods
        stochastic = "perfgen" in methods and parameters.sampler != "mean"  # mean: one step, one draw
        self.ui.stepsSpinBox.enabled = self.ui.samplesSpinBox.enabled = stochastic
        self.ui.applyButton.text = "Cancel" if running else "Super-resolve sequence"
        self.ui.applyButton.enabled = running or ready
        self.ui.applyButton.toolTip = (
            "Stop the method running now; the methods finished before it stay in the scene"
            if running
            else "Super-resolve every frame with the checked methods"
            if ready
            else self._deviceWarning or "Choose an input sequence and at least one method"
        )
        self.ui.createSegmentsButton.enabled = not running and bool(parameters.inputSequence)
        self.ui.computeCurvesButton.enabled = not running and bool(
            parameters.inputSequence and parameters.segmentation
        )
        self.ui.saveCsvButton.enabled = self._curves[0] is not None

    def modelInfoText(self, methods: list[str]) -> str:
        """The model each checked learned method would use, with a link to its model card."""
        lines = []
        for method in methods:
            info = self.logic.modelInfo(method, self._modelSetting(method))
            if info is None:
                continue
            card = f' (<a href="{info.card.as_uri()}">model card</a>)' if info.card else ""
            lines.append(f"{self.methodLabel(method)}: {info.summary()}{card}")
        return "<br>".join(lines)

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
            if method in self._availableMethods or self._modelSetting(method)
        ]

    # --- background run --------------------------------------------------------------------------

    def onInstall(self) -> None:
        with showErrors("Installing the engine packages failed.", waitCursor=True):
            if self.logic.installDependencies():
                self.ui.statusLabel.text = "Engine packages installed."
        self.refreshEngineChoices()

    def onLoadSample(self) -> None:
        with showErrors("Loading the sample study failed.", waitCursor=True):
            self._parameterNode.inputSequence = self.logic.loadSample()

    def onApplyButton(self) -> None:
        if self._run is not None:
            self.cancelRun()
            return
        if self.logic.missingRequirements():
            if not self.logic.installDependencies():
                self.ui.statusLabel.text = "PerfGenSR needs PyTorch and its engine packages to run."
                return
            self.refreshEngineChoices()
        parameters, methods = self._parameterNode, self.checkedMethods()
        if not (parameters.inputSequence and methods):
            self.ui.statusLabel.text = "Choose an input sequence and at least one method."
            return
        self.ui.logTextEdit.clear()
        self._run = {
            "input": parameters.inputSequence,
            "pending": methods,
            "count": len(methods),
            "added": [],  # labels of the results already in the scene
            "failed": [],  # "<method> failed: <why>" lines
            "fraction": parameters.lrFraction if parameters.retrospective else None,
            "name": parameters.outputName,
            "replace": parameters.replaceResults,
            "job": None,
        }
        self.ui.progressBar.setMaximum(0)  # busy until the first frame count arrives
        self.startNextMethod()

    def startNextMethod(self) -> None:
        run, parameters = self._run, self._parameterNode
        method = run["pending"].pop(0)
        run["method"] = method
        self.ui.statusLabel.text = f"{self.methodLabel(method)}: starting..."
        self.appendLog(f"--- {self.methodLabel(method)} ---")
        try:
            run["job"] = self.logic.startSuperResolve(
                run["input"],
                method,
                model=self.logic.modelFile(method, self._modelSetting(method)),
                sampler=parameters.sampler,
                steps=parameters.steps or None,
                samples=parameters.samples or None,
                seed=parameters.seed,
                device=parameters.device,
                lrFraction=run["fraction"],
            )
        except Exception as error:  # a PerfGenError from the engine, or an OS error starting it
            from PerfGenSRSlicer.engineinfo import user_message

            self.methodFinished(f"{self.methodLabel(method)} could not start: {user_message(error)}")
            return
        self._timer.start()
        self.updateGUIFromParameterNode()

    def appendLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    def onTimer(self) -> None:
        self.pollDeviceProbe()
        run = self._run
        if run is None or run["job"] is None:
            if self._deviceProbe is None:
                self._timer.stop()
            return
        progress = run["job"].poll()
        for line in run["job"].read_log():
            self.appendLog(line)
        from PerfGenSRSlicer.process import format_duration

        finishedMethods = run["count"] - len(run["pending"]) - 1
        timing = f"{format_duration(progress.elapsed)} elapsed"
        if progress.remaining is not None and not progress.finished:
            timing += f", about {format_duration(progress.remaining)} left"
        counted = f"{progress.done} of {progress.total} frames, " if progress.total else ""
        self.ui.statusLabel.text = (
            f"{self.methodLabel(run['method'])} (method {finishedMethods + 1} of {run['count']}): "
            f"{counted}{timing}"
        )
        if progress.total:
            self.ui.progressBar.setMaximum(progress.total * run["count"])
            self.ui.progressBar.setValue(progress.total * finishedMethods + progress.done)
        if not progress.finished:
            return
        try:
            result = run["job"].result()
        except Exception as error:  # the engine's one-line message (process.engine_error)
            from PerfGenSRSlicer.engineinfo import user_message

            self.methodFinished(f"{self.methodLabel(run['method'])} failed: {user_message(error)}")
            return
        self.methodFinished(result=result)

    def pollDeviceProbe(self) -> None:
        if self._deviceProbe is None or not self._deviceProbe.poll().finished:
            return
        from PerfGenSRSlicer.engineinfo import parse_probe

        self._devices = parse_probe(self._deviceProbe.read_log())
        self._deviceProbe = None
        self.updateGUIFromParameterNode()

    def methodFinished(self, error: str | None = None, result=None) -> None:
        """Add a finished method's result to the scene at once (or note its error), then go on."""
        run = self._run
        run["job"] = None
        if error is not None:
            run["failed"].append(error)
            self.appendLog(error)
        else:
            with showErrors("Adding the result to the scene failed.", waitCursor=True):
                node = self.logic.addResult(
                    run["input"],
                    run["method"],
                    result,
                    lrFraction=run["fraction"],
                    name=run["name"],
                    replace=run["replace"],
                )
                run["added"].append(node.GetName())
        if run["pending"]:
            self.startNextMethod()
        else:
            self.finishRun()

    def cancelRun(self, show: bool = True) -> None:
        """Stop the background process tree of the method running now; finished results stay
        (``show``: in the compare layout; not while the scene closes or Slicer quits)."""
        if self._run and self._run["job"] is not None:
            self._run["job"].cancel()
            self._run["failed"].append(f"{self.methodLabel(self._run['method'])} cancelled")
        self._run["pending"] = []
        self.finishRun(cancelled=True, show=show)

    def finishRun(self, cancelled: bool = False, show: bool = True) -> None:
        """Show what was added and what failed; open the compare layout when anything was added."""
        run, self._run = self._run, None
        self.ui.progressBar.setMaximum(1)
        self.ui.progressBar.setValue(1 if run["added"] and not run["failed"] else 0)
        added = f"Added {', '.join(run['added'])}." if run["added"] else "Nothing was added to the scene."
        self.ui.statusLabel.text = " ".join([*(f"{line}." for line in run["failed"]), added])
        if run["added"] and show:
            with showErrors("Showing the comparison failed.", waitCursor=True):
                self.logic.showComparison(run["input"])
                if self._curves[1] is not None:
                    self.logic.showCurves(run["input"], self._curves[1])
        if run["failed"] and not cancelled:
            slicer.util.errorDisplay(self.ui.statusLabel.text, windowTitle="PerfGenSR")
        self.updateGUIFromParameterNode()

    @staticmethod
    def methodLabel(method: str) -> str:
        """The method's name, as its results are labelled."""
        from PerfGenSRSlicer.results import resultLabel

        return resultLabel(method)

    # --- ROIs and curves -------------------------------------------------------------------------

    def onCreateSegments(self) -> None:
        with showErrors("Creating the ROI segments failed.", waitCursor=True):
            parameters = self._parameterNode
            parameters.segmentation = self.logic.createSegments(
                parameters.segmentation, parameters.inputSequence
            )
            self.logic.openSegmentEditor(parameters.segmentation, parameters.inputSequence)

    def onComputeCurves(self) -> None:
        with showErrors("Computing the curves failed.", waitCursor=True):
            parameters = self._parameterNode
            self._curves = self.logic.computeCurves(
                parameters.inputSequence, parameters.segmentation, *self._curves
            )
            self.logic.showCurves(parameters.inputSequence, self._curves[1])
        self.updateGUIFromParameterNode()

    def onSaveCsv(self) -> None:
        path = qt.QFileDialog.getSaveFileName(
            slicer.util.mainWindow(), "Save signal-time curves", "curves.csv", "CSV files (*.csv)"
        )
        if path:
            with showErrors("Saving the curves failed."):
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

    # --- dependencies and choices (torch-free) ---------------------------------------------------

    @staticmethod
    def missingRequirements() -> dict[str, str]:
        """Engine packages that Slicer's Python lacks or has too old: pip name -> requirement."""
        from PerfGenSRSlicer.engineinfo import missing_requirements

        return missing_requirements()

    def installDependencies(self) -> bool:
        """Install what the engine lacks after the user agrees (torch through PyTorchUtils, with the
        engine's version requirement); True when everything is there."""
        from PerfGenSRSlicer.engineinfo import REQUIREMENTS, TORCH, describe_missing

        missing = self.missingRequirements()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
            f"PerfGenSR's engine needs these Python packages: {describe_missing(missing)}. "
            "Install them now (PyTorch through the PyTorch extension)?",
            windowTitle="PerfGenSR",
        ):
            return False
        others = [requirement for package, requirement in missing.items() if package != TORCH]
        if others:
            slicer.util.pip_install(" ".join(others))  # one string: every Slicer version takes it
        if TORCH in missing:
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                slicer.util.errorDisplay(
                    "PerfGenSR needs PyTorch. Install the PyTorch extension from the Extensions Manager, "
                    "restart Slicer, then press Install engine packages.",
                    windowTitle="PerfGenSR",
                )
                return False
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=f">={REQUIREMENTS[TORCH]}"
            )
            if torch is None:
                return False
        return not self.missingRequirements()

    @staticmethod
    def availableMethods() -> list[str]:
        """Zero-pad, plus the learned methods whose bundled model exists."""
        from PerfGenSRSlicer.engineinfo import available_methods

        return available_methods()

    @staticmethod
    def modelFile(method: str, setting: str) -> str | None:
        """The model file to run ``method`` with for a saved setting (None: the bundled model)."""
        from PerfGenSRSlicer.engineinfo import model_for

        return model_for(method, setting)

    @staticmethod
    def modelInfo(method: str, setting: str):
        """What the model of ``method`` with ``setting`` is (an ``engineinfo.ModelInfo``, or None)."""
        from PerfGenSRSlicer.engineinfo import model_info

        return model_info(method, setting)

    def startDeviceProbe(self):
        """Ask an engine process which devices torch finds (CPU, CUDA GPUs, Apple MPS); poll() it."""
        from PerfGenSRSlicer.engineinfo import probe_command
        from PerfGenSRSlicer.process import BackgroundProcess, engine_environment

        return BackgroundProcess(probe_command(self.pythonExecutable()), env=engine_environment())

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's own Python interpreter (PythonSlicer), which runs the engine in the background."""
        return shutil.which("PythonSlicer") or sys.executable

    # --- super-resolution ------------------------------------------------------------------------

    def startSuperResolve(self, inputSequenceNode, method: str, *, lrFraction=None, **options):
        """Start super-resolving the sequence in a background process (exchange files under Slicer's
        temporary folder); poll(), read_log() and result() the job. ``options``: the other fields of
        ``PerfGenSRLib.defaults.SuperResolveOptions``."""
        from PerfGenSRSlicer.process import SuperResolveJob
        from PerfGenSRSlicer.scene import sequenceToArray

        return SuperResolveJob(
            sequenceToArray(inputSequenceNode),
            method,
            python=self.pythonExecutable(),
            lr_fraction=lrFraction,
            temp_dir=Path(slicer.app.temporaryPath) / "PerfGenSR",
            **options,
        )

    def addResult(self, inputSequenceNode, method, result, lrFraction=None, name="", replace=False):
        """Add one method's result as synchronized sequences of the input's browser, labelled with
        the method and ``name``; ``replace`` replaces an earlier result of that label."""
        from PerfGenSRSlicer import results

        return results.addResultSequences(
            slicer.mrmlScene,
            inputSequenceNode,
            method,
            result,
            lrFraction=lrFraction,
            label=results.resultLabel(method, name),
            replace=replace,
        )

    def superResolve(self, inputSequenceNode, method: str = "perfgen", **options):
        """Super-resolve in this process (blocking; for scripts and tests); options as superResolveSequence."""
        from PerfGenSRSlicer.results import superResolveSequence

        return superResolveSequence(slicer.mrmlScene, inputSequenceNode, method, **options)

    def showComparison(self, inputSequenceNode) -> None:
        """Side-by-side layout: one linked slice view per series (input, LR, each result, one
        window/level, each uncertainty as a colour overlay) above a plot view for the curves."""
        from PerfGenSRSlicer import results, scene, views

        sequences = results.resultSequences(slicer.mrmlScene, inputSequenceNode)
        browser = scene.browserForSequence(slicer.mrmlScene, inputSequenceNode)
        volumes = [browser.GetProxyNode(sequence) for sequence in sequences.values()]
        overlays = {
            index: browser.GetProxyNode(sequence.GetNodeReference(results.UNCERTAINTY_REFERENCE))
            for index, sequence in enumerate(sequences.values())
            if sequence.GetNodeReference(results.UNCERTAINTY_REFERENCE) is not None
        }
        description = views.compareLayoutDescription(list(sequences))
        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        if layoutNode.IsLayoutDescription(COMPARE_LAYOUT_ID):
            layoutNode.SetLayoutDescription(COMPARE_LAYOUT_ID, description)
        else:
            layoutNode.AddLayoutDescription(COMPARE_LAYOUT_ID, description)
        layoutManager.setLayout(COMPARE_LAYOUT_ID)
        views.showInCompareViews(slicer.mrmlScene, volumes, overlays)
        scene.matchWindowLevel(inputSequenceNode, volumes)
        for name in views.compareViewNames(len(volumes)):
            sliceWidget = layoutManager.sliceWidget(name)
            if sliceWidget:
                sliceWidget.sliceLogic().FitSliceToAll()
        slicer.modules.sequences.setToolBarActiveBrowserNode(browser)

    def showCurves(self, inputSequenceNode, chartNode) -> None:
        """Show the curves in the compare layout's plot view (opening that layout if needed)."""
        from PerfGenSRSlicer import views

        if slicer.app.layoutManager().layout != COMPARE_LAYOUT_ID:
            self.showComparison(inputSequenceNode)
        if not views.showChartInCompareView(slicer.mrmlScene, chartNode):
            slicer.modules.plots.logic().ShowChartInLayout(chartNode)

    # --- ROIs and curves -------------------------------------------------------------------------

    def createSegments(self, segmentationNode, inputSequenceNode):
        """LV blood / RV blood / myocardium segments on the input's grid (a new segmentation if None)."""
        from PerfGenSRSlicer import rois, scene

        browser = scene.browserForSequence(slicer.mrmlScene, inputSequenceNode)
        return rois.createPerfusionSegments(
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
        from PerfGenSRSlicer import results, rois

        sequences = results.resultSequences(slicer.mrmlScene, inputSequenceNode)
        reusable = [
            node if node is not None and node.GetScene() is slicer.mrmlScene else None
            for node in (tableNode, chartNode)
        ]  # refill the last curves unless they were deleted
        return rois.signalTimeCurves(
            slicer.mrmlScene, sequences, segmentationNode, tableNode=reusable[0], chartNode=reusable[1]
        )

    @staticmethod
    def saveCurves(tableNode, path: str) -> bool:
        """Write the curves table as CSV."""
        return slicer.util.saveNode(tableNode, path)

    # --- sample data -----------------------------------------------------------------------------

    def loadSample(self):
        """The phantom perfusion study through the Sample Data module, shown with the sequence toolbar."""
        import SampleData

        registerSampleData()  # registering twice is a no-op
        sequence = SampleData.downloadSample(PHANTOM_SAMPLE)
        if sequence.IsA("vtkMRMLSequenceBrowserNode"):  # the reader loads both; take the sequence
            sequence = sequence.GetMasterSequenceNode()
        browser = slicer.modules.sequences.logic().GetFirstBrowserNodeForSequenceNode(sequence)
        if browser is not None:
            slicer.modules.sequences.showSequenceBrowser(browser)
        return sequence


#
# PerfGenSRTest
#


class PerfGenSRTest(ScriptedLoadableModuleTest):
    """Self-test. The first test is the logic on the phantom (also run under slicer-core by pytest);
    the second needs the application: panel, sample data, layouts, the background run."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PerfGenSR_superResolveAndCurves()
        self.setUp()
        self.test_PerfGenSR_inTheApplication()

    def test_PerfGenSR_superResolveAndCurves(self):
        from PerfGenSRLib import phantom
        from PerfGenSRLib.defaults import CURVE_ROIS, ROI_BY_KEY
        from PerfGenSRSlicer import results, rois, scene

        logic = PerfGenSRLogic()
        self.delayDisplay("Loading the phantom perfusion study")
        inputSequence = logic.loadSample()
        frames = inputSequence.GetNumberOfDataNodes()
        self.assertEqual(frames, 40)
        values = [inputSequence.GetNthIndexValue(i) for i in range(frames)]

        if not logic.missingRequirements():
            self.delayDisplay("Zero-pad, retrospective at 35% of the lines")
            zeropad = logic.superResolve(inputSequence, "zeropad", simulateFraction=0.35, device="cpu")
            self.delayDisplay("PerfGen, 2 DDIM steps, 2 samples (an uncertainty map)")
            perfgen = logic.superResolve(
                inputSequence,
                "perfgen",
                model=self._perfgenModel(logic),
                sampler="ddim",
                steps=2,
                samples=2,
                simulateFraction=0.35,
                device="cpu",
            )
            browser = scene.browserForSequence(slicer.mrmlScene, inputSequence)
            for sequence in (
                zeropad,
                perfgen,
                perfgen.GetNodeReference(results.UNCERTAINTY_REFERENCE),
                zeropad.GetNodeReference(results.LOW_RES_REFERENCE),
            ):
                self.assertEqual(
                    [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())], values
                )
                self.assertTrue(browser.IsSynchronizedSequenceNode(sequence.GetID(), True))
                self.assertIsNotNone(browser.GetProxyNode(sequence))
                self.assertIs(sequence.GetNodeReference(results.SOURCE_REFERENCE), inputSequence)
            self.assertIs(
                perfgen.GetNodeReference(results.LOW_RES_REFERENCE),
                zeropad.GetNodeReference(results.LOW_RES_REFERENCE),
            )
            self.assertEqual(scene.scalarType(perfgen), scene.scalarType(inputSequence))  # int16 kept
            logic.showComparison(inputSequence)
        else:
            self.delayDisplay("The engine packages are missing: checking the scene logic without a run")

        self.delayDisplay("ROI segments and signal-time curves")
        segmentation = logic.createSegments(None, inputSequence)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 3)
        reference = scene.browserForSequence(slicer.mrmlScene, inputSequence).GetProxyNode(inputSequence)
        masks = phantom.make_phantom(0, frames=2).masks  # the phantom's true ROIs stand in for drawn ones
        for key in CURVE_ROIS:  # the segments createSegments made, by name
            rois.setSegmentFromMask(
                slicer.mrmlScene, segmentation, ROI_BY_KEY[key].name, masks[key], reference
            )
        painted = len(rois.segmentMasks(segmentation, reference))
        self.assertEqual(painted, len(CURVE_ROIS))
        table, chart = logic.computeCurves(inputSequence, segmentation)
        methods = len(results.resultSequences(slicer.mrmlScene, inputSequence))
        self.assertEqual(table.GetTable().GetNumberOfRows(), frames)
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), painted * methods)
        self.assertEqual(table.GetTable().GetNumberOfColumns(), 1 + painted * methods)
        logging.info("PerfGenSR self-test (logic) passed")
        self.delayDisplay("Test passed")

    def test_PerfGenSR_inTheApplication(self):
        """What only the application shows: run from the Slicer GUI (see README, "Self-test")."""
        from PerfGenSRSlicer import results, rois, scene, views

        torchBefore = "torch" in sys.modules
        self.delayDisplay("Opening the panel does not import torch")
        slicer.util.selectModule("PerfGenSR")
        widget = slicer.modules.PerfGenSRWidget
        self.assertEqual("torch" in sys.modules, torchBefore)  # meaningful in a fresh Slicer session

        self.delayDisplay("The sample study through SampleData, with the sequence toolbar")
        sequence = widget.logic.loadSample()
        self.assertTrue(sequence.IsA("vtkMRMLSequenceNode"))
        self.assertEqual(scene.scalarType(sequence), vtk.VTK_SHORT)
        browser = slicer.modules.sequences.logic().GetFirstBrowserNodeForSequenceNode(sequence)
        self.assertIsNotNone(browser)
        self.assertIs(slicer.modules.sequences.toolBar().activeBrowserNode(), browser)

        self.delayDisplay("The device list comes from an engine process")
        deadline = time.monotonic() + 120
        while widget._devices is None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNotNone(widget._devices)
        self.assertEqual(widget.ui.deviceComboBox.itemData(0), "auto")
        if widget.logic.missingRequirements():
            self.delayDisplay("Engine packages missing: the background run is not tested")
            return

        self.delayDisplay("A zero-pad run in the background: log, per-method results, compare layout")
        parameters = widget._parameterNode
        parameters.inputSequence = sequence
        parameters.useZeropad, parameters.useGan, parameters.usePerfgen = True, False, False
        parameters.retrospective, parameters.outputName = True, "self-test"
        widget.onApplyButton()
        deadline = time.monotonic() + 300
        while widget._run is not None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNone(widget._run)
        self.assertIn("Added", widget.ui.statusLabel.text)
        self.assertTrue(widget.ui.logTextEdit.toPlainText().strip())
        found = results.resultSequences(slicer.mrmlScene, sequence)
        self.assertIn("LR (zero-pad) (self-test)", found)
        layoutManager = slicer.app.layoutManager()
        self.assertEqual(layoutManager.layout, COMPARE_LAYOUT_ID)

        self.delayDisplay("Curves go to the compare layout's plot view; the layout stays")
        segmentation = widget.logic.createSegments(None, sequence)
        from PerfGenSRLib import phantom

        proxy = browser.GetProxyNode(sequence)
        rois.setSegmentFromMask(
            slicer.mrmlScene,
            segmentation,
            "LV blood",
            phantom.make_phantom(0, frames=2).masks["lv_blood"],
            proxy,
        )
        table, chart = widget.logic.computeCurves(sequence, segmentation)
        widget.logic.showCurves(sequence, chart)
        self.assertEqual(layoutManager.layout, COMPARE_LAYOUT_ID)
        plotView = views.comparePlotView(slicer.mrmlScene)
        self.assertIsNotNone(plotView)
        self.assertEqual(plotView.GetPlotChartNodeID(), chart.GetID())
        self.delayDisplay("Test passed")

    def _perfgenModel(self, logic) -> str:
        """The bundled PerfGen model, or a tiny untrained one written for this test."""
        from PerfGenSRSlicer.engineinfo import bundled_model

        bundled = bundled_model("perfgen")
        if bundled is not None:
            return str(bundled)
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
