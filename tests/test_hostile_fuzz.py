"""Fuzz: hostile side files, names and metric keys never crash, hang or write outside docs/ and site/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import sft_rows, write_state

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["</title><script>x</script>", "$\\invalidcmd$", "\ud800", "{{ 7*7 }}", "=HYPERLINK(1)",
                     "../../etc", "\x00", "a" * 300, "\u202e", "---"]),
)
SIDE_CONTENT = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda t: json.dumps({"base_model_name_or_path": t, "_name_or_path": t, "target_modules": [t]}).encode(
        "utf-8", "surrogatepass"), HOSTILE_TEXT),
    st.builds(lambda n: b'{"a": ' + b"[" * n + b"]" * n + b"}", st.integers(0, 3000)),
    st.builds(lambda t: ("---\nbase_model: " + json.dumps(t) + "\n---\n").encode("utf-8", "surrogatepass"),
              HOSTILE_TEXT),
    st.just("fifo"),
    st.just("dev-zero"),
)


def _snapshot(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=HOSTILE_TEXT, key=HOSTILE_TEXT, side=st.dictionaries(
    st.sampled_from(["adapter_config.json", "config.json", "README.md"]), SIDE_CONTENT, max_size=3))
@pytest.mark.slow
def test_hostile_inputs_fail_alone(name: str, key: str, side: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        project, outside = root / "project", root / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_text("keep")
        write_state(project / "good", sft_rows([2.0, 1.5, 1.2, 1.0]))
        rows = sft_rows([2.0, 1.5, 1.2, 1.0])
        for row in rows:
            row[key or "k"] = 0.5
        (project / "bad").mkdir()
        (project / "bad/trainer_state.json").write_text(
            json.dumps({"global_step": 40, "log_history": rows}, ensure_ascii=True), encoding="utf-8")
        for file_name, content in side.items():
            path = project / "bad" / file_name
            if content == "fifo":
                os.mkfifo(path)
            elif content == "dev-zero":
                path.symlink_to("/dev/zero")
            else:
                assert isinstance(content, bytes)
                path.write_bytes(content)
        registry = project / "checkpoints.yaml"
        registry.write_text(json.dumps({"checkpoints": [
            {"name": "Good", "slug": "good", "path": "good"},
            {"name": name if name.strip() else "x", "slug": "bad", "path": "bad"},
        ]}, ensure_ascii=True), encoding="utf-8")
        before_project, before_outside = _snapshot(project), _snapshot(outside)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "generator", "generate", "--config", str(registry), "--jobs", "1", "--no-cache"],
                capture_output=True, text=True, timeout=45, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"hung: name={name!r} key={key!r} side={side!r}") from exc
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert (project / "docs/models/good.md").is_file(), done.stderr
        assert _snapshot(outside) == before_outside
        new = _snapshot(project) - before_project
        assert all(Path(p).is_relative_to(project / "docs") for p in new), sorted(new)[:5]
