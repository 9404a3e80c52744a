"""Tests for `generator.reader`: checkpoint folder -> `TrainingRun`."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from generator.errors import CheckpointError
from generator.reader import LogTables, locate_state_file, parse_state, read_run, split_log_history
from generator.records import AdapterInfo, CheckpointEntry

SHOWN = "run/trainer_state.json"

TRAIN_ROWS: list[dict[str, Any]] = [
    {"loss": 2.0, "learning_rate": 1e-4, "grad_norm": 1.5, "step": 10, "epoch": 0.1},
    {"loss": 1.5, "learning_rate": 9e-5, "grad_norm": 1.0, "step": 20, "epoch": 0.2},
]


# --- helpers -------------------------------------------------------------------------------


def entry_for(path: Path, name: str = "run-a", written: str | None = None) -> CheckpointEntry:
    """A registry entry pointing at `path` (as if resolved from checkpoints.yaml)."""
    return CheckpointEntry(index=0, name=name, slug=name, path=written or str(path), resolved=path)


def write_state(folder: Path, rows: list[dict[str, Any]] | None = None, **top: Any) -> Path:
    """Write folder/trainer_state.json with `rows` as log_history; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"global_step": 20, "max_steps": 20, **top, "log_history": TRAIN_ROWS if rows is None else rows}
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return path


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


# --- locate_state_file -----------------------------------------------------------------------


def test_locate_the_file_itself(tmp_path: Path) -> None:
    state = write_state(tmp_path / "ckpt")

    assert locate_state_file(entry_for(state)) == state


def test_locate_in_a_checkpoint_folder(tmp_path: Path) -> None:
    state = write_state(tmp_path / "checkpoint-100")

    assert locate_state_file(entry_for(tmp_path / "checkpoint-100")) == state


@pytest.mark.parametrize(
    ("numbers", "latest"),
    [
        # Numeric order, not text order: '500' > '2668' and '9' > '10' as strings.
        ((500, 2668), 2668),
        ((9, 10), 10),
        ((10, 9, 100, 99), 100),
    ],
)
def test_locate_latest_checkpoint_of_a_run_folder(tmp_path: Path, numbers: tuple[int, ...], latest: int) -> None:
    run = tmp_path / "run"
    for number in numbers:
        write_state(run / f"checkpoint-{number}")

    assert locate_state_file(entry_for(run)) == run / f"checkpoint-{latest}" / "trainer_state.json"


def test_locate_skips_checkpoint_folders_without_state(tmp_path: Path) -> None:
    # A checkpoint still being written has its folder before its trainer_state.json.
    run = tmp_path / "run"
    write_state(run / "checkpoint-500")
    (run / "checkpoint-1000").mkdir()
    (run / "checkpoint-final").mkdir()

    assert locate_state_file(entry_for(run)) == run / "checkpoint-500" / "trainer_state.json"


def test_locate_missing_path(tmp_path: Path) -> None:
    entry = entry_for(tmp_path / "runs" / "x", name="gemma-2b", written="runs/x")

    with pytest.raises(CheckpointError, match=re.escape("checkpoints[0] (gemma-2b): path 'runs/x' does not exist")):
        locate_state_file(entry)


def test_locate_folder_with_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    entry = entry_for(tmp_path / "empty", name="gemma-2b", written="runs/empty")

    with pytest.raises(CheckpointError) as caught:
        locate_state_file(entry)

    assert str(caught.value).startswith(
        "checkpoints[0] (gemma-2b): path 'runs/empty' holds no trainer_state.json, no checkpoint-N folder with one and no trainer_log.jsonl"
    )


# --- parse_state errors ------------------------------------------------------------------------

