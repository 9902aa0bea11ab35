"""What can be checked here of the parts only Slicer loads: the panel (.ui) and the module agree on
widget and parameter names, PerfGenSR.py compiles, imports only Slicer, the standard library and the
engine at module level, and does no numerics; the training CLI module's XML matches its script,
which turns engine progress into Slicer progress; the CMake files name what exists."""

import ast
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import vtk

ROOT = Path(__file__).resolve().parents[3]
MODULE = ROOT / "PerfGenSR" / "PerfGenSR.py"
UI = ROOT / "PerfGenSR" / "Resources" / "UI" / "PerfGenSR.ui"
ICON = ROOT / "PerfGenSR" / "Resources" / "Icons" / "PerfGenSR.png"
TRAIN_DIR = ROOT / "PerfGenSRTrain"
SLICER_MODULES = {"slicer", "qt", "ctk", "vtk", "SampleData", "PyTorchUtils"}
WIDGET_TYPES = {  # parameter type each widget class holds
    "QCheckBox": {"bool"},
    "QSpinBox": {"int"},
    "QDoubleSpinBox": {"float"},
    "QLineEdit": {"str"},
    "qMRMLNodeComboBox": {"vtkMRMLSequenceNode", "vtkMRMLSegmentationNode"},
}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE.read_text(), filename=str(MODULE))


@pytest.fixture(scope="module")
def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def module_constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in PerfGenSR.py")


def ui_names_used(tree: ast.Module) -> set[str]:
    """Every widget the module looks up: self.ui.<name>, plus the names it reaches with getattr."""
    names = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    names |= set(module_constant(tree, "METHOD_CHECKBOXES").values())
    names |= set(module_constant(tree, "MODEL_PATH_EDITS").values())
    return names


def parameter_fields(tree: ast.Module) -> dict[str, str]:
    """Fields of the parameter node wrapper class: name -> base type name."""
    cls = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "PerfGenSRParameterNode"
    )
    fields = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign):
            annotation = node.annotation
            if isinstance(annotation, ast.Subscript):  # Annotated[type, ...]
                annotation = annotation.slice.elts[0]
            fields[node.target.id] = annotation.id
    return fields


def test_ui_is_well_formed_and_has_every_widget_the_module_uses(tree, ui_widgets):
    root = ET.parse(UI).getroot()
    assert root.tag == "ui" and root.find("widget").get("class") == "qMRMLWidget"
    used = ui_names_used(tree)
    assert {"applyButton", "progressBar", "statusLabel", "inputSequenceSelector", "deviceComboBox"} <= used
    missing = sorted(used - set(ui_widgets))
    assert not missing, f"PerfGenSR.py uses widgets missing from PerfGenSR.ui: {missing}"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    builtin = {w.get("class") for w in ui_widgets.values() if w.get("class", "").startswith("Q")}
    assert {w.get("class") for w in ui_widgets.values()} <= declared | builtin


def test_ui_parameter_names_match_the_parameter_node(tree, ui_widgets):
    fields = parameter_fields(tree)
    connected = {}
    for widget in ui_widgets.values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                connected[prop.findtext("string")] = widget.get("class")
    assert connected, "no widget is connected to the parameter node"
    for parameter, widget_class in connected.items():
        assert parameter in fields, f"{parameter} (in the .ui) is not a parameter node field"
        assert fields[parameter] in WIDGET_TYPES[widget_class], (
            f"{parameter}: {widget_class} cannot hold {fields[parameter]}"
        )
    # the fields no widget is connected to are the ones the module sets by hand
    assert set(fields) - set(connected) == {"sampler", "device", "perfgenModel", "ganModel"}
    source = MODULE.read_text()
    assert "self._parameterNode.sampler = " in source and "self._parameterNode.device = " in source
    assert 'setattr(self._parameterNode, f"{method}Model"' in source


def test_sampler_choices_and_default_are_the_engines(tree, ui_widgets):
    from PerfGenSRLib import defaults

    items = [item.findtext("property/string") for item in ui_widgets["samplerComboBox"].findall("item")]
    assert items == list(defaults.SAMPLERS)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PerfGenSRParameterNode")
    (sampler,) = [n for n in cls.body if isinstance(n, ast.AnnAssign) and n.target.id == "sampler"]
    assert ast.literal_eval(sampler.value) == defaults.DEFAULT_SAMPLER


def test_the_panel_says_in_one_line_what_the_uncertainty_overlay_shows(ui_widgets):
    label = ui_widgets["uncertaintyHelpLabel"]
    text = label.find("property[@name='text']").findtext("string")
    assert (
        label.get("class") == "QLabel" and label.find("property[@name='wordWrap']").findtext("bool") == "true"
    )
    assert "ddim" in text and "SD" in text and "uncertainty.md" in text and len(text) < 400


