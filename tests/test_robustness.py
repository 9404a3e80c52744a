"""Nothing lost: interrupted generations leave whole files and are repaired; concurrent ones are refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO
from generator import ownership
from generator.cli import main
from generator.errors import GenerationBusyError
from generator.site import LOCK_FILE, MANIFEST, generate

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset


def snapshot(docs: Path) -> dict[str, bytes]:
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE}


def assert_whole(docs: Path) -> None:
    """Every file is complete: PNGs end with IEND, text files with a newline, JSON parses."""
    for path in docs.rglob("*"):
        if not path.is_file() or path.name == LOCK_FILE:
            continue
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), path
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix in (".md", ".csv", ".svg", ".js"):
            assert data.endswith(b"\n") or data.endswith(b">"), path


def single_model_project(example_project: Path) -> Path:
    """The example project with only its shortest run: fewer plots, faster rounds."""
    registry = example_project / "checkpoints.yaml"
    text = registry.read_text()
    registry.write_text(text[: text.index("  - name: Qwen 7B")] + text[text.index("  - name: Phi-3 Mini"):
                                                                    text.index("  - name: Gemma 2 2B")])
    return registry


@pytest.mark.slow
def test_interrupted_at_every_write_the_next_run_repairs_everything(
    example_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = single_model_project(example_project)
    docs = example_project / "docs"
    generate(registry, docs)
    previous = tmp_path / "previous"
    shutil.copytree(docs, previous)  # the previous site, restored before each round
    # The next run changes every plot and adds a model, so it writes new paths too.
    added = (REPO / "checkpoints.yaml").read_text()
    added = added[added.index("  - name: Gemma 2 2B"):]
    registry.write_text(registry.read_text().replace("smoothing: 0.6", "smoothing: 0.8") + added)
    reference = tmp_path / "reference"
    generate(registry, reference)
    expected = snapshot(reference)
    expected.pop(MANIFEST)

    real_write = ownership.write_atomic
    writes = len(expected) + 2  # every changed file, plus the manifest before and after
    interrupted = 0
    for stop_after in range(writes):
        shutil.rmtree(docs)
        shutil.copytree(previous, docs)
        calls = {"n": 0}

        def dying_write(path: Path, data: bytes, inside: Path | None = None, stop_after: int = stop_after,
                        calls: dict = calls) -> bool:
            if calls["n"] == stop_after:
                # Like a kill between creating the temporary file and renaming it.
                path.parent.mkdir(parents=True, exist_ok=True)
                handle, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.traindocs-", suffix=".tmp")
                os.write(handle, data[: len(data) // 2])
                os.close(handle)
                raise KeyboardInterrupt
            calls["n"] += 1
            return real_write(path, data, inside=inside)

        monkeypatch.setattr(ownership, "write_atomic", dying_write)
        try:
            generate(registry, docs)
        except KeyboardInterrupt:
            interrupted += 1
        monkeypatch.setattr(ownership, "write_atomic", real_write)
        assert_whole(docs)
        result = generate(registry, docs)
        assert not result.refused, f"after a stop at write {stop_after}: {result.refused}"
        repaired = snapshot(docs)
        repaired.pop(MANIFEST)
        assert repaired == expected, f"not repaired after a stop at write {stop_after}"
        assert not list(docs.rglob("*.tmp"))
    assert interrupted >= len(expected) // 2  # the stops really happened


@pytest.mark.slow
def test_killed_with_sigkill_leaves_whole_files(example_project: Path) -> None:
    registry = example_project / "checkpoints.yaml"
    docs = example_project / "docs"
    command = [sys.executable, "-m", "generator", "generate", "--config", str(registry)]
    original = registry.read_text()
    for round_number, delay in enumerate((0.8, 1.2, 1.6, 2.0)):
        # Alternate the smoothing so every round re-renders every plot.
        smoothing = "0.5" if round_number % 2 == 0 else "0.6"
        registry.write_text(original.replace("smoothing: 0.6", f"smoothing: {smoothing}"))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_whole(docs)
        assert subprocess.run(command, capture_output=True, check=False).returncode == 0
        assert_whole(docs)
        assert not list(docs.rglob("*.tmp"))


def test_a_second_generation_at_once_is_refused(example_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    docs = example_project / "docs"
    docs.mkdir(exist_ok=True)
    with open(docs / LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(GenerationBusyError, match="another traindocs generation is writing"):
            generate(example_project / "checkpoints.yaml", docs)
        assert main(["generate", "--config", str(example_project / "checkpoints.yaml")]) == 1
        assert "another traindocs generation is writing" in capsys.readouterr().err
        assert not (docs / "index.md").exists()
    generate(example_project / "checkpoints.yaml", docs)  # released: works again
    assert (docs / "index.md").is_file()


def test_the_lock_does_not_touch_docs(example_project: Path) -> None:
    """`mkdocs serve` reloads on changes in docs/: a no-op generation must change nothing there."""
    docs = example_project / "docs"
    generate(example_project / "checkpoints.yaml", docs)
    before = {p: p.stat().st_mtime_ns for p in docs.rglob("*")}
    time.sleep(0.05)
    generate(example_project / "checkpoints.yaml", docs)
    assert {p: p.stat().st_mtime_ns for p in docs.rglob("*")} == before


def test_held_lock_excludes_a_second_holder_and_leaves_the_file_alone(tmp_path: Path) -> None:
    """One lock helper serves the generation lock and the remote cache's lock."""
    from generator.files import held_lock

    path = tmp_path / "lock"
    with held_lock(path):
        stamp = path.stat().st_mtime_ns
        with pytest.raises(BlockingIOError), held_lock(path, wait=False):
            pass  # pragma: no cover - the lock is held above
    with held_lock(path, wait=False):  # released: free again
        pass
    assert path.stat().st_mtime_ns == stamp and path.read_bytes() == b""