PARSE_ERRORS = [
    pytest.param(b"", "the file is empty", id="empty"),
    pytest.param(b"  \n\n", "the file is empty", id="only-whitespace"),
    pytest.param(
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        b"size 123\n",
        "this is a Git LFS pointer, not the file; run 'git lfs pull' first",
        id="git-lfs-pointer",
    ),
    pytest.param(
        b'{"global_step": 20, "log_history": [{"loss": 2.0, "step": 10',
        "the JSON ends early (line 1); is the checkpoint still being copied?",
        id="truncated-in-a-number",
    ),
    pytest.param(
        b'{"global_step": 20, "log_history": [{"loss": 2.0, "step": 10}, \n\n',
        "the JSON ends early (line 3); is the checkpoint still being copied?",
        id="truncated-after-a-comma",
    ),
    pytest.param(
        # A copy cut in the middle of a key is just as truncated.
        b'{"global_step": 20, "log_history": [{"loss": 2.0, "ste',
        "the JSON ends early (line 1); is the checkpoint still being copied?",
        id="truncated-in-a-string",
    ),
    pytest.param(
        b'{"log_history": [}\n',
        "invalid JSON at line 1, column 18: Expecting value",
        id="invalid-json",
    ),
    pytest.param(b"[1, 2]", "expected a JSON object, got list", id="json-list"),
    pytest.param(b'{"global_step": 1}', "no 'log_history' key; this is not a trainer_state.json", id="no-log-history"),
    pytest.param(b'{"log_history": {"step": 1}}', "log_history: expected a list, got dict", id="log-history-not-list"),
    pytest.param(
        b'{"log_history": []}',
        "log_history is empty; nothing was logged before this checkpoint",
        id="empty-log-history",
    ),
    pytest.param(
        b'{"log_history": [{"step": 1, "loss": 1.0, "note": "caf\xe9"}]}',
        "not UTF-8 text (invalid continuation byte at byte 54)",
        id="latin-1-bytes",
    ),
    pytest.param(b"\xff\xfe{\x00}\x00", "not UTF-8 text", id="utf-16"),
]


@pytest.mark.parametrize(("data", "message"), PARSE_ERRORS)
def test_parse_state_errors(data: bytes, message: str) -> None:
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{SHOWN}: {message}")):
        parse_state(data, SHOWN)


def test_parse_state_reads_crlf_and_bom() -> None:
    # Files copied through Windows tools gain CRLF line ends and sometimes a BOM.
    text = json.dumps({"global_step": 20, "log_history": TRAIN_ROWS}, indent=2).replace("\n", "\r\n")

    for data in (text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        state = parse_state(data, SHOWN)
        assert state["global_step"] == 20
        assert state["log_history"] == TRAIN_ROWS


# --- split_log_history -------------------------------------------------------------------------


def _parts(tables: LogTables) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], list[str]]:
    return tables.train, tables.eval, tables.summary, tables.skipped


def test_split_rows_into_train_eval_and_summary() -> None:
    history = [
        {"loss": 2.0, "learning_rate": 1e-4, "grad_norm": 1.5, "step": 10, "epoch": 0.1},
        {"eval_loss": 1.9, "eval_runtime": 3.0, "step": 10, "epoch": 0.1},
        {"loss": 1.5, "learning_rate": 9e-5, "grad_norm": 1.0, "step": 20, "epoch": 0.2},
        {"eval_loss": 1.4, "eval_runtime": 3.1, "step": 20, "epoch": 0.2},
        {"train_runtime": 100.0, "train_loss": 1.75, "train_samples_per_second": 4.5, "step": 20, "epoch": 0.2},
    ]

    train, evals, summary, warnings = _parts(split_log_history(history))

    assert list(train.columns) == ["step", "epoch", "grad_norm", "learning_rate", "loss"]
    assert train["step"].tolist() == [10, 20]
    assert str(train["step"].dtype) == "int64"
    assert train["loss"].tolist() == [2.0, 1.5]
    assert list(evals.columns) == ["step", "epoch", "eval_loss", "eval_runtime"]
    assert evals["eval_loss"].tolist() == [1.9, 1.4]
    # The summary's train_loss is the mean over training, kept out of the loss curve.
    assert summary == {
        "train_runtime": 100.0,
        "train_loss": 1.75,
        "train_samples_per_second": 4.5,
        "step": 20.0,
        "epoch": 0.2,
    }
    assert warnings == []


def test_summary_row_without_runtime() -> None:
    # Some trainers write only train_loss at the end; without 'loss' it is still the summary.
    train, _, summary, _ = _parts(split_log_history([*TRAIN_ROWS, {"train_loss": 1.7, "step": 20}]))

    assert summary["train_loss"] == 1.7
    assert "train_loss" not in train.columns


