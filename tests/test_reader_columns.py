"""The column-wise reading of `log_history` (`reader._split_columns`) against the row-wise one (`_split_rows`).

`split_log_history` takes the column-wise path for the usual log and the row-wise one for any other; both
must give the same tables (columns, their order, dtypes, index, every value bit for bit), the same summary
and predict values, resumes, skipped-row messages and non-finite records. Checked on a generated family of
logs (mixed key sets, interleaved eval rows, summary rows, NaN/inf/strings/bools/None/huge integers,
duplicated and decreasing steps, resumed runs, empty logs) and on every log of the shared corpus.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from generator.errors import CheckpointError
from generator.reader import (
    LogTables,
    _split_columns,
    _split_rows,
    parse_jsonl_log,
    parse_state,
    split_log_history,
)

SEEDS = range(400)


# --- comparing two LogTables bit for bit ----------------------------------------------------


def _bits(value: object) -> object:
    """A value as something equal only when bit for bit equal (-0.0 is not 0.0; NaN equals NaN)."""
    if isinstance(value, float):
        return (type(value).__name__, value.hex())
    return (type(value).__name__, value)


def assert_same_table(expected: pd.DataFrame, actual: pd.DataFrame, what: str) -> None:
    assert list(actual.columns) == list(expected.columns), what
    assert actual.columns.dtype == expected.columns.dtype, what
    assert list(actual.dtypes) == list(expected.dtypes), what
    assert type(actual.index) is type(expected.index), what
    assert actual.index.equals(expected.index), what
    assert actual.shape == expected.shape, what
    for column in expected.columns:
        assert actual[column].to_numpy().tobytes() == expected[column].to_numpy().tobytes(), f"{what}: {column}"
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


def assert_same_tables(expected: LogTables, actual: LogTables, what: str = "") -> None:
    assert_same_table(expected.train, actual.train, f"{what} train")
    assert_same_table(expected.eval, actual.eval, f"{what} eval")
    for name in ("summary", "predict"):
        mine, theirs = getattr(actual, name), getattr(expected, name)
        assert [(k, _bits(v)) for k, v in mine.items()] == [(k, _bits(v)) for k, v in theirs.items()], f"{what} {name}"
    assert actual.resumes == expected.resumes, what
    assert actual.skipped == expected.skipped, what
    assert actual.non_finite == expected.non_finite, what


def check(history: list[Any], what: str = "") -> bool:
    """Compare both paths (and `split_log_history`) on `history`; True when the column-wise path took it."""
    expected = _split_rows(history)
    assert_same_tables(expected, split_log_history(history), what)
    fast = _split_columns(history)
    if fast is not None:
        assert_same_tables(expected, fast, what)
    return fast is not None


# --- a generated family of logs --------------------------------------------------------------

TRAIN_KEYS = ["loss", "learning_rate", "grad_norm", "epoch", "entropy", "num_tokens", "mean_token_accuracy",
              "lr", "throughput", "a\ud800", "a\udc00", "rewards/chosen"]
EVAL_KEYS = ["eval_loss", "eval_runtime", "eval_g1_loss", "eval_g2_loss", "eval_accuracy", "epoch"]
LONG_KEY = "k" * 205
ODD_VALUES: list[Any] = [None, True, False, "0.00", "1:02:03", [1.0], {"a": 1}, 10**400, -(10**400), 2**70 + 1,
                         2**53 + 1, -0.0, math.nan, math.inf, -math.inf, 1e308, 0, 7]


def _value(rng: random.Random, dirty: float) -> Any:
    roll = rng.random()
    if roll < dirty:
        return rng.choice(ODD_VALUES)
    if roll < dirty + 0.15:
        return rng.randrange(-1000, 1000)
    if roll < dirty + 0.2:
        return rng.choice([1e308, -1e308, 5e-324, -0.0, 0.0, 2**53 + 1, 2**63 + 7, 123456789012345678])
    return rng.uniform(-3, 3) * 10 ** rng.randrange(-8, 6)


def _step_value(rng: random.Random, step: int, dirty: float) -> Any:
    if rng.random() < dirty / 4:
        return rng.choice([None, True, "10", -5, 10.5, math.nan, math.inf, 2**53 + 2, 2**60, 10**400, float(step)])
    return float(step) if rng.random() < 0.1 else step


def _key_set(rng: random.Random, pool: list[str], extra: float) -> list[str]:
    keys = rng.sample(pool, rng.randrange(1, min(6, len(pool)) + 1))
    if rng.random() < extra:
        keys.append(rng.choice([LONG_KEY, "train_runtime", "predict_loss", "total_flos", "eval_" + LONG_KEY]))
    if rng.random() < 0.5:
        keys.sort()  # as transformers writes them (sort_keys); otherwise in any order
    return keys


def generated_log(seed: int) -> list[Any]:
    """A log of one of several kinds: clean (most), or with odd values, odd steps, odd rows."""
    rng = random.Random(seed)
    if seed % 50 == 7:
        return []
    dirty = 0.0 if rng.random() < 0.5 else rng.choice([0.002, 0.02, 0.1])
    non_finite = rng.random() < 0.3
    train_sets = [_key_set(rng, TRAIN_KEYS, 0.1 if dirty else 0.0) for _ in range(rng.randrange(1, 4))]
    eval_sets = [_key_set(rng, EVAL_KEYS, 0.1 if dirty else 0.0) for _ in range(rng.randrange(0, 4))]
    for keys in eval_sets:
        if not any(key.startswith("eval_") for key in keys):
            keys.append("eval_loss")
    resumes = rng.random() < 0.3
    stride = rng.choice([1, 5, 10])
    eval_every = rng.choice([3, 7, 20])
    # A key holding text in every row: ignored for progress fields, reported for any other.
    text_key = rng.choice(["throughput", "elapsed_time", "note", "loss"]) if rng.random() < 0.25 else None
    rows: list[Any] = []
    step = rng.choice([0, stride])
    for number in range(rng.randrange(1, 300)):
        keys = rng.choice(train_sets)
        row = {key: _value(rng, dirty) for key in keys}
        if non_finite and rng.random() < 0.05:
            row[rng.choice(keys)] = rng.choice([math.nan, math.inf, -math.inf])
        if text_key is not None and rng.random() < 0.5:
            row[text_key] = rng.choice(["0.00", "0:01:03", ""])
        if rng.random() < 0.97:
            row["step"] = _step_value(rng, step, dirty)
        rows.append(row)
        if number % eval_every == eval_every - 1 and eval_sets:
            for keys in rng.sample(eval_sets, rng.randrange(1, len(eval_sets) + 1)):  # several eval sets, one step
                rows.append({**{key: _value(rng, dirty) for key in keys}, "step": _step_value(rng, step, dirty)})
        roll = rng.random()
        if roll < 0.01 and resumes:
            step = max(0, step - rng.randrange(1, 20) * stride)  # a resume
        elif roll < 0.03:
            pass  # the same step again
        elif roll < 0.04 and dirty:
            step = step - stride  # a writer one step behind
        else:
            step += stride
        if rng.random() < 0.01:
            rows.append({"epoch": rng.random(), "step": step})  # logs no metric
        if dirty and rng.random() < 0.005:
            rows.append(rng.choice([None, 3, "row", [1, 2], {}]))
    if rng.random() < 0.6:
        rows.append({"epoch": 1.0, "step": step, "train_loss": _value(rng, dirty), "train_runtime": rng.random() * 99,
                     "total_flos": 1.5e17})
    if rng.random() < 0.2:
        rows.append({"predict_loss": _value(rng, dirty), "predict_runtime": 3.5})
    if rng.random() < 0.1:
        rows.append({"train_loss": 0.5, "epoch": 2.0})  # a second summary row, no step
    if rng.random() < 0.05:
        rows.append({"loss": 0.5})  # no step
    if rng.random() < 0.1:  # two writers: small steps back as a pattern
        rows = [row for pair in zip(rows[::2], rows[1::2], strict=False) for row in reversed(pair)]
    return rows


def test_the_generated_family_reads_the_same_both_ways() -> None:
    taken = 0
    for seed in SEEDS:
        taken += check(generated_log(seed), f"seed {seed}")
    # The family must exercise the column-wise path well, not just the fallback.
    assert taken >= len(SEEDS) // 4, f"the column-wise path took only {taken} of {len(SEEDS)} logs"
    assert taken < len(SEEDS), "every log was taken column-wise: the fallback cases are not exercised"


def test_the_generated_family_survives_a_json_round_trip() -> None:
    """As the files are read: through JSON (orjson where it can, else the standard library)."""
    for seed in SEEDS[:150]:
        history = generated_log(seed)
        try:
            text = json.dumps({"log_history": history})
        except (ValueError, OverflowError):
            continue
        try:
            state = parse_state(text.encode("utf-8", "surrogatepass"), "x")
        except CheckpointError:
            continue  # an empty log, or a number Python's json refuses
        check(state["log_history"], f"seed {seed} via JSON")


@pytest.mark.parametrize(("history", "fast"), [
    ([{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}], True),
    ([{"loss": 1.0, "step": 1}, {"eval_loss": 1.2, "step": 1}, {"loss": 0.5, "step": 2}], True),
    ([{"eval_a_loss": 1.0, "step": 5}, {"eval_b_loss": 2.0, "step": 5}, {"eval_a_loss": 3.0, "step": 5}], True),
    ([{"loss": math.nan, "step": 1}, {"loss": math.inf, "step": 2}, {"eval_loss": -math.inf, "epoch": math.nan,
                                                                        "step": 2}], True),
    ([{"loss": 1.0, "throughput": "0.00", "step": 1}, {"loss": 2, "step": 2, "lr": 1e-5}], True),
    ([{"loss": 1.0, "step": 3}, {"loss": 0.5, "step": 2}], False),  # a resume
    ([{"loss": None, "step": 1}], False),
    ([{"loss": True, "step": 1}], False),
    ([{"loss": 10**400, "step": 1}], False),
    ([{"loss": 1.0, "step": 1.5}], False),
    ([{"loss": 1.0, "step": 1}, [1, 2]], False),
    ([{"loss": 1.0, "step": 1}, {"loss": 2.0}, {"predict_loss": 1.0, "predict_runtime": 2}], True),
    ([{"train_loss": 1.0, "train_runtime": 5, "step": -1}, {"loss": 1.0, "step": 1}], True),
    ([{"epoch": 0.5, "step": 1}, {"loss": 1.0, "step": 2}, {"train_runtime": 9.0, "train_loss": 1.0}], True),
    ([{"loss": 1.0, "step": 0}, {"loss": -0.0, "step": 2**53}], True),
    ([{"loss": 1.0, "step": 1}, {"loss": 1.0, "step": 2**53 + 2}], False),
    ([{"loss": 1.0, "throughput": "9.5", "elapsed_time": "0:01:02", "step": 1}], True),  # ignored text
    ([{"loss": 1.0, "note": "warm", "step": 1}], False),  # text under any other key is reported
    ([{"loss": 1.0, "throughput": "9.5", "step": 1}, {"loss": 1.0, "throughput": 9.5, "step": 2}], False),
    ([{"loss": 1.0, "throughput": "9.5", "step": 1}, {"throughput": "9.5", "loss": 1.0, "step": 2}], True),
    ([{"loss": 1.0, "throughput": "9.5", "step": 1}, {"throughput": 9.5, "loss": 1.0, "step": 1}], True),
    ([{"eval_loss": 1.0, "throughput": "9.5", "step": 1}, {"throughput": "9.5", "step": 1}], True),
    ([], False),
    ([{}], True),
])
def test_cases_by_hand(history: list[Any], fast: bool) -> None:
    assert check(history) is fast


def test_a_long_usual_log_is_read_column_wise() -> None:
    """The speed of a long log depends on it (issue 16): a TRL-like log must not fall back to rows."""
    rng = random.Random(16)
    history: list[dict[str, Any]] = []
    for step in range(10, 30001, 10):
        history.append({"entropy": rng.random(), "epoch": step / 30000, "grad_norm": rng.random() * 3,
                        "learning_rate": 2e-4 * (1 - step / 30000), "loss": round(rng.random() + 0.5, 4),
                        "mean_token_accuracy": rng.random(), "num_tokens": float(step * 4096), "step": step})
        if step % 500 == 0:
            history.append({"epoch": step / 30000, "eval_loss": rng.random(), "eval_runtime": 21.5, "step": step})
    history.append({"epoch": 1.0, "step": 30000, "total_flos": 1.2e18, "train_loss": 0.8, "train_runtime": 999.5})
    assert check(history)


# --- the shared corpus -----------------------------------------------------------------------


def corpus_logs(corpus: Path) -> list[Path]:
    return sorted([*corpus.glob("*/trainer_state.json"), *corpus.glob("*/trainer_log.jsonl")])


@pytest.mark.corpus
def test_every_corpus_log_reads_the_same_both_ways(corpus_dir: Path) -> None:
    files = corpus_logs(corpus_dir)
    assert len(files) >= 90, "the corpus should hold about a hundred trainer_state.json files"
    compared = taken = 0
    for path in files:
        data = path.read_bytes()
        try:
            state = parse_jsonl_log(data, str(path)) if path.suffix == ".jsonl" else parse_state(data, str(path))
        except CheckpointError:
            continue  # refused before the log is split (test_corpus says why)
        compared += 1
        taken += check(state["log_history"], str(path.relative_to(corpus_dir)))
    assert compared >= 85
    assert taken >= compared // 2, f"the column-wise path took only {taken} of {compared} corpus logs"


def test_the_fast_path_notices_a_difference() -> None:
    """The comparison itself catches a one-bit difference and a changed message (guards the guard)."""
    history = [{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}]
    expected = _split_rows(history)
    changed = _split_rows([{"loss": 1.0, "step": 1}, {"loss": float(np.nextafter(0.5, 1)), "step": 2}])
    with pytest.raises(AssertionError):
        assert_same_tables(expected, changed)
    with pytest.raises(AssertionError):
        assert_same_tables(expected, _split_rows([*history, {"loss": 2.0}]))
