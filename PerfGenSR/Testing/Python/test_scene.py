"""Scene logic on real MRML nodes (PyPI ``slicer-core``): sequences in and out, synchronized result
sequences, ROI segments, signal-time curves, compare views; the input is never modified and a
failed or cancelled run adds nothing."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import slicer
import vtk
from vtk.util import numpy_support

from PerfGenSRLib import curves, kspace
from PerfGenSRLib.defaults import ROI_BY_KEY
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.study import Study
from PerfGenSRSlicer import results, rois, scene, views

T, H, W = 6, 32, 28
LV = ((15, 10), 5.0)  # (row, column) centre, radius
RV = ((16, 20), 4.0)


def disc(center, radius) -> np.ndarray:
    rows, columns = np.mgrid[:H, :W]
    return (rows - center[0]) ** 2 + (columns - center[1]) ** 2 < radius**2


def make_study() -> Study:
    """A small first-pass-like series: the LV and RV discs brighten at different times."""
    times = np.arange(T) * 0.8
    lv_curve = 20 + 200 * np.exp(-((times - 2.0) ** 2))
    rv_curve = 20 + 150 * np.exp(-((times - 1.2) ** 2))
    frames = 10 + lv_curve[:, None, None] * disc(*LV) + rv_curve[:, None, None] * disc(*RV)
    direction = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)  # an oblique-ish (non-axial) slice
    return Study(
        frames.astype(np.float32),
        spacing=(1.5, 1.6, 8.0),
        origin=(12.0, -30.0, 45.0),
        direction=direction,
        frame_times=times,
    )


@pytest.fixture
def mrml():
    return slicer.vtkMRMLScene()


@pytest.fixture
def input_sequence(mrml):
    sequence = scene.studyToSequence(mrml, make_study(), "Perfusion", None)
    scene.browserForSequence(mrml, sequence)
    return sequence


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from PerfGenSRLib.models import save_model
    from PerfGenSRLib.schedule import DiffusionSchedule
    from PerfGenSRLib.unet import PRESETS, UNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "perfgen.safetensors"
    save_model(
        path,
        UNet(PRESETS["tiny"]),
        "perfgen-unet",
        PRESETS["tiny"],
        extra={"schedule": DiffusionSchedule().config()},
    )
    return path


def index_values(sequence) -> list[str]:
    return [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())]


def node_ids(mrml) -> list[str]:
    return [mrml.GetNthNode(i).GetID() for i in range(mrml.GetNumberOfNodes())]


def ijk_to_ras(volume) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def synchronized(browser) -> list:
    nodes = vtk.vtkCollection()
    browser.GetSynchronizedSequenceNodes(nodes, True)
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


# --- sequences <-> studies ------------------------------------------------------------------------


def test_study_sequence_round_trip_keeps_frames_geometry_and_times(mrml):
    study = make_study()
    sequence = scene.studyToSequence(mrml, study, "Perfusion", None)
    assert sequence.GetNumberOfDataNodes() == T
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "s")
    assert [float(v) for v in index_values(sequence)] == pytest.approx(study.frame_times)
    # MRML holds RAS: the LPS study flips the first two axes
    expected = np.eye(4)
    expected[:3, :3] = np.diag([-1, -1, 1]) @ np.array(study.direction).reshape(3, 3) @ np.diag(study.spacing)
    expected[:3, 3] = [-12.0, 30.0, 45.0]
    np.testing.assert_allclose(ijk_to_ras(sequence.GetNthDataNode(0)), expected, atol=1e-9)
    back = scene.sequenceToArray(sequence)
    np.testing.assert_array_equal(back.frames, study.frames)
    assert back.shape == (T, 1, H, W) and back.single_slice
    assert back.spacing == pytest.approx(study.spacing)
    assert back.origin == pytest.approx(study.origin)
    assert back.direction == pytest.approx(study.direction)
    np.testing.assert_allclose(back.frame_times, study.frame_times)


def test_frame_times_follow_the_index_unit(mrml):
    study = make_study()
    reference = slicer.vtkMRMLSequenceNode()
    reference.SetIndexName("trigger")
    reference.SetIndexUnit("ms")
    for i in range(T):
        reference.SetDataNodeAtValue(slicer.vtkMRMLScalarVolumeNode(), str(1000 + 250 * i))
    in_ms = scene.studyToSequence(mrml, study, "ms", reference)
    assert index_values(in_ms) == [str(1000 + 250 * i) for i in range(T)]
    np.testing.assert_allclose(scene.sequenceToArray(in_ms).frame_times, np.arange(T) * 0.25)
    frames_only = scene.studyToSequence(
        mrml, study.with_frames(study.frames, frame_times=None), "frames", None
    )
    assert frames_only.GetIndexName() == "frame"
    assert scene.sequenceToArray(frames_only).frame_times is None


def test_unusable_sequences_are_refused_with_a_message(mrml):
    with pytest.raises(PerfGenError, match="empty"):
        scene.sequenceToArray(slicer.vtkMRMLSequenceNode())
    transforms = slicer.vtkMRMLSequenceNode()
    transforms.SetDataNodeAtValue(slicer.vtkMRMLLinearTransformNode(), "0")
    with pytest.raises(PerfGenError, match="scalar volumes"):
        scene.sequenceToArray(transforms)
    with pytest.raises(PerfGenError, match="do not match"):
        scene.studyToSequence(
            mrml,
            make_study(),
            "short",
            scene.studyToSequence(mrml, Study(np.ones((3, 1, H, W), np.float32)), "three", None),
        )


# --- super-resolution into the scene --------------------------------------------------------------


def test_super_resolved_sequences_join_the_input_browser(mrml, input_sequence):
    before = scene.sequenceToArray(input_sequence)
    values_before = index_values(input_sequence)
    browser = scene.sequencesLogic(mrml).GetFirstBrowserNodeForSequenceNode(input_sequence)
    reports = []
    result = results.superResolveSequence(
        mrml,
        input_sequence,
        "zeropad",
        simulateFraction=0.5,
        progress=lambda done, total: reports.append((done, total)),
    )
    assert reports[-1] == (T, T)
    low_res = result.GetNodeReference(results.LOW_RES_REFERENCE)
    assert result.GetNodeReference(results.UNCERTAINTY_REFERENCE) is None
    for sequence in (result, low_res):
        assert sequence.GetScene() is mrml
        assert sequence.GetNumberOfDataNodes() == T
        assert index_values(sequence) == values_before
        assert browser.IsSynchronizedSequenceNode(sequence.GetID(), True)
        proxy = browser.GetProxyNode(sequence)
        assert proxy is not None and proxy.IsA("vtkMRMLScalarVolumeNode")
        assert proxy.GetSpacing() == pytest.approx(input_sequence.GetNthDataNode(0).GetSpacing())
        assert proxy.GetOrigin() == pytest.approx(input_sequence.GetNthDataNode(0).GetOrigin())
        np.testing.assert_allclose(
            ijk_to_ras(sequence.GetNthDataNode(0)), ijk_to_ras(input_sequence.GetNthDataNode(0))
        )
    expected_lr = kspace.degrade(before.frames, 0.5)
    np.testing.assert_allclose(scene.sequenceToArray(low_res).frames, expected_lr, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scene.sequenceToArray(result).frames, expected_lr, rtol=1e-5, atol=1e-4)
    assert result.GetAttribute(results.METHOD) == "zeropad"
    assert low_res.GetName() == "Perfusion LR 50%"
    # the input is untouched
    after = scene.sequenceToArray(input_sequence)
    np.testing.assert_array_equal(after.frames, before.frames)
    assert index_values(input_sequence) == values_before
    assert after.origin == before.origin and after.spacing == before.spacing
    # the same LR series is shared by a second method, and all are found again from the input
    second = results.superResolveSequence(mrml, input_sequence, "zeropad", simulateFraction=0.5)
    assert second.GetNodeReference(results.LOW_RES_REFERENCE) is low_res
    assert len(synchronized(browser)) == 4  # input, one shared LR, two results
    found = results.resultSequences(mrml, input_sequence)
    assert list(found) == [
        "Input",
        "LR 50%",
        "LR (zero-pad)",
        "LR (zero-pad) 2",
    ]  # the earlier run stays comparable
    assert found["LR (zero-pad)"] is result and found["LR (zero-pad) 2"] is second
    assert second.GetName() == "Perfusion LR (zero-pad) 2"


def test_perfgen_with_samples_adds_an_uncertainty_sequence(mrml, input_sequence, tiny_model):
    result = results.superResolveSequence(
        mrml,
        input_sequence,
        "perfgen",
        model=str(tiny_model),
        sampler="ddim",
        steps=2,
        samples=2,
        device="cpu",
    )
    uncertainty = result.GetNodeReference(results.UNCERTAINTY_REFERENCE)
    assert result.GetName() == "Perfusion PerfGen" and uncertainty.GetName() == "Perfusion PerfGen SD"
    assert result.GetNodeReference(results.LOW_RES_REFERENCE) is None  # no simulation: the input is the LR
    browser = scene.sequencesLogic(mrml).GetFirstBrowserNodeForSequenceNode(input_sequence)
    for sequence in (result, uncertainty):
        assert sequence.GetNumberOfDataNodes() == T
        assert index_values(sequence) == index_values(input_sequence)
        assert browser.GetProxyNode(sequence) is not None
    frames, spread = scene.sequenceToArray(result).frames, scene.sequenceToArray(uncertainty).frames
    assert np.isfinite(frames).all() and (spread >= 0).all() and spread.max() > 0
    display = browser.GetProxyNode(result).GetDisplayNode()
    assert not display.GetAutoWindowLevel() and display.GetWindow() > 0


def test_nothing_is_added_on_cancel_or_invalid_options(mrml, input_sequence):
    before = node_ids(mrml)
    with pytest.raises(Cancelled):
        results.superResolveSequence(mrml, input_sequence, "zeropad", cancel=lambda: True)
    with pytest.raises(PerfGenError, match="LR fraction"):
        results.superResolveSequence(mrml, input_sequence, "zeropad", simulateFraction=1.7)
    with pytest.raises(PerfGenError, match="unknown method"):
        results.superResolveSequence(mrml, input_sequence, "bicubic")
    assert node_ids(mrml) == before


# --- ROIs and curves ------------------------------------------------------------------------------


def test_perfusion_segments_are_created_once(mrml, input_sequence):
    proxy = scene.browserForSequence(mrml, input_sequence).GetProxyNode(input_sequence)
    segmentation_node = rois.createPerfusionSegments(mrml, None, proxy)
    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["LV blood", "RV blood", "Myocardium"]
    assert segmentation.GetSegment(
        segmentation.GetSegmentIdBySegmentName("LV blood")
    ).GetColor() == pytest.approx(ROI_BY_KEY["lv_blood"].colour)
    assert rois.createPerfusionSegments(mrml, segmentation_node, proxy) is segmentation_node
    assert segmentation.GetNumberOfSegments() == 3


def test_signal_time_curves_table_and_chart(mrml, input_sequence):
    zeropad = results.superResolveSequence(mrml, input_sequence, "zeropad", simulateFraction=0.6)
    low_res = zeropad.GetNodeReference(results.LOW_RES_REFERENCE)
    volume = input_sequence.GetNthDataNode(0)
    segmentation_node = rois.createPerfusionSegments(mrml, None, volume)
    rois.setSegmentFromMask(mrml, segmentation_node, "LV blood", disc(*LV), volume)
    rois.setSegmentFromMask(
        mrml, segmentation_node, "RV blood", disc(*RV)[None], volume
    )  # the myocardium stays empty
    sequences = {"Input": input_sequence, "LR": low_res, "LR (zero-pad)": zeropad}
    table, chart = rois.signalTimeCurves(mrml, sequences, segmentation_node)

    vtk_table = table.GetTable()
    columns = [vtk_table.GetColumn(i).GetName() for i in range(vtk_table.GetNumberOfColumns())]
    assert vtk_table.GetNumberOfRows() == T
    assert columns == ["Time (s)"] + [
        f"{roi} ({method})" for method in sequences for roi in ("LV blood", "RV blood")
    ]
    column = {name: numpy_support.vtk_to_numpy(vtk_table.GetColumnByName(name)) for name in columns}
    np.testing.assert_allclose(column["Time (s)"], np.arange(T) * 0.8)
    study = make_study()
    np.testing.assert_allclose(
        column["LV blood (Input)"], study.frames[:, 0][:, disc(*LV)].mean(axis=1), rtol=1e-5
    )
    lr = kspace.degrade(study.frames, 0.6)
    np.testing.assert_allclose(column["RV blood (LR)"], lr[:, 0][:, disc(*RV)].mean(axis=1), rtol=1e-5)

    measures = table.GetNodeReference(rois.MEASURES_REFERENCE).GetTable()
    assert [measures.GetColumn(i).GetName() for i in range(measures.GetNumberOfColumns())] == [
        "Curve",
        "Peak",
        "Time to peak (s)",
        "Max upslope (/s)",
    ]
    assert [measures.GetValue(r, 0).ToString() for r in range(measures.GetNumberOfRows())] == columns[1:]
    row = columns[1:].index("LV blood (Input)")
    lv_ttp, lv_upslope = measures.GetValue(row, 2).ToDouble(), measures.GetValue(row, 3).ToDouble()
    assert lv_ttp == pytest.approx(2.0, abs=0.15)  # the LV bolus peaks at 2 s, the RV at 1.2 s
    assert measures.GetValue(columns[1:].index("RV blood (Input)"), 2).ToDouble() == pytest.approx(
        1.2, abs=0.15
    )
    assert lv_upslope == pytest.approx(curves.max_upslope(column["LV blood (Input)"], column["Time (s)"]))
    assert 0 < lv_upslope < np.max(np.diff(column["LV blood (Input)"]) / 0.8)  # lightly smoothed

    series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    assert len(series) == 2 * 3
    assert [s.GetYColumnName() for s in series] == columns[1:]
    assert all(s.GetXColumnName() == "Time (s)" and s.GetTableNode() is table for s in series)
    by_name = {s.GetYColumnName(): s for s in series}
    assert by_name["LV blood (Input)"].GetColor() == pytest.approx(by_name["LV blood (LR)"].GetColor())
    assert by_name["LV blood (Input)"].GetColor() != pytest.approx(by_name["RV blood (Input)"].GetColor())
    styles = {method: by_name[f"LV blood ({method})"].GetLineStyle() for method in sequences}
    assert len(set(styles.values())) == 3
    assert by_name["RV blood (LR)"].GetLineStyle() == styles["LR"]

    # refilling the same nodes replaces the series instead of piling them up
    plot_count = mrml.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode")
    again = rois.signalTimeCurves(
        mrml, {"Input": input_sequence}, segmentation_node, tableNode=table, chartNode=chart
    )
    assert again == (table, chart)
    assert chart.GetNumberOfPlotSeriesNodes() == 2 and table.GetTable().GetNumberOfColumns() == 3
    assert table.GetNodeReference(rois.MEASURES_REFERENCE).GetTable() is measures  # refilled, not added
    assert measures.GetNumberOfRows() == 2 and mrml.GetNumberOfNodesByClass("vtkMRMLTableNode") == 2
    assert mrml.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == plot_count - 4


def test_curves_need_a_painted_segment_and_masks_must_fit(mrml, input_sequence):
    volume = input_sequence.GetNthDataNode(0)
    segmentation_node = rois.createPerfusionSegments(mrml, None, volume)
    with pytest.raises(PerfGenError, match="Segment Editor"):
        rois.signalTimeCurves(mrml, {"Input": input_sequence}, segmentation_node)
    with pytest.raises(PerfGenError, match="does not fit"):
        rois.setSegmentFromMask(mrml, segmentation_node, "LV blood", np.ones((H, W + 1), bool), volume)
    segment_id = rois.setSegmentFromMask(
        mrml, segmentation_node, "defect", disc((12, 14), 3.0), volume, (1, 1, 0)
    )
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == 4
    masks = rois.segmentMasks(segmentation_node, volume)
    assert list(masks) == ["defect"] and segment_id == "defect"
    np.testing.assert_array_equal(masks["defect"][0], disc((12, 14), 3.0))


# --- compare views --------------------------------------------------------------------------------


def test_compare_layout_and_linked_views(mrml, input_sequence):
    labels = ["Input", "LR 35%", "LR (zero-pad)", "GAN", "PerfGen"]
    root = ET.fromstring(views.compareLayoutDescription(labels))
    tags = [v.get("singletontag") for v in root.iter("view")]
    assert tags == [*views.compareViewNames(5), views.COMPARE_PLOT_VIEW]  # the curves' plot view below
    assert root.get("type") == "vertical" and len(root.findall("item/layout")) == 2  # over four: two rows
    assert len(ET.fromstring(views.compareLayoutDescription(labels[:3])).findall("item/layout")) == 1

    result = results.superResolveSequence(mrml, input_sequence, "zeropad", simulateFraction=0.35)
    browser = scene.browserForSequence(mrml, input_sequence)
    volumes = [
        browser.GetProxyNode(s)
        for s in (input_sequence, result.GetNodeReference(results.LOW_RES_REFERENCE), result)
    ]
    for name in views.compareViewNames(3):  # what Slicer's layout manager creates for the layout
        slice_node = slicer.vtkMRMLSliceNode()
        slice_node.SetLayoutName(name)
        mrml.AddNode(slice_node)
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(name)
        mrml.AddNode(composite)
    overlay = volumes[1]  # stands in for an uncertainty proxy
    assert views.showInCompareViews(mrml, volumes, overlays={2: overlay}) == 3
    composites = mrml.GetNodesByClass("vtkMRMLSliceCompositeNode")
    shown = {composites.GetItemAsObject(i).GetLayoutName(): composites.GetItemAsObject(i) for i in range(3)}
    for name, volume in zip(views.compareViewNames(3), volumes, strict=True):
        assert shown[name].GetBackgroundVolumeID() == volume.GetID()
        assert shown[name].GetLinkedControl()
    third = shown[views.compareViewNames(3)[2]]
    assert third.GetForegroundVolumeID() == overlay.GetID()
    assert third.GetForegroundOpacity() == pytest.approx(views.UNCERTAINTY_OPACITY)
    assert overlay.GetDisplayNode().GetColorNodeID() == views.UNCERTAINTY_COLOR_NODE_ID
    assert shown[views.compareViewNames(3)[0]].GetForegroundVolumeID() is None
    window, level = scene.matchWindowLevel(input_sequence, volumes[:1] + volumes[2:])
    assert all(v.GetDisplayNode().GetWindow() == pytest.approx(window) for v in volumes[::2])
    assert all(v.GetDisplayNode().GetLevel() == pytest.approx(level) for v in volumes[::2])


def test_curves_go_to_the_plot_view_of_the_compare_layout(mrml):
    chart = mrml.AddNewNodeByClass("vtkMRMLPlotChartNode")
    assert not views.showChartInCompareView(mrml, chart)  # no compare layout shown yet
    plot_view = slicer.vtkMRMLPlotViewNode()
    plot_view.SetLayoutName(views.COMPARE_PLOT_VIEW)  # what the layout manager creates for the layout
    mrml.AddNode(plot_view)
    assert views.showChartInCompareView(mrml, chart)
    assert plot_view.GetPlotChartNodeID() == chart.GetID()


def test_results_find_their_input_after_import_into_a_scene_with_sequences(mrml, input_sequence, tmp_path):
    """Node references, not IDs in attributes: importing renames clashing IDs and keeps references."""
    result = results.superResolveSequence(mrml, input_sequence, "zeropad", simulateFraction=0.5)
    mrml.SetSaveToXMLString(1)
    mrml.Commit()
    saved = mrml.GetSceneXMLString()

    other = slicer.vtkMRMLScene()
    scene.sequencesLogic(other)
    unrelated = scene.studyToSequence(other, make_study(), "Unrelated", None)
    assert unrelated.GetID() == input_sequence.GetID()  # the imported input's ID is taken
    other.SetLoadFromXMLString(1)
    other.SetSceneXMLString(saved)
    other.Import()
    imported_input = next(
        other.GetNodesByName("Perfusion").GetItemAsObject(i)
        for i in range(other.GetNodesByName("Perfusion").GetNumberOfItems())
        if other.GetNodesByName("Perfusion").GetItemAsObject(i).IsA("vtkMRMLSequenceNode")
    )
    assert imported_input is not unrelated
    found = results.resultSequences(other, imported_input)
    assert list(found) == ["Input", "LR 50%", "LR (zero-pad)"]
    assert found["LR (zero-pad)"].GetName() == result.GetName()
    assert list(results.resultSequences(other, unrelated)) == ["Input"]


def test_results_are_named_replaced_and_keep_an_exact_input_type(mrml):
    study = make_study()
    study = study.with_frames(np.round(study.frames))
    int_input = scene.buildSequence(study, "Int", None, vtkType=vtk.VTK_SHORT)
    mrml.AddNode(int_input)
    scene.browserForSequence(mrml, int_input)
    assert scene.scalarType(int_input) == vtk.VTK_SHORT
    first = results.superResolveSequence(mrml, int_input, "zeropad", simulateFraction=0.5, label="test A")
    assert first.GetName() == "Int test A"
    assert first.GetNthDataNode(0).GetImageData().GetScalarType() == vtk.VTK_SHORT
    np.testing.assert_array_equal(
        scene.sequenceToArray(first).frames, np.rint(kspace.degrade(study.frames, 0.5))
    )
    again = results.superResolveSequence(mrml, int_input, "zeropad", simulateFraction=0.5, label="test A")
    assert again.GetName() == "Int test A 2"
    replaced = results.superResolveSequence(
        mrml, int_input, "zeropad", simulateFraction=0.5, label="test A", replace=True
    )
    found = results.resultSequences(mrml, int_input)
    assert list(found) == ["Input", "LR 50%", "test A 2", "test A"]
    assert found["test A"] is replaced and first.GetScene() is None
    assert replaced.GetNodeReference(results.LOW_RES_REFERENCE) is found["LR 50%"]  # the LR series stays


@pytest.mark.parametrize(
    "vtk_type, values, kept",
    [
        (vtk.VTK_SHORT, [1.4, -2.6, 300.0], vtk.VTK_SHORT),
        (vtk.VTK_UNSIGNED_CHAR, [1.0, 300.0], vtk.VTK_FLOAT),  # does not fit: float
        (vtk.VTK_UNSIGNED_SHORT, [-3.0, 4.0], vtk.VTK_FLOAT),
        (vtk.VTK_DOUBLE, [0.1, 2.5], vtk.VTK_DOUBLE),
        (vtk.VTK_FLOAT, [0.1, 2.5], vtk.VTK_FLOAT),
    ],
)
def test_result_type_follows_the_input_where_it_holds_the_values(vtk_type, values, kept):
    frames = np.array(values, dtype=np.float32)
    converted, vtk_kept = scene.framesAs(frames, vtk_type)
    assert vtk_kept == kept
    expected = np.rint(frames) if kept in scene.INTEGER_RANGES else frames
    np.testing.assert_array_equal(converted.astype(np.float64), expected.astype(np.float64))