def test_a_resumed_run_keeps_its_latest_segment() -> None:
    # Resumed from the checkpoint at step 20: steps 30 and 40 of the first attempt are replaced.
    history = [
        {"loss": 2.0, "step": 10},
        {"loss": 1.8, "step": 20},
        {"loss": 1.7, "step": 30},
        {"eval_loss": 1.75, "step": 30},
        {"loss": 1.9, "step": 40},
        {"loss": 1.65, "step": 30},
        {"loss": 1.6, "step": 40},
        {"eval_loss": 1.7, "step": 40},
    ]

    tables = split_log_history(history)

    assert tables.train["step"].tolist() == [10, 20, 30, 40]
    assert tables.train["loss"].tolist() == [2.0, 1.8, 1.65, 1.6]
    assert tables.eval["step"].tolist() == [40]
    assert tables.resumes == ((30, 40),)


def test_a_step_logged_twice_in_a_row_keeps_its_last_row() -> None:
    tables = split_log_history([{"loss": 2.0, "step": 10}, {"loss": 1.9, "step": 10}, {"loss": 1.6, "step": 20}])

    assert tables.train["loss"].tolist() == [1.9, 1.6]
    assert tables.resumes == ()


def test_predict_rows_without_a_step_are_kept_apart() -> None:
    tables = split_log_history([*TRAIN_ROWS, {"predict_loss": 1.2, "predict_bleu-4": 31.5, "epoch": 3.0}])

    assert tables.predict == {"predict_loss": 1.2, "predict_bleu-4": 31.5, "epoch": 3.0}
    assert tables.skipped == []


def test_progress_strings_are_not_reported() -> None:
    tables = split_log_history([{"loss": 2.0, "remaining_time": "0:01:03", "step": 10}])

    assert tables.skipped == []


def test_rows_without_a_valid_step_are_skipped_with_a_warning() -> None:
    history = [
        {"loss": 2.0},
        {"loss": 1.9, "step": -10},
        {"loss": 1.8, "step": 10.5},
        {"loss": 1.7, "step": 10},
        "not a row",
    ]

    train, _, _, warnings = _parts(split_log_history(history))

    assert train["step"].tolist() == [10]
    assert train["loss"].tolist() == [1.7]
    assert warnings == [
        "log_history[0]: no 'step'; row skipped",
        "log_history[4]: expected an object, got a string 'not a row'; skipped",
        "log_history[1].step: expected a whole number >= 0, got -10; row skipped (and 1 more like it)",
    ]


def test_float_step_is_accepted() -> None:
    train, _, _, warnings = _parts(split_log_history([{"loss": 2.0, "step": 10.0}, {"loss": 1.5, "step": 20.0}]))

    assert train["step"].tolist() == [10, 20]
    assert str(train["step"].dtype) == "int64"
    assert warnings == []


def test_string_values_are_skipped_with_a_warning_naming_the_key() -> None:
    history = [
        {"loss": 2.0, "grad_norm": "nan?", "step": 10},
        {"loss": 1.5, "grad_norm": "inf?", "step": 20},
        {"loss": 1.2, "grad_norm": 0.3, "step": 30, "run_name": "x"},
    ]

    train, _, _, warnings = _parts(split_log_history(history))

    assert train["loss"].tolist() == [2.0, 1.5, 1.2]
    assert train["grad_norm"].iloc[2] == 0.3
    assert "run_name" not in train.columns
    assert warnings == [
        "log_history[0].grad_norm: expected a number, got a string 'nan?'; not plotted (and 1 more like it)",
        "log_history[2].run_name: expected a number, got a string 'x'; not plotted",
    ]


def test_lr_is_aliased_to_learning_rate() -> None:
    train, _, _, _ = _parts(split_log_history([{"loss": 2.0, "lr": 1e-4, "step": 10}]))

    assert "lr" not in train.columns
    assert train["learning_rate"].tolist() == [1e-4]


def test_lr_and_learning_rate_both_logged_stay_apart() -> None:
    train, _, _, _ = _parts(split_log_history([{"loss": 2.0, "lr": 2e-4, "learning_rate": 1e-4, "step": 10}]))

    assert train["lr"].tolist() == [2e-4]
    assert train["learning_rate"].tolist() == [1e-4]


