"""`TraindocsCallback`: registering a run in checkpoints.yaml, and real (tiny, CPU) training runs.

The registry edits are tested without transformers. The training runs need torch,
transformers and TRL: they skip without them, except under CI=true where .ci/run
installs them and a missing one is a failure. The model is built from a config with
random weights and the tokenizer is trained here on a few sentences: nothing is downloaded.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from conftest import REPO, copy_example_project, sft_rows
from generator.callback import ReportWriter, register_run, registry_with_run
from generator.cards import MARKER_START
from generator.errors import ConfigError
from generator.registry import load_registry
from generator.scaffold import init_project

# ---------------------------------------------------------------------------
# The registry edit: one entry added or its path updated, every other byte kept.


def _register(text: str, tmp_path: Path, name: str = "tiny run", path: str = "../outputs/tiny",
              run_dir: str = "outputs/tiny") -> str:
    return registry_with_run(text, name, path, tmp_path / "report", tmp_path / run_dir, "checkpoints.yaml")


def _without(text: str, removed: str) -> str:
    assert text.count(removed) == 1, text
    return text.replace(removed, "", 1)


def test_appends_to_the_init_registry_keeping_its_comments(tmp_path: Path) -> None:
    init_project(tmp_path / "report")
    original = (tmp_path / "report" / "checkpoints.yaml").read_text()
    updated = _register(original, tmp_path)
    # `checkpoints: []` became a block list; every comment line of the template is still there, in order.
    assert _without(updated, "\n  - name: tiny run\n    path: ../outputs/tiny") == original.replace(
        "checkpoints: []", "checkpoints:")
    document = yaml.safe_load(updated)
    assert document["checkpoints"] == [{"name": "tiny run", "path": "../outputs/tiny"}]


def test_appends_after_the_last_entry_of_a_block_list(tmp_path: Path) -> None:
    original = (REPO / "checkpoints.yaml").read_text() + "\n# a closing comment\n"
    updated = _register(original, tmp_path)
    added = "\n  - name: tiny run\n    path: ../outputs/tiny"
    assert _without(updated, added) == original
    # Right after the last entry's last line (its trailing comment stays on that entry), before the closing comment.
    assert updated.index(added) < updated.index("# a closing comment")
    entries = yaml.safe_load(updated)["checkpoints"]
    assert entries[:-1] == yaml.safe_load(original)["checkpoints"]
    assert entries[-1] == {"name": "tiny run", "path": "../outputs/tiny"}


def test_updates_only_the_path_of_the_runs_entry(tmp_path: Path) -> None:
    original = (
        "# my runs\n"
        "checkpoints:\n"
        "  - name: other\n"
        "    path: elsewhere   # keep me\n"
        "  - name: 'tiny run'\n"
        "    path: \"../outputs/tiny/checkpoint-10\"  # moves with the run\n"
        "    tags: [a, b]\n"
    )
    updated = _register(original, tmp_path, path="../outputs/tiny/trainer_state.json")
    assert updated == original.replace('"../outputs/tiny/checkpoint-10"', "../outputs/tiny/trainer_state.json")
    assert _register(updated, tmp_path, path="../outputs/tiny/trainer_state.json") == updated  # nothing to do


def test_finds_the_run_by_its_folder_under_another_name(tmp_path: Path) -> None:
    original = "checkpoints:\n  - name: My SFT\n    path: ../outputs/tiny/checkpoint-20\n"
    updated = _register(original, tmp_path, path="../outputs/tiny/checkpoint-30")
    assert updated == original.replace("checkpoint-20", "checkpoint-30")


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("checkpoints: [{name: a, path: b}]\n", "checkpoints: [{name: a, path: b}, {name: tiny run, path: ../outputs/tiny}]\n"),
        ("site:\n  title: T\ncheckpoints:  # none yet\nanalysis: {}\n",
         "site:\n  title: T\ncheckpoints:  # none yet\n  - name: tiny run\n    path: ../outputs/tiny\nanalysis: {}\n"),
        ("checkpoints: ~\n", "checkpoints:\n  - name: tiny run\n    path: ../outputs/tiny\n"),
        ("site:\n  title: T", "site:\n  title: T\ncheckpoints:\n  - name: tiny run\n    path: ../outputs/tiny\n"),
        ("", "checkpoints:\n  - name: tiny run\n    path: ../outputs/tiny\n"),
        ("checkpoints:\n- name: a\n  path: b\n", "checkpoints:\n- name: a\n  path: b\n- name: tiny run\n  path: ../outputs/tiny\n"),
        ("checkpoints:\r\n  - name: a\r\n    path: b # c\r\n",
         "checkpoints:\r\n  - name: a\r\n    path: b # c\r\n  - name: tiny run\r\n    path: ../outputs/tiny\r\n"),
        ("checkpoints: []\r\n", "checkpoints:\r\n  - name: tiny run\r\n    path: ../outputs/tiny\r\n"),
    ],
    ids=["flow-list", "empty-value", "null", "no-checkpoints-key", "empty-file", "unindented-list", "crlf", "crlf-empty"],
)
def test_other_shapes_of_the_list(tmp_path: Path, original: str, expected: str) -> None:
    assert _register(original, tmp_path) == expected


def test_a_taken_slug_gets_a_free_one(tmp_path: Path) -> None:
    original = "checkpoints:\n  - name: Tiny Run!\n    path: a\n  - name: x\n    slug: tiny-run-2\n    path: b\n"
    updated = _register(original, tmp_path)
    assert updated.endswith("  - name: tiny run\n    path: ../outputs/tiny\n    slug: tiny-run-3\n")


def test_awkward_names_and_paths_read_back_as_written(tmp_path: Path) -> None:
    name, path = "run: #2 \"quoted\" é 🙂", "../out puts/a#b: c"
    updated = _register("checkpoints: []\n", tmp_path, name=name, path=path)
    assert yaml.safe_load(updated)["checkpoints"] == [{"name": name, "path": path}]


def test_refuses_a_registry_it_cannot_edit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"checkpoints.yaml:3:1: YAML syntax error"):
        _register("checkpoints:\n  - name: [unclosed\n", tmp_path)
    with pytest.raises(ConfigError, match="expected a list"):
        _register("checkpoints: {a: b}\n", tmp_path)


def test_register_run_writes_a_registry_that_loads(tmp_path: Path) -> None:
    project = copy_example_project(tmp_path)
    registry = project / "checkpoints.yaml"
    before = registry.read_text()
    run = tmp_path / "outputs" / "tiny"
    (run / "checkpoint-10").mkdir(parents=True)
    assert register_run(registry, "tiny run", run / "checkpoint-10", run)
    loaded = load_registry(registry)
    assert not loaded.problems
    assert [e.name for e in loaded.entries][-1] == "tiny run"
    assert loaded.entries[-1].resolved == run / "checkpoint-10"
    assert _without(registry.read_text(), "\n  - name: tiny run\n    path: ../outputs/tiny/checkpoint-10") == before
    assert not register_run(registry, "tiny run", run / "checkpoint-10", run)


def _register_runs(registry: str, first: int, count: int) -> None:
    for number in range(first, first + count):
        run = Path(registry).parent.parent / "outputs" / f"run-{number}"
        register_run(Path(registry), f"run {number}", run, run)


@pytest.mark.slow  # four processes started with spawn
def test_runs_registering_at_once_lose_no_entry(tmp_path: Path) -> None:
    init_project(tmp_path / "report")
    registry = tmp_path / "report" / "checkpoints.yaml"
    for number in range(24):
        (tmp_path / "outputs" / f"run-{number}").mkdir(parents=True)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_register_runs, args=(str(registry), 6 * i, 6)) for i in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [writer.exitcode for writer in writers] == [0, 0, 0, 0]
    loaded = load_registry(registry)
    assert not loaded.problems
    assert sorted(e.name for e in loaded.entries) == sorted(f"run {n}" for n in range(24))


# ---------------------------------------------------------------------------
# The callback's events without a trainer.


@dataclass
class FakeState:
    global_step: int = 10
    is_world_process_zero: bool = True
    log_history: list[dict[str, Any]] = field(default_factory=list)

    def save_to_json(self, path: str) -> None:
        Path(path).write_text(json.dumps({"global_step": self.global_step, "log_history": self.log_history}))


def _args(output_dir: Path, **more: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"output_dir": str(output_dir), "run_name": None, "push_to_hub": False, **more})


def test_nothing_is_written_on_other_processes(tmp_path: Path) -> None:
    output = tmp_path / "out"
    (output / "checkpoint-10").mkdir(parents=True)
    (output / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 10, "log_history": []}')
    writer = ReportWriter(tmp_path / "report")
    state = FakeState(is_world_process_zero=False)
    for event in (writer.on_save, writer.on_train_end, writer.on_push_begin):
        event(_args(output), state, None)
    assert not (tmp_path / "report").exists()
    assert sorted(p.name for p in output.iterdir()) == ["checkpoint-10"]  # no final state, no card
    assert writer.timings == []


def test_a_failing_report_logs_one_line_and_training_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "checkpoints.yaml").write_text("checkpoints: [\n")  # broken by hand while training
    output = tmp_path / "out"
    writer = ReportWriter(report)
    state = FakeState(log_history=[{"step": 10, "loss": 1.0}])
    with caplog.at_level(logging.WARNING, logger="generator.callback"):
        writer.on_train_end(_args(output), state, None)
    assert [r.getMessage() for r in caplog.records] == [
        f"traindocs: the training report was not updated at step 10 ({report / 'checkpoints.yaml'}:2:1: "
        "YAML syntax error: expected the node content, but found '<stream end>')"
    ]
    assert (report / "checkpoints.yaml").read_text() == "checkpoints: [\n"
    assert [t.event for t in writer.timings] == ["train_end"]


def test_the_card_links_to_mkdocs_site_url_when_the_run_pushes(tmp_path: Path) -> None:
    report = tmp_path / "report"
    init_project(report)
    mkdocs_yml = report / "mkdocs.yml"
    mkdocs_yml.write_text(mkdocs_yml.read_text().replace(
        "site_url: !ENV [TRAINDOCS_SITE_URL, null]", "site_url: https://example.github.io/training-report/"))
    assert "site_url: https://example.github.io/training-report/" in mkdocs_yml.read_text()
    output = tmp_path / "out"
    output.mkdir()
    (output / "README.md").write_text("---\nlicense: mit\n---\n\n# My model\n")
    rows = [{**row, "step": row["step"] // 10} for row in sft_rows([2.0, 1.5, 1.2, 1.1])]
    writer = ReportWriter(report)
    writer.on_train_end(_args(output, push_to_hub=True), FakeState(global_step=4, log_history=rows), None)
    card = (output / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n---\n\n# My model\n\n" + MARKER_START)
    assert "](https://example.github.io/training-report/models/out/)" in card
    assert "| Steps | 4 |" in card and "| End loss | 1.1 |" in card
    # Without a push the card is not touched.
    (output / "README.md").write_text("# untouched\n")
    writer.on_train_end(_args(output), FakeState(global_step=4, log_history=rows), None)
    assert (output / "README.md").read_text() == "# untouched\n"


def test_the_name_comes_from_run_name_else_the_output_folder(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path)
    assert writer.run_name(_args(tmp_path / "out")) == "out"
    assert writer.run_name(SimpleNamespace(output_dir="out", run_name="out")) == "out"  # transformers 4's default
    assert writer.run_name(SimpleNamespace(output_dir="out", run_name="sft-v2")) == "sft-v2"
    assert ReportWriter(tmp_path, name="Mine").run_name(_args(tmp_path / "out")) == "Mine"


def test_importing_traindocs_does_not_import_transformers() -> None:
    code = "import sys, generator, generator.cli, generator.callback; print(sorted({'transformers', 'torch', 'trl'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Real training runs: Trainer, SFTTrainer, DPOTrainer, GRPOTrainer on a tiny random model.

TRAINING_PACKAGES = ("torch", "transformers", "trl", "datasets", "tokenizers")
training_run = pytest.mark.filterwarnings(
    # Their deprecation notices are theirs to act on; a warning raised from traindocs still fails the test.
    r"ignore::Warning:(transformers|trl|torch|accelerate|datasets|tokenizers|huggingface_hub)(\.|$)"
)


def require_training() -> None:
    """Skip (or, under CI, fail) when the training packages are missing."""
    missing = [name for name in TRAINING_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        reason = f"training-run tests need {', '.join(missing)} (pip install -e '.[train]' trl, with a CPU torch)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": .ci/run installs them")
        pytest.skip(reason)


SENTENCES = [
    "the cat sat on the mat", "a dog ran in the park", "birds sing in the morning", "the sun is warm today",
    "we read a book at night", "rain falls on the roof", "she plays the piano well", "he likes green tea",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    require_training()
    return tiny_tokenizer()


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained here on SENTENCES."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<eos>")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")


def tiny_model(tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config)


def common_args(output: Path, steps: int, save_every: int) -> dict[str, Any]:
    return {
        "output_dir": str(output), "max_steps": steps, "logging_steps": 1, "save_steps": save_every,
        "per_device_train_batch_size": 2, "learning_rate": 1e-3, "report_to": "none", "use_cpu": True,
        "seed": 0, "disable_tqdm": True,
    }


def assert_report_matches_state(report_dir: Path, output: Path, name: str) -> dict[str, Any]:
    """summary.json and the model's figures.json hold what the run's own final trainer_state.json holds."""
    state = json.loads((output / "trainer_state.json").read_text())
    losses = [(row["step"], row["loss"]) for row in state["log_history"] if "loss" in row]
    summary = json.loads((report_dir / "docs" / "summary.json").read_text())
    model = next(m for m in summary["models"] if m["name"] == name)
    assert model["steps"] == state["global_step"]
    assert (model["start_step"], model["start_loss"]) == losses[0]
    assert (model["end_step"], model["end_loss"]) == losses[-1]
    assert model["last_logged_step"] == state["log_history"][-1]["step"]
    assert model["min_loss"] == min(loss for _, loss in losses)
    figures = json.loads((report_dir / "docs" / "models" / model["slug"] / "figures.json").read_text())
    assert figures["figures"]["steps"] == figures["figures"]["global_step"] == state["global_step"]
    assert figures["figures"]["logged_rows"] == len(losses)
    assert (figures["figures"]["start_loss"], figures["figures"]["end_loss"]) == (losses[0][1], losses[-1][1])
    return model


def callback(report_dir: Path, **options: Any) -> Any:
    from generator import TraindocsCallback

    return TraindocsCallback(report_dir=report_dir, **options)


@pytest.mark.slow
@training_run
def test_sft_run_reports_into_an_existing_project(tmp_path: Path, tokenizer: Any) -> None:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    report_dir = copy_example_project(tmp_path)
    registry = report_dir / "checkpoints.yaml"
    registry_before = registry.read_text()
    output = tmp_path / "outputs" / "tiny-sft"
    writer = callback(report_dir, name="Tiny SFT")
    trainer = SFTTrainer(model=tiny_model(tokenizer), args=SFTConfig(**common_args(output, 30, 10), max_length=32),
                         train_dataset=Dataset.from_dict({"text": SENTENCES}), processing_class=tokenizer,
                         callbacks=[writer])
    trainer.train()

    model = assert_report_matches_state(report_dir, output, "Tiny SFT")
    assert model["kind"] == "sft"
    # The final state, written at the end: it has the trainer's closing row, which no checkpoint has.
    final = json.loads((output / "trainer_state.json").read_text())
    assert "train_runtime" in final["log_history"][-1]
    assert "train_runtime" not in json.loads((output / "checkpoint-30" / "trainer_state.json").read_text())["log_history"][-1]
    # Registered once, after the other entries; comments and other entries byte for byte.
    assert _without(registry.read_text(), "\n  - name: Tiny SFT\n    path: ../outputs/tiny-sft/trainer_state.json") \
        == registry_before
    assert [t.event for t in writer.timings] == ["save", "save", "save", "train_end"]
    assert [t.step for t in writer.timings] == [10, 20, 30, 30]
    assert (report_dir / "docs" / "models" / "tiny-sft.md").is_file()
    assert not (output / "README.md").read_text().count(MARKER_START)  # no push, no site_url: the card is TRL's own


@pytest.mark.slow
@training_run
def test_dpo_run_creates_the_project_and_builds_the_site(tmp_path: Path, tokenizer: Any) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    report_dir = tmp_path / "report"  # missing: created with `traindocs init`
    output = tmp_path / "outputs" / "tiny-dpo"
    writer = callback(report_dir, build=True)
    model = tiny_model(tokenizer)
    pairs = Dataset.from_dict({
        "prompt": ["the cat", "a dog", "birds", "the sun"],
        "chosen": [" sat on the mat", " ran in the park", " sing in the morning", " is warm today"],
        "rejected": [" green tea", " the piano", " on the roof", " a book"],
    })
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=DPOConfig(**common_args(output, 20, 10),
                         max_length=32), train_dataset=pairs, processing_class=tokenizer, callbacks=[writer])
    trainer.train()

    summary = assert_report_matches_state(report_dir, output, "tiny-dpo")
    assert summary["kind"] == "preference"
    assert (report_dir / "mkdocs.yml").is_file()
    assert (report_dir / "site" / "models" / "tiny-dpo" / "index.html").is_file()
    assert yaml.safe_load((report_dir / "checkpoints.yaml").read_text())["checkpoints"] == [
        {"name": "tiny-dpo", "path": "../outputs/tiny-dpo/trainer_state.json"}]


@pytest.mark.slow
@training_run
def test_grpo_run(tmp_path: Path, tokenizer: Any) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def reward_length(completions: list[str], **_: Any) -> list[float]:
        return [-abs(len(text) - 12) / 12 for text in completions]

    report_dir = tmp_path / "report"
    output = tmp_path / "outputs" / "tiny-grpo"
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer), reward_funcs=reward_length,
        args=GRPOConfig(**common_args(output, 8, 4), num_generations=2, max_completion_length=8, generation_batch_size=4),
        train_dataset=Dataset.from_dict({"prompt": ["the cat", "a dog", "birds", "the sun"]}),
        processing_class=tokenizer, callbacks=[callback(report_dir)],
    )
    trainer.train()
    summary = assert_report_matches_state(report_dir, output, "tiny-grpo")
    assert summary["kind"] == "rl"


class FakeHub:
    """The Hub API of transformers.trainer, on this machine: records what each upload would carry."""

    def __init__(self) -> None:
        self.uploads: list[dict[str, Any]] = []

    def create_repo(self, name: str, **_: Any) -> Any:
        return SimpleNamespace(repo_id=f"local/{name}")

    def upload_folder(self, *, folder_path: str, commit_message: str, run_as_future: bool = False, **_: Any) -> Any:
        readme = Path(folder_path) / "README.md"
        self.uploads.append({"message": commit_message, "readme": readme.read_text() if readme.is_file() else None})
        if not run_as_future:
            return SimpleNamespace(commit_url="local")
        done: Future[Any] = Future()
        done.set_result(None)
        return done


@pytest.mark.slow
@training_run
def test_pushed_model_cards_carry_the_report_section(tmp_path: Path, tokenizer: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.trainer
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    hub = FakeHub()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)

    def encode(batch: dict[str, list[str]]) -> dict[str, Any]:
        encoded = tokenizer(batch["text"], truncation=True, max_length=16, padding="max_length")
        encoded["labels"] = [[token if keep else -100 for token, keep in zip(ids, mask, strict=True)]
                             for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)]
        return dict(encoded)

    data = Dataset.from_dict({"text": SENTENCES}).map(encode, batched=True, remove_columns=["text"])
    report_dir = tmp_path / "report"
    output = tmp_path / "outputs" / "tiny-plain"
    args = TrainingArguments(**common_args(output, 20, 10), push_to_hub=True, hub_strategy="every_save")
    writer = callback(report_dir, site_url="https://reports.example.org/runs")
    trainer = Trainer(model=tiny_model(tokenizer), args=args, train_dataset=data, callbacks=[writer])
    trainer.train()
    trainer.push_to_hub()

    assert_report_matches_state(report_dir, output, "tiny-plain")
    # Each checkpoint push carried the section of that checkpoint; the final push, Trainer's own card with it.
    assert [u["message"] for u in hub.uploads] == [
        "Training in progress, step 10", "Training in progress, step 20", "End of training"]
    assert [MARKER_START in (u["readme"] or "") for u in hub.uploads] == [True, True, True]
    pushed_steps = [next(line for line in u["readme"].splitlines() if line.startswith("| Steps |")) for u in hub.uploads]
    assert pushed_steps == ["| Steps | 10 |", "| Steps | 20 |", "| Steps | 20 |"]
    final_card = hub.uploads[-1]["readme"]
    assert final_card.startswith("---\n")  # the card transformers wrote, front matter first
    assert "(https://reports.example.org/runs/models/tiny-plain/badge.svg)](https://reports.example.org/runs/models/tiny-plain/)" \
        in final_card
    assert final_card == (output / "README.md").read_text()