def test_module_compiles_and_imports_only_slicer_stdlib_and_engine_at_module_level(tree):
    compile(MODULE.read_text(), str(MODULE), "exec")
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level.add(node.module.split(".")[0])
    allowed = SLICER_MODULES | set(sys.stdlib_module_names) | {"PerfGenSRLib", "PerfGenSRSlicer"}
    assert top_level <= allowed, (
        f"module-level imports outside Slicer/stdlib/engine: {sorted(top_level - allowed)}"
    )
    assert "torch" not in top_level and "numpy" not in top_level
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"PerfGenSR", "PerfGenSRWidget", "PerfGenSRLogic", "PerfGenSRTest"} <= classes


def test_module_does_no_numerics(tree):
    source = MODULE.read_text()
    assert not re.search(r"\bnumpy\b|\bnp\.", source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {"numpy", "scipy", "math"} & {name.split(".")[0] for name in imported}
    delegates = {
        node.module.split(".")[1]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith(("PerfGenSRLib.", "PerfGenSRSlicer."))
    }
    delegates |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("PerfGenSRLib", "PerfGenSRSlicer")
        for alias in node.names
    }
    # the scene logic (sequences, results, ROIs and curves, views), background runs, the engine
    assert {"scene", "results", "rois", "views", "process", "engineinfo"} <= delegates
    # opening the panel asks only torch-free modules; torch-importing engine modules only in the test
    test_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PerfGenSRTest")
    outside_test = {
        node.module
        for cls in tree.body
        if cls is not test_class
        for node in ast.walk(cls)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("PerfGenSRLib")
    }
    assert outside_test == set(), f"the panel or logic imports the engine directly: {outside_test}"


def test_icon_is_a_128_pixel_png():
    header = ICON.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 128 and int.from_bytes(header[20:24], "big") == 128