KILLED_PARENT = """
import os, signal, sys
from generator.workers import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool(2).for_work(100, 1)
    for future in [pool.submit(os.getpid) for _ in range(8)]:
        future.result()
    with open(sys.argv[1], "w") as out:  # the workers, idle now, blocked reading their call queue
        out.write(" ".join(str(pid) for pid in pool._processes))
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow  # starts worker processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers follow their parent's death on Linux only")
def test_idle_workers_exit_when_the_generation_is_killed(tmp_path: Path) -> None:
    """kill -9 of the generating process left its idle workers behind for good (they hold both ends
    of their call queue, so it never reaches end of file)."""
    script, pids_file = tmp_path / "killed_parent.py", tmp_path / "pids"
    script.write_text(KILLED_PARENT, encoding="utf-8")
    # Output to a file, not a pipe: workers left alive would hold a pipe open and keep run() waiting.
    with open(tmp_path / "stderr", "wb") as stderr:
        done = subprocess.run([sys.executable, str(script), str(pids_file)], cwd=REPO, stdout=stderr,
                              stderr=stderr, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, (tmp_path / "stderr").read_text()
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert len(pids) == 2
    alive = pids
    for _ in range(100):  # up to 10 s: the kernel signals them at once, they exit in milliseconds
        alive = [pid for pid in pids if _running(pid)]
        if not alive:
            break
        time.sleep(0.1)
    for pid in alive:  # don't leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the killed generation"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.slow  # starts worker processes
def test_workers_started_early_collect_garbage_even_when_forked_with_the_collector_paused() -> None:
    # The pipeline starts the workers at its first cache miss, while loading cached runs with the collector off:
    # a fork inherits that, and a worker drawing thousands of figures must still collect their cycles.
    import gc

    from generator.workers import WorkerPool

    pool = WorkerPool(2)
    gc.disable()
    try:
        pool.start_early()
    finally:
        gc.enable()
    try:
        executor = pool.for_work(100, 1)
        assert executor is not None
        assert all(executor.submit(gc.isenabled).result() for _ in range(4))
    finally:
        pool.close()
