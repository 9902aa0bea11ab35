"""Background runs: progress lines read without blocking, cancel stops the whole process tree, the
last stderr line becomes the error, and a real ``perfgen-sr super-resolve`` round trip through files."""

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from PerfGenSRLib import kspace
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.study import Study
from PerfGenSRSlicer import process as background
from PerfGenSRSlicer.process import (
    BackgroundProcess,
    Progress,
    SuperResolveJob,
    SuperResolveResult,
    parse_progress,
)


def poll_until(process, condition, timeout=20.0) -> Progress:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = process.poll()
        if condition(progress):
            return progress
        time.sleep(0.02)
    raise AssertionError(f"condition not reached in {timeout} s; last progress {progress}")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        return "\nState:\tZ" not in status.read_text()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_parse_progress_accepts_only_progress_lines():
    assert parse_progress("PROGRESS 3 10\n") == (3, 10)
    assert parse_progress("PROGRESS three 10") is None
    assert parse_progress("wrote out.nii.gz") is None
    assert parse_progress("PROGRESS 1") is None


def test_progress_is_read_while_the_process_runs_and_when_it_ends():
    script = (
        "import sys, time\n"
        "print('loading model', flush=True)\n"
        "for i in range(1, 4):\n"
        "    print(f'PROGRESS {i} 5', flush=True); time.sleep(0.05)\n"
        "time.sleep(0.6)\n"
        "print('PROGRESS 5 5', flush=True)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    start = time.monotonic()
    first = process.poll()
    assert time.monotonic() - start < 0.1  # poll never waits for the child
    assert not first.finished
    midway = poll_until(process, lambda p: p.done == 3)
    assert midway.total == 5 and not midway.finished and midway.returncode is None
    final = poll_until(process, lambda p: p.finished)
    assert (final.done, final.total, final.returncode, final.succeeded) == (5, 5, 0, True)


def test_failure_reports_the_last_stderr_line():
    script = (
        "import sys\n"
        "print('PROGRESS 1 4', flush=True)\n"
        "print('Traceback noise', file=sys.stderr)\n"
        "print('perfgen-sr super-resolve: error: no bundled gan model; give one with --model', file=sys.stderr)\n"
        "sys.exit(2)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    final = process.wait(20)
    assert final.finished and final.returncode == 2 and not final.succeeded
    assert final.done == 1
    assert (
        process.error_message
        == "perfgen-sr super-resolve: error: no bundled gan model; give one with --model"
    )


CLI_FAILURE = "perfgen-sr super-resolve: error: no bundled gan model; give one with --model"


@pytest.mark.parametrize(
    "stderr, returncode, message",
    [
        (["input.npy: 4 frames of 24x20", CLI_FAILURE], 2, "no bundled gan model; give one with --model"),
        (
            [
                "perfgen-sr super-resolve: error: argument --steps: must be >= 1 (see perfgen-sr super-resolve --help)"
            ],
            2,
            "argument --steps: must be >= 1",
        ),
        ([CLI_FAILURE, "Exception ignored in: <tqdm>"], 2, "no bundled gan model; give one with --model"),
        (
            ["input.npy: 4 frames", "Traceback (most recent call last):", '  File "x"', "RuntimeError: boom"],
            1,
            "RuntimeError: boom",
        ),
        (["input.npy: 4 frames of 24x20"], -9, "the engine was stopped (SIGKILL) before it finished"),
        ([], 3, "the engine exited with status 3"),
    ],
)
def test_a_failed_run_reports_the_engines_message_not_its_last_line(stderr, returncode, message):
    assert background.engine_error(stderr, returncode) == message


def test_cancel_kills_the_process_and_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('PROGRESS 0 10', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    poll_until(process, lambda p: p.total == 10)
    child = int(pid_file.read_text())
    assert alive(process.pid) and alive(child)
    start = time.monotonic()
    process.cancel()
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    final = poll_until(process, lambda p: p.finished)
    assert process.cancelled and final.returncode != 0


def test_cancel_kills_a_process_that_ignores_sigterm():
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('PROGRESS 0 1', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    poll_until(process, lambda p: p.total == 1)
    process.cancel(grace=0.3)
    assert poll_until(process, lambda p: p.finished).returncode != 0


def _study() -> Study:
    rng = np.random.default_rng(0)
    frames = rng.random((4, 1, 24, 20), dtype=np.float32) * 50 + 10
    return Study(frames, spacing=(1.4, 1.5, 8.0), origin=(3.0, -4.0, 5.0), frame_times=np.arange(4) * 0.9)


def test_super_resolve_job_round_trip_through_the_real_cli():
    study = _study()
    job = SuperResolveJob(study, "zeropad", lr_fraction=0.5)
    assert job.input_path.exists()
    final = job.process.wait(120)
    assert final.succeeded, job.process.stderr
    assert (final.done, final.total) == (4, 4)
    result = job.result()
    expected = kspace.degrade(study.frames, 0.5)
    np.testing.assert_allclose(result.study.frames, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(result.low_res.frames, expected, rtol=1e-5, atol=1e-4)
    assert result.uncertainty is None
    assert result.study.spacing == study.spacing and result.study.origin == study.origin
    np.testing.assert_array_equal(result.study.frame_times, study.frame_times)
    assert not job.workdir.exists()  # exchange files removed


def test_a_background_result_has_the_fields_of_the_engines_result():
    from PerfGenSRLib.sample import SuperResolution  # imports torch: the test's process, not Slicer's

    names = [field.name for field in dataclasses.fields(SuperResolveResult)]
    assert names == [field.name for field in dataclasses.fields(SuperResolution)]


def test_super_resolve_job_error_and_cancel_are_person_readable(tmp_path):
    job = SuperResolveJob(_study(), "perfgen", model=tmp_path / "missing.safetensors")
    job.process.wait(120)
    with pytest.raises(PerfGenError, match="missing.safetensors"):
        job.result()
    assert not job.workdir.exists()

    with pytest.raises(PerfGenError, match="LR fraction"):
        SuperResolveJob(_study(), "zeropad", lr_fraction=1.5)

    job = SuperResolveJob(_study(), "zeropad", python=sys.executable)
    job.cancel()
    with pytest.raises(Cancelled):
        job.result()
    assert not job.workdir.exists()


def test_every_other_output_line_is_streamed_in_order_and_time_is_reported():
    script = (
        "import sys, time\n"
        "print('loading model', flush=True)\n"
        "print('read input: 4 frames', file=sys.stderr, flush=True)\n"
        "time.sleep(0.3)\n"
        "print('PROGRESS 1 4', flush=True)\n"
        "time.sleep(0.3)\n"
        "print('wrote out.npy', flush=True)\n"
    )
    process = BackgroundProcess([sys.executable, "-c", script])
    midway = poll_until(process, lambda p: p.done == 1)
    assert midway.remaining is not None and midway.remaining >= 0 and midway.elapsed > 0.25
    final = process.wait(20)
    lines = process.read_log()
    assert set(lines) == {"loading model", "read input: 4 frames", "wrote out.npy"}
    assert lines.index("loading model") < lines.index("wrote out.npy")
    assert not any(line.startswith("PROGRESS") for line in lines) and process.read_log() == []
    assert final.remaining == 0.0 and final.elapsed >= 0.6
    assert process.poll().elapsed == final.elapsed  # the clock stops when the process ends


@pytest.mark.parametrize(
    "done, total, at, now, expected",
    [(0, 10, 5.0, 6.0, None), (2, 10, 10.0, 10.0, 40.0), (2, 10, 10.0, 25.0, 25.0), (2, 10, 10.0, 99.0, 0.0)],
)
def test_remaining_time_follows_the_pace_so_far_and_counts_down(done, total, at, now, expected):
    assert background.estimate_remaining(done, total, at, now) == expected


def test_durations_read_as_a_clock():
    assert [background.format_duration(s) for s in (0, 65.4, 3725)] == ["0:00", "1:05", "1:02:05"]


def test_on_windows_the_engine_gets_no_console_window(monkeypatch):
    class StartupInfo:
        dwFlags = 0
        wShowWindow = 1

    for name, value in {
        "STARTUPINFO": StartupInfo,
        "STARTF_USESHOWWINDOW": 1,
        "SW_HIDE": 0,
        "CREATE_NEW_PROCESS_GROUP": 0x200,
        "CREATE_NO_WINDOW": 0x08000000,
    }.items():
        monkeypatch.setattr(background.subprocess, name, value, raising=False)
    options = background.popen_options(windows=True)
    assert options["creationflags"] == 0x200 | 0x08000000
    assert options["startupinfo"].dwFlags & 1 and options["startupinfo"].wShowWindow == 0
    assert background.popen_options(windows=False) == {"start_new_session": True}


def test_cancel_all_stops_every_running_process():
    script = "import time; print('PROGRESS 0 1', flush=True); time.sleep(60)"
    processes = [BackgroundProcess([sys.executable, "-c", script]) for _ in range(2)]
    for process in processes:
        poll_until(process, lambda p: p.total == 1)
    background.cancel_all()
    assert all(poll_until(p, lambda p: p.finished).returncode != 0 for p in processes)
    assert all(p.cancelled for p in processes)


def test_exchange_files_go_under_the_given_temporary_folder(tmp_path):
    job = SuperResolveJob(_study(), "zeropad", temp_dir=tmp_path / "slicer-temp")
    assert job.workdir.parent == tmp_path / "slicer-temp"
    job.cancel()
    assert not job.workdir.exists()