def test_nan_and_infinity_tokens_are_kept(tmp_path: Path) -> None:
    # Trainer writes a diverged loss as the bare tokens NaN / Infinity (not valid JSON, but Python's).
    text = (
        '{"global_step": 30, "log_history": [\n'
        '  {"loss": 2.0, "grad_norm": 1.0, "step": 10},\n'
        '  {"loss": NaN, "grad_norm": Infinity, "step": 20},\n'
        '  {"loss": 1.0, "grad_norm": -Infinity, "step": 30}\n'
        "]}\n"
    )
    path = tmp_path / "trainer_state.json"
    path.write_text(text, encoding="utf-8")

    run = read_run(entry_for(path))

    loss = run.train["loss"].tolist()
    grad = run.train["grad_norm"].tolist()
    assert loss[0] == 2.0 and math.isnan(loss[1]) and loss[2] == 1.0
    assert grad == [1.0, math.inf, -math.inf]
    assert run.warnings == ()


def test_bool_values_are_not_numbers() -> None:
    train, _, _, warnings = _parts(split_log_history([{"loss": 2.0, "is_best": True, "step": 10}]))

    assert "is_best" not in train.columns
    assert warnings == ["log_history[0].is_best: expected a number, got true; not plotted"]


# --- read_run ----------------------------------------------------------------------------------


def test_read_run_from_a_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_state(run_dir / "checkpoint-500", [{"loss": 3.0, "step": 500}], global_step=500)
    state_file = write_state(run_dir / "checkpoint-2668", global_step=2668, train_batch_size=4, logging_steps=10)
    (run_dir / "checkpoint-2668" / "unrelated.txt").write_text("x", encoding="utf-8")

    run = read_run(entry_for(run_dir))

    assert run.state_file == state_file
    assert run.checkpoint_dir == run_dir / "checkpoint-2668"
    assert run.global_step == 2668
    assert run.state == {"global_step": 2668, "max_steps": 20, "train_batch_size": 4, "logging_steps": 10}
    assert run.train["loss"].tolist() == [2.0, 1.5]
    assert run.eval.empty
    assert run.summary == {}
    assert run.adapter is None
    assert (run.base_model, run.base_model_source, run.model_type) == ("", "", "")


def test_state_sha256_is_the_hash_of_the_bytes(tmp_path: Path) -> None:
    path = write_state(tmp_path / "ckpt")

    run = read_run(entry_for(path))

    assert run.state_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_state_sha256_changes_with_the_bytes(tmp_path: Path) -> None:
    # Only whitespace differs: same data, different file, so a different hash.
    first = write_state(tmp_path / "a")
    second = tmp_path / "b" / "trainer_state.json"
    second.parent.mkdir()
    second.write_bytes(first.read_bytes() + b"\n")

    assert read_run(entry_for(first)).state_sha256 != read_run(entry_for(second)).state_sha256


def test_a_run_with_only_its_summary_row_is_read(tmp_path: Path) -> None:
    path = write_state(tmp_path / "ckpt", [{"train_runtime": 1.0, "train_loss": 2.0, "step": 0}])

    run = read_run(entry_for(path))

    assert run.train.empty and run.eval.empty
    assert run.summary["train_loss"] == 2.0


def test_read_run_without_any_usable_row(tmp_path: Path) -> None:
    path = write_state(tmp_path / "ckpt", [{"predict_loss": 1.0}, {"step": 3}])

    with pytest.raises(CheckpointError, match=re.escape("(checkpoints[0] (run-a)): log_history: no training")):
        read_run(entry_for(path))


def test_read_run_error_names_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "trainer_state.json"
    path.parent.mkdir()
    path.write_text("", encoding="utf-8")

    expected = "runs/ckpt/trainer_state.json (checkpoints[0] (run-a)): the file is empty"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        read_run(entry_for(path), shown_file="runs/ckpt/trainer_state.json")


LORA_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": ["v_proj", "q_proj", "o_proj", "k_proj"],
    "base_model_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
}