def test_self_test_logic_runs_on_real_mrml(monkeypatch, tmp_path):
    """The module's logic self-test, run on slicer-core: only what needs Slicer's application is
    stubbed (Qt, the scripted-module base classes, the parameter-node wrapper, Sample Data's download
    and the layouts). The sample study is read from the committed file by the real sequence reader."""
    import hashlib
    import types
    import unittest

    import slicer

    qt = types.ModuleType("qt")
    qt.QTimer = object
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    base.ScriptedLoadableModule = base.ScriptedLoadableModuleLogic = object
    base.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message):
            print(message)

    base.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.WithinRange = lambda low, high: (low, high)

    mrml = slicer.vtkMRMLScene()
    sequences_logic = slicer.vtkSlicerSequencesLogic()
    sequences_logic.SetMRMLScene(mrml)
    shown_browsers, registered = [], []
    sample_data = types.ModuleType("SampleData")

    def download_sample(name):  # what SampleData does with a file URI: copy, then the sequence reader
        (source,) = [r for r in registered if r["sampleName"] == name]
        path = Path(source["uris"].removeprefix("file://"))
        assert source["checksums"] == f"SHA256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        sequence = sequences_logic.AddSequence(str(path))
        browser = mrml.AddNewNodeByClass("vtkMRMLSequenceBrowserNode")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        sequences_logic.UpdateProxyNodesFromSequences(browser)
        return sequence

    sample_data.downloadSample = download_sample
    sample_data.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **source: registered.append(source)
    )
    for name, module in {
        "qt": qt,
        "slicer.ScriptedLoadableModule": base,
        "slicer.parameterNodeWrapper": wrapper,
        "SampleData": sample_data,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    sequences_module = types.SimpleNamespace(
        logic=lambda: sequences_logic, showSequenceBrowser=shown_browsers.append
    )
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(sequences=sequences_module), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", mrml, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path)), raising=False)
    monkeypatch.syspath_prepend(str(MODULE.parent))
    spec = importlib.util.spec_from_file_location("PerfGenSR", MODULE)
    PerfGenSR = importlib.util.module_from_spec(spec)  # kept out of sys.modules: built on stubs
    spec.loader.exec_module(PerfGenSR)

    compared = []
    monkeypatch.setattr(PerfGenSR.PerfGenSRLogic, "showComparison", lambda self, node: compared.append(node))
    test = PerfGenSR.PerfGenSRTest("test_PerfGenSR_superResolveAndCurves")
    test.setUp()
    test.test_PerfGenSR_superResolveAndCurves()

    from PerfGenSRSlicer import results, scene

    phantom_sequence = compared[0]
    assert (
        phantom_sequence.GetNumberOfDataNodes() == 40 and scene.scalarType(phantom_sequence) == vtk.VTK_SHORT
    )
    assert shown_browsers == [sequences_logic.GetFirstBrowserNodeForSequenceNode(phantom_sequence)]
    assert registered[0]["loadFileType"] == "SequenceFile" and "customDownloader" not in registered[0]
    assert list(results.resultSequences(mrml, phantom_sequence)) == [
        "Input",
        "LR 35%",
        "LR (zero-pad)",
        "PerfGen",
    ]
    assert mrml.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == 3 * 4


# --- the training CLI module ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_module():
    spec = importlib.util.spec_from_file_location("PerfGenSRTrain", TRAIN_DIR / "PerfGenSRTrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_xml_parameters_match_the_script(train_module):
    root = ET.parse(TRAIN_DIR / "PerfGenSRTrain.xml").getroot()
    assert root.tag == "executable" and root.findtext("title")
    options = {
        action.dest: action for action in train_module.build_parser()._actions if action.option_strings
    }
    parameters = [p for group in root.iter("parameters") for p in group if p.find("name") is not None]
    assert len(parameters) == len(options) - 1  # all but --help
    for parameter in parameters:
        name = parameter.findtext("name")
        assert parameter.findtext("longflag") == name and name in options
        default = parameter.findtext("default")
        if default is not None:
            expected = options[name].default
            assert str(expected).lower() == default.lower(), (
                f"{name}: xml default {default}, script {expected}"
            )
        if parameter.tag == "string-enumeration":
            assert [e.text for e in parameter.iter("element")] == list(options[name].choices)


def test_cli_turns_progress_lines_into_filter_progress(train_module):
    assert train_module.filter_progress("PROGRESS 25 100") == "<filter-progress>0.2500</filter-progress>"
    assert train_module.filter_progress("step 25 loss 0.1") is None

    class Sink:
        text = ""

        def write(self, text):
            Sink.text += text

        def flush(self):
            pass

    translator = train_module.ProgressTranslator(Sink())
    translator.write("PROGRESS 1 4\nloss 0.5\nPROGRESS 2")
    translator.write(" 4\n")
    assert (
        Sink.text
        == "<filter-progress>0.2500</filter-progress>\nloss 0.5\n<filter-progress>0.5000</filter-progress>\n"
    )
    args = train_module.build_parser().parse_args(["--phantomCases", "3", "--outputDir", "run", "--resume"])
    command = train_module.train_arguments(args)
    assert command[:3] == ["train", "--phantom-cases", "3"] and command[-2:] == [
        "--progress-lines",
        "--resume",
    ]


def test_cli_trains_with_the_real_engine_and_checkpoints(train_module, tmp_path, capsys):
    import numpy as np

    data = tmp_path / "studies"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(data / f"study{i}.npy", (rng.random((3, 48, 48)) * 100).astype(np.float32))
    run = tmp_path / "run"
    common = [
        "--dataDir",
        str(data),
        "--outputDir",
        str(run),
        "--preset",
        "tiny",
        "--batch",
        "1",
        "--checkpointEvery",
        "1",
        "--device",
        "cpu",
    ]
    assert train_module.main([*common, "--steps", "1"]) == 0
    first = capsys.readouterr().out
    assert "<filter-progress>1.0000</filter-progress>" in first and "PROGRESS" not in first
    assert (run / "model.safetensors").exists() and (run / "checkpoint.pt").exists()  # --resume continues it
    assert train_module.main(["--outputDir", str(run)]) == 2
    assert "training studies" in capsys.readouterr().err


# --- CMake ----------------------------------------------------------------------------------------


def test_cmake_files_name_what_exists():
    root = (ROOT / "CMakeLists.txt").read_text()
    for variable in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
    ):
        assert re.search(rf'set\({variable} "[^"]+"\)', root), variable
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', root)
    for url in re.findall(r'set\(EXTENSION_(?:ICONURL|SCREENSHOTURLS) "([^"]+)"\)', root):
        assert url.startswith("https://raw.githubusercontent.com/PerfGenSR/SlicerPerfGenSR/main/")
        path = ROOT / url.removeprefix("https://raw.githubusercontent.com/PerfGenSR/SlicerPerfGenSR/main/")
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{url}: no PNG at {path}"
    # the Extensions Manager takes the category from the ExtensionsIndex entry: keep the two equal
    entry = json.loads((ROOT / "Docs" / "ExtensionsIndex-entry.json").read_text())
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in root
    assert entry["build_dependencies"] == ["PyTorch"] and entry["scm_url"].endswith(".git")
    for directory in re.findall(r"add_subdirectory\((\w+)\)", root):
        assert (ROOT / directory / "CMakeLists.txt").exists()
    module = (ROOT / "PerfGenSR" / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in module and "WITH_GENERIC_TESTS" in module
    for resource in (
        "Resources/Icons/${MODULE_NAME}.png",
        "Resources/UI/${MODULE_NAME}.ui",
        "Resources/SampleData/${MODULE_NAME}Phantom.seq.nrrd",
    ):
        assert (
            resource in module
            and (ROOT / "PerfGenSR" / resource.replace("${MODULE_NAME}", "PerfGenSR")).exists()
        )
    assert "PerfGenSRLib/*.py" in module and "PerfGenSRSlicer/*.py" in module
    assert "slicerMacroBuildScriptedCLI" in (TRAIN_DIR / "CMakeLists.txt").read_text()