def test_adapter_fields(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    write_state(ckpt)
    write_json(ckpt / "adapter_config.json", LORA_CONFIG)

    run = read_run(entry_for(ckpt))

    assert run.adapter == AdapterInfo(
        peft_type="LORA",
        task_type="CAUSAL_LM",
        r=16,
        lora_alpha=32.0,
        lora_dropout=0.05,
        target_modules=("k_proj", "o_proj", "q_proj", "v_proj"),
        base_model="Qwen/Qwen2.5-7B-Instruct",
    )


def test_adapter_target_modules_as_one_string(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    write_state(ckpt)
    write_json(ckpt / "adapter_config.json", {"peft_type": "LORA", "target_modules": "all-linear"})

    run = read_run(entry_for(ckpt))

    assert run.adapter is not None
    assert run.adapter.target_modules == ("all-linear",)
    assert run.adapter.r is None


def front_matter(base_model: Any) -> str:
    return "---\n" + json.dumps({"license": "apache-2.0", "base_model": base_model}) + "\n---\n\n# Model card\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "adapter_config.json": LORA_CONFIG,
                "config.json": {"_name_or_path": "from/config", "model_type": "qwen2"},
                "README.md": front_matter("from/readme"),
            },
            ("Qwen/Qwen2.5-7B-Instruct", "adapter_config.json"),
            id="adapter-first",
        ),
        pytest.param(
            {
                "adapter_config.json": {**LORA_CONFIG, "base_model_name_or_path": None},
                "config.json": {"_name_or_path": "from/config"},
                "README.md": front_matter("from/readme"),
            },
            ("from/config", "config.json"),
            id="adapter-without-base-then-config",
        ),
        pytest.param(
            {"config.json": {"_name_or_path": "from/config"}, "README.md": front_matter("from/readme")},
            ("from/config", "config.json"),
            id="config-before-readme",
        ),
        pytest.param(
            {"config.json": {"_name_or_path": ""}, "README.md": front_matter("from/readme")},
            ("from/readme", "README.md"),
            id="empty-config-name-then-readme",
        ),
        pytest.param({"README.md": front_matter("from/readme")}, ("from/readme", "README.md"), id="readme-string"),
        pytest.param(
            {"README.md": front_matter(["first/model", "second/model"])},
            ("first/model", "README.md"),
            id="readme-list-takes-first",
        ),
        pytest.param(
            {"README.md": front_matter("from/readme").replace("\n", "\r\n")},
            ("from/readme", "README.md"),
            id="readme-crlf",
        ),
        pytest.param(
            # A card that is only front matter, saved without a final newline.
            {"README.md": "---\nbase_model: from/readme\n---"},
            ("from/readme", "README.md"),
            id="readme-front-matter-at-end-of-file",
        ),
        pytest.param(
            {"README.md": "# No front matter\nbase_model: nope\n"},
            ("", ""),
            id="readme-without-front-matter",
        ),
        pytest.param({"README.md": "---\nbase_model: [unclosed\n---\n"}, ("", ""), id="readme-bad-yaml"),
        pytest.param({"config.json": "{not json"}, ("", ""), id="config-not-json"),
        pytest.param({}, ("", ""), id="nothing"),
    ],
)
def test_base_model_lookup_order(tmp_path: Path, files: dict[str, Any], expected: tuple[str, str]) -> None:
    ckpt = tmp_path / "ckpt"
    write_state(ckpt)
    for name, content in files.items():
        if isinstance(content, str):
            (ckpt / name).write_bytes(content.encode("utf-8"))
        else:
            write_json(ckpt / name, content)

    run = read_run(entry_for(ckpt))

    assert (run.base_model, run.base_model_source) == expected


def test_model_type_from_config(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    write_state(ckpt)
    write_json(ckpt / "config.json", {"model_type": "gemma2"})

    assert read_run(entry_for(ckpt)).model_type == "gemma2"


def test_run_folder_files_are_found_too(tmp_path: Path) -> None:
    # Trainer saves the model card and adapter in the output folder, not in checkpoint-N.
    run_dir = tmp_path / "run"
    write_state(run_dir / "checkpoint-2668")
    (run_dir / "README.md").write_text(front_matter("google/gemma-2-2b"), encoding="utf-8")

    run = read_run(entry_for(run_dir))

    assert (run.base_model, run.base_model_source) == ("google/gemma-2-2b", "README.md")


def test_checkpoint_folder_files_win_over_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_state(run_dir / "checkpoint-10")
    write_json(run_dir / "checkpoint-10" / "adapter_config.json", {**LORA_CONFIG, "r": 8})
    write_json(run_dir / "adapter_config.json", {**LORA_CONFIG, "r": 64})

    run = read_run(entry_for(run_dir))

    assert run.adapter is not None
    assert run.adapter.r == 8


def test_training_args_bin_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # training_args.bin is a pickle: loading it would run code from the checkpoint.
    ckpt = tmp_path / "ckpt"
    write_state(ckpt)
    (ckpt / "training_args.bin").write_bytes(b"\x80\x04garbage\x00\xff not a pickle")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)

    run = read_run(entry_for(ckpt))

    assert run.train["step"].tolist() == [10, 20]
    assert run.warnings == ()


# --- LLaMA-Factory trainer_log.jsonl -----------------------------------------------------------


def test_a_folder_with_only_trainer_log_jsonl_is_read(tmp_path: Path) -> None:
    lines = [
        {"current_steps": 10, "total_steps": 30, "loss": 2.0, "lr": 1e-4, "epoch": 0.3, "percentage": 33.3,
         "elapsed_time": "0:01:03", "remaining_time": "1 day, 0:02:06"},
        {"current_steps": 20, "total_steps": 30, "loss": 1.5, "lr": 5e-5, "epoch": 0.6},
        {"current_steps": 20, "total_steps": 30, "eval_loss": 1.7, "loss": None, "epoch": 0.6},
        {"current_steps": 10, "total_steps": 30, "loss": 1.9, "lr": 1e-4, "epoch": 0.3},
        {"current_steps": 30, "total_steps": 30, "loss": 1.2, "lr": 0.0, "epoch": 1.0},
    ]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "trainer_log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")

    run = read_run(entry_for(folder))

    assert run.source_format == "trainer_log.jsonl"
    assert run.state["max_steps"] == 30
    assert run.train["step"].tolist() == [10, 30]  # the restart at step 10 replaced step 20
    assert run.train["loss"].tolist() == [1.9, 1.2]
    assert run.train["learning_rate"].tolist() == [1e-4, 0.0]
    assert "percentage" not in run.train.columns
    assert run.eval.empty
    assert run.resumes == ((10, 20),)
    assert run.warnings == ()


def test_trainer_log_jsonl_with_a_broken_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trainer_log.jsonl"
    path.write_text('{"current_steps": 1, "loss": 1.0}\n{"current_steps": 2, "lo\n', encoding="utf-8")

    with pytest.raises(CheckpointError, match=re.escape("trainer_log.jsonl (checkpoints[0] (run-a)): line 2 is not JSON")):
        read_run(entry_for(path))


def test_run_folder_lists_its_saved_checkpoints(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for step in (500, 1000, 20):
        write_state(run_dir / f"checkpoint-{step}", [{"loss": 3.0, "step": step}], global_step=step)

    run = read_run(entry_for(run_dir))

    assert run.saved_checkpoints == (20, 500, 1000)
    assert read_run(entry_for(run_dir / "checkpoint-500")).saved_checkpoints == ()


def test_two_interleaved_writers_are_merged_and_a_real_restart_still_counts() -> None:
    """Two processes logging one file drift a logging interval apart (jsonl_03 of the corpus): not 400 restarts."""
    history: list[dict[str, object]] = []
    for step in range(10, 510, 10):  # writer B lags writer A by one interval
        history.append({"loss": 2.0 - step / 1000, "step": step})
        if step > 10:
            history.append({"loss": 2.0 - (step - 10) / 1000 + 0.0001, "step": step - 10})
    history += [{"loss": 1.0, "step": step} for step in range(300, 360, 10)]  # resumed from checkpoint-290

    tables = split_log_history(history)

    assert tables.resumes == ((300, 500),)
    assert tables.train["step"].tolist() == list(range(10, 360, 10))
    assert any("49 rows step back by at most 20 steps" in message for message in tables.skipped)
