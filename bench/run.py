"""Benchmark traindocs on synthetic TRL checkpoints.

Usage:  python bench/run.py [--quick | --sizes 3x300 200x3000 ...] [--out bench/results] [--keep]

For every case NxROWS (N checkpoints of ROWS log rows each) this writes a
project of synthetic trainer_state.json files into a temporary folder (never
into the repository), then measures, each in a fresh subprocess: a cold
`traindocs generate` (empty docs/), the same again with nothing changed, again
after one loss value of one checkpoint changed, `mkdocs build` of the result,
and a naive baseline (bench/naive.py) that plots the same checkpoints the way
common scripts do. It also times reading and analysing the 100,000-row file in
process, records output sizes, checks the targets and writes
results.json and results.md. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NAIVE_SCRIPT = BENCH_DIR / "naive.py"
GNU_TIME = Path("/usr/bin/time")

FULL_SIZES = ("3x300", "3x3000", "50x3000", "200x3000", "1x3000", "1x100000", "1000x3000", "5000x300")
QUICK_SIZES = ("3x3000", "1x3000", "1x100000", "210x300")
"""A few minutes on a quiet machine: the small cases, and 210 runs of the 5,000-entry case's size as a stand-in
for a large site (group pages, its site size per model) and for the serve reload."""
HEADLINE = "200x3000"
"""The case the cold-run targets are set for; without it they are checked on the largest case run."""
SMALL_CASE = "3x3000"
THOUSAND_CASE = "1000x3000"
MANY_ENTRIES = 5000
"""The large-site targets are for 5,000 entries; a smaller case with group pages gives the same numbers, marked n/a."""
SERVE_MODELS = 200
"""`serve` reload is measured on the case with this many checkpoints (else the largest case up to 300)."""
NO_NAIVE_FROM = 201
"""Cases with this many checkpoints (large sites) skip the naive baseline (1,000 x 5 pyplot figures: ~15 minutes)
and --jobs 1: no target compares them with it."""
BIG_FILE_ROWS = 100_000
FLOOR_SCRIPT = BENCH_DIR / "floor.py"
FLOOR_FIGURES = 20
HTML_PAGE_CAP = 150 * 1024
LARGE_SITE_FROM = 200
"""generator.group_pages.LARGE_REGISTRY: above it a site has group pages (the large-site targets apply)."""
SITE_CAP = 500 * 1024 * 1024

LOGGING_STEPS = 10
EVAL_EVERY = 10
"""Every 10th log row is an evaluation row (at the step of the train row before it)."""
PHASES = ("Phase 1 SFT", "Phase 2 Reasoning", "Phase 3 Preference")
BASE_MODELS = ("Qwen/Qwen2.5-7B-Instruct", "microsoft/Phi-3-mini-4k-instruct", "google/gemma-2-2b-it")
IMAGE_REFERENCE = re.compile(r"assets/traindocs/[^\s)\"'>]+")
SUMMARY_LINE = re.compile(
    r"traindocs: (?P<models>\d+) models, \d+ problems; (?P<written>\d+) files written, "
    r"(?P<unchanged>\d+) unchanged, \d+ removed \((?P<seconds>[\d.]+) s\)"
)
BUSY_MACHINE = 0.25
"""Other processes using more CPU cores than this during a measurement make its time suspect."""
MB = 1024 * 1024
KB = 1024


class BenchmarkError(Exception):
    """A measured command failed: the benchmark stops and says which and why."""


# ---------------------------------------------------------------- synthetic data


@dataclass(frozen=True)
class Case:
    """N checkpoints of `rows` log rows each."""

    checkpoints: int
    """How many checkpoints the project registers."""
    rows: int
    """log_history rows per checkpoint (train and eval rows; the summary row comes on top)."""

    @property
    def name(self) -> str:
        """How tables and results.json name the case, e.g. 200x3000."""
        return f"{self.checkpoints}x{self.rows}"

    @classmethod
    def parse(cls, text: str) -> Case:
        """'200x3000' -> Case(200, 3000); argparse reports a ValueError as a usage error."""
        match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower().replace("_", "").replace(",", ""))
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < EVAL_EVERY:
            raise ValueError(f"expected NxROWS with N >= 1 and ROWS >= {EVAL_EVERY}, e.g. 200x3000; got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))


def synthetic_state(rows: int, seed: int) -> dict[str, Any]:
    """A trainer_state.json document like TRL's SFTTrainer writes, `rows` log rows long."""
    rng = random.Random(seed)
    train_rows = rows - rows // EVAL_EVERY
    max_steps = train_rows * LOGGING_STEPS
    epochs = rng.choice((1, 2, 3))
    steps_per_epoch = max_steps / epochs
    start, floor = rng.uniform(0.9, 3.0), rng.uniform(0.2, 0.6)
    decay = rng.uniform(0.02, 0.15) * max_steps
    entropy_start, entropy_end = rng.uniform(0.9, 1.7), rng.uniform(0.3, 0.6)
    peak_lr = rng.choice((5e-5, 1e-4, 2e-4))
    warmup = max(1, round(0.03 * max_steps))
    tokens_per_step = rng.randrange(4096, 16384)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return peak_lr * step / warmup
        return peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, max_steps - warmup)))

    history: list[dict[str, Any]] = []
    step = tokens = 0
    losses: list[float] = []
    for index in range(1, rows + 1):
        if index % EVAL_EVERY == 0:
            shape = floor + (start - floor) * math.exp(-step / decay)
            history.append(
                {
                    "epoch": step / steps_per_epoch,
                    "eval_entropy": entropy_end + 0.5 * (entropy_start - entropy_end) * math.exp(-step / decay),
                    "eval_loss": shape + 0.05 + rng.gauss(0, 0.01),
                    "eval_mean_token_accuracy": min(0.99, 0.97 - 0.2 * shape + rng.gauss(0, 0.003)),
                    "eval_num_tokens": float(tokens),
                    "eval_runtime": round(rng.uniform(20, 40), 4),
                    "eval_samples_per_second": round(rng.uniform(8, 16), 3),
                    "eval_steps_per_second": round(rng.uniform(1, 2), 3),
                    "step": step,
                }
            )
            continue
        step += LOGGING_STEPS
        shape = floor + (start - floor) * math.exp(-step / decay)
        loss = max(0.01, shape + rng.gauss(0, 0.012 + 0.02 * shape))
        losses.append(loss)
        tokens += tokens_per_step * LOGGING_STEPS + rng.randrange(-2048, 2048)
        history.append(
            {
                "entropy": entropy_end + (entropy_start - entropy_end) * math.exp(-step / (2 * decay))
                + rng.gauss(0, 0.012),
                "epoch": step / steps_per_epoch,
                "grad_norm": abs(0.25 + 0.9 * loss * rng.uniform(0.6, 1.4)),
                "learning_rate": learning_rate(step),
                "loss": round(loss, 4),
                "mean_token_accuracy": min(0.99, 0.985 - 0.2 * loss + rng.gauss(0, 0.004)),
                "num_tokens": float(tokens),
                "step": step,
            }
        )
    runtime = round(max_steps * rng.uniform(2.5, 4.5), 4)
    total_flos = float(max_steps * tokens_per_step) * 6.0e9
    history.append(
        {
            "epoch": float(epochs),
            "step": max_steps,
            "total_flos": total_flos,
            "train_loss": sum(losses) / len(losses),
            "train_runtime": runtime,
            "train_samples_per_second": round(8 * max_steps / runtime, 3),
            "train_steps_per_second": round(max_steps / runtime, 3),
        }
    )
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": float(epochs),
        "eval_steps": LOGGING_STEPS * (EVAL_EVERY - 1),
        "global_step": max_steps,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": LOGGING_STEPS,
        "max_steps": max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": epochs,
        "save_steps": max_steps,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": True,
                },
                "attributes": {},
            }
        },
        "total_flos": total_flos,
        "train_batch_size": 8,
        "trial_name": None,
        "trial_params": None,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write as transformers' TrainerState.save_to_json does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Project:
    """One benchmark project in the temporary folder."""

    root: Path
    case: Case

    @property
    def registry(self) -> Path:
        return self.root / "checkpoints.yaml"

    @property
    def mkdocs_yml(self) -> Path:
        return self.root / "mkdocs.yml"

    @property
    def docs(self) -> Path:
        return self.root / "docs"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def state_files(self) -> list[Path]:
        return sorted(self.runs.glob("*/*/trainer_state.json"))


def write_project(root: Path, case: Case) -> Project:
    """Synthetic checkpoints, a checkpoints.yaml and a copy of the repository's mkdocs.yml."""
    project = Project(root, case)
    root.mkdir(parents=True)
    # The repository's mkdocs.yml, titled for the case (the site's title is mkdocs.yml's site_name).
    mkdocs_yml = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    project.mkdocs_yml.write_text(re.sub(r"(?m)^site_name:.*$", f"site_name: Benchmark {case.name}", mkdocs_yml, count=1),
                                  encoding="utf-8")
    lines = [
        "site:",
        "  intro: Synthetic checkpoints written by bench/run.py; not real training logs.",
        "checkpoints:",
    ]
    for index in range(case.checkpoints):
        slug = f"model-{index:03d}"
        # Seeded by size and position only: model-000 is the same file in every case of one size.
        state = synthetic_state(case.rows, seed=case.rows * 10_000 + index)
        folder = project.runs / slug / f"checkpoint-{state['global_step']}"
        write_json(folder / "trainer_state.json", state)
        rank = (8, 16, 32)[index % 3]
        write_json(
            folder / "adapter_config.json",
            {
                "base_model_name_or_path": BASE_MODELS[index % len(BASE_MODELS)],
                "lora_alpha": 2 * rank,
                "lora_dropout": 0.05,
                "peft_type": "LORA",
                "r": rank,
                "target_modules": ["k_proj", "o_proj", "q_proj", "v_proj"],
                "task_type": "CAUSAL_LM",
            },
        )
        lines += [
            f"  - name: Model {index:03d}",
            f"    slug: {slug}",
            f"    path: runs/{slug}",
            f"    phase: {PHASES[index % len(PHASES)]}",
            "    description: Synthetic benchmark checkpoint.",
        ]
    project.registry.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return project


def change_one_loss(project: Project) -> Path:
    """Change one loss value of the middle checkpoint (as a resumed run would); returns the file."""
    state_file = project.state_files()[project.case.checkpoints // 2]
    state = json.loads(state_file.read_text(encoding="utf-8"))
    train_rows = [row for row in state["log_history"] if "loss" in row]
    row = train_rows[len(train_rows) // 2]
    row["loss"] = round(row["loss"] + 0.0123, 4)
    write_json(state_file, state)
    return state_file


# ---------------------------------------------------------------- measuring


class TreeSampler:
    """Peak memory of a process and all its descendants, sampled from /proc.

    GNU time's %M is the peak of the largest single process; traindocs renders
    in worker processes, so the memory a run needs is their sum at one moment.
    """

    def __init__(self, root: int, include_root: bool, interval: float = 0.05) -> None:
        self.root = root
        self.include_root = include_root
        self.interval = interval
        self.peak_rss = 0
        """Bytes: largest sum of RSS over the tree (shared pages counted once per process)."""
        self.peak_pss = 0
        """Bytes: largest sum of PSS (shared pages split between their users)."""
        self.peak_single_rss = 0
        """Bytes: largest RSS of any one process."""
        self._parents: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                return

    def _tree(self) -> list[int]:
        try:
            names = os.listdir("/proc")
        except OSError:  # not Linux: no sampling
            return []
        for name in names:
            if name.isdigit() and int(name) not in self._parents:
                parent = _parent_pid(int(name))
                if parent is not None:
                    self._parents[int(name)] = parent
        members = {self.root}
        grew = True
        while grew:
            found = {pid for pid, parent in self._parents.items() if parent in members} - members
            members |= found
            grew = bool(found)
        if not self.include_root:
            members.discard(self.root)
        return sorted(members)

    def _sample(self) -> None:
        rss_total = pss_total = 0
        for pid in self._tree():
            rss, pss = _memory_of(pid)
            rss_total += rss
            pss_total += pss
            self.peak_single_rss = max(self.peak_single_rss, rss)
        self.peak_rss = max(self.peak_rss, rss_total)
        self.peak_pss = max(self.peak_pss, pss_total)


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    return int(stat.rpartition(")")[2].split()[1])


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes; zeros for a process that has just exited."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text(encoding="utf-8").split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0, 0
    pss = rss
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8").splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError):
        pass
    return rss, pss


@dataclass(frozen=True)
class Measurement:
    """One command run in a fresh subprocess."""

    command: str
    """What ran, shortened for reading."""
    seconds: float
    """Wall time from start to exit, as the benchmark saw it."""
    peak_mb: float
    """Largest sum of RSS over the process and its workers (sampled every 50 ms), at least peak_process_mb."""
    peak_pss_mb: float
    """The same with PSS: shared library pages counted once, not once per worker."""
    peak_process_mb: float
    """Largest RSS of one process (GNU time %M; else getrusage or the sampler)."""
    reported_seconds: float | None = None
    """traindocs' own elapsed time from its summary line: wall time minus start-up and imports."""
    written: int | None = None
    """Files traindocs wrote, from its summary line."""
    unchanged: int | None = None
    """Files traindocs left as they were, from its summary line."""
    other_cores: float | None = None
    """CPU cores other processes kept busy on average meanwhile (0 = a quiet machine)."""
    source: str = ""
    """Fingerprint of generator/ when the command started: which code was measured."""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has waited for (and theirs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def source_fingerprint() -> str:
    """A short hash of every file of the generator package, to notice edits during a run."""
    digest = hashlib.sha256()
    package = REPO / "generator"
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode("utf-8") + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


BENCH_CACHE = Path(tempfile.gettempdir()) / "traindocs-bench-cache"
"""traindocs' cache folder for the measured commands; each case's cold runs get a fresh one (run_case)."""


def bench_env() -> dict[str, str]:
    """The environment of every measured command: no inherited traindocs overrides."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("TRAINDOCS_SITE_URL", "TRAINDOCS_REGISTRY")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["MPLBACKEND"] = "Agg"
    # Python as users run it: caching compiled modules (see compile_package). Some machines set this (this
    # sandbox does), and then every command compiled traindocs' 12,000 lines again: 0.3 s of each (measured).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # traindocs' cache of readings and remote mirrors: one of the benchmark's own (see BENCH_CACHE).
    env["TRAINDOCS_CACHE_DIR"] = str(BENCH_CACHE)
    return env


def compile_package() -> None:
    """Compile traindocs' modules once before measuring, as `pip install` does for an installed package (an
    editable install compiles them on first import): no measured command pays for it."""
    import compileall

    import generator

    compileall.compile_dir(Path(generator.__file__).parent, quiet=1)


def measure(command: Sequence[str], cwd: Path, label: str) -> Measurement:
    """Run `command` in a fresh process; wall time and peak memory."""
    time_file = cwd / ".bench-time.txt"
    wrapped = [str(GNU_TIME), "-f", "%e %M", "-o", str(time_file), *command] if GNU_TIME.exists() else list(command)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    source = source_fingerprint()
    busy_before, own_before = _busy_cpu_seconds(), _own_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(wrapped, cwd=cwd, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    with TreeSampler(process.pid, include_root=not GNU_TIME.exists()) as sampler:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    busy_after, own_after = _busy_cpu_seconds(), _own_cpu_seconds()
    other_cores = None
    if busy_before is not None and busy_after is not None:
        # The machine's busy time minus ours (the sampler included): others' work meanwhile.
        other_cores = max(0.0, (busy_after - busy_before) - (own_after - own_before)) / seconds
    if process.returncode != 0:
        tail = "\n".join((stdout + stderr).strip().splitlines()[-20:])
        raise BenchmarkError(f"{label}: exit status {process.returncode}: {' '.join(command)}\n{tail}")
    peak_process_kb = 0
    if GNU_TIME.exists():
        peak_process_kb = int(time_file.read_text(encoding="utf-8").split()[-1])
        time_file.unlink()
    else:
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # ru_maxrss of children is a high-water mark: it tells only when this child set a new one.
        peak_process_kb = after if after > before else 0
    summary = SUMMARY_LINE.search(stderr)
    return Measurement(
        command=label,
        seconds=seconds,
        # The tree's peak is at least its largest process's, which GNU time sees exactly
        # and the 50 ms sampler may miss.
        peak_mb=max(sampler.peak_rss, peak_process_kb * 1024) / MB,
        peak_pss_mb=sampler.peak_pss / MB,
        peak_process_mb=max(peak_process_kb * 1024, sampler.peak_single_rss) / MB,
        reported_seconds=float(summary["seconds"]) if summary else None,
        written=int(summary["written"]) if summary else None,
        unchanged=int(summary["unchanged"]) if summary else None,
        other_cores=other_cores,
        source=source,
    )


def traindocs_generate(project: Project, *extra: str) -> list[str]:
    return [sys.executable, "-m", "generator", "generate", "--config", str(project.registry), *extra]


def mkdocs_build(project: Project) -> list[str]:
    return [sys.executable, "-m", "mkdocs", "build", "-f", str(project.mkdocs_yml), "-d", str(project.site)]


def naive_plots(project: Project, out: Path) -> list[str]:
    return [sys.executable, str(NAIVE_SCRIPT), "--out", str(out), str(project.runs)]


def floor_per_figure(project: Project) -> float:
    """Seconds per figure of a reused matplotlib figure on this case's logs (bench/floor.py, own process)."""
    done = subprocess.run([sys.executable, str(FLOOR_SCRIPT), str(project.runs), "--figures", str(FLOOR_FIGURES)],
                          capture_output=True, text=True, env=bench_env(), check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"floor: {done.stderr.strip()[-2000:]}")
    return float(json.loads(done.stdout.splitlines()[-1])["seconds_per_figure"])


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def largest_html(site: Path) -> tuple[int, str]:
    """(bytes, path relative to site/) of the largest HTML page."""
    pages = [(path.stat().st_size, path.relative_to(site).as_posix()) for path in site.rglob("*.html")]
    return max(pages, default=(0, ""))


SERVE_MARK = 0.1234
"""The last training loss written into a served checkpoint: its page then shows this end loss."""


def serve_reload_seconds(project: Project, log: Log) -> float:
    """Seconds from rewriting a model's trainer_state.json to its page in Chromium showing the new end loss.

    `traindocs serve` runs on the generated project; Chromium (Playwright) has the
    model's page open; MkDocs' live reload refreshes it once the rebuild is done.
    """
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state_file = project.state_files()[project.case.checkpoints // 3]
    slug = state_file.parent.parent.name
    server_log = project.root / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    with open(server_log, "w", encoding="utf-8") as stream:
        server = subprocess.Popen(
            [sys.executable, "-m", "generator", "serve", "--config", str(project.registry), "-f",
             str(project.mkdocs_yml), "-a", f"127.0.0.1:{port}"], cwd=project.root, env=bench_env(),
            stdout=stream, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/models/{slug}/"
        deadline = time.perf_counter() + 600
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.perf_counter() > deadline:
                    tail = server_log.read_text(encoding="utf-8", errors="replace")[-2000:]
                    raise BenchmarkError(f"serve did not start: {tail}") from None
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                                 else None, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url, timeout=120_000)
            mark = f"{SERVE_MARK:g}"
            if mark in page.inner_text("article"):
                raise BenchmarkError(f"serve: {url} already shows {mark}")
            time.sleep(2)  # let the server settle (its first build's file events)
            state = json.loads(state_file.read_text(encoding="utf-8"))
            last = [row for row in state["log_history"] if "loss" in row][-1]
            last["loss"] = SERVE_MARK
            write_json(state_file, state)
            changed = time.perf_counter()
            page.wait_for_function(f"() => document.querySelector('article') && "
                                   f"document.querySelector('article').innerText.includes('{mark}')",
                                   timeout=300_000, polling=50)
            seconds = time.perf_counter() - changed
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    log(f"{project.case.name}: serve: edited {slug}'s trainer_state.json shown in Chromium after {seconds:.2f} s")
    return seconds


def examples_build(root: Path, log: Log) -> tuple[Measurement, Measurement]:
    """`traindocs build` of the repository's three examples: cold (no docs/, empty cache), then unchanged."""
    project = root / "examples-project"
    project.mkdir(parents=True)
    for name in ("checkpoints.yaml", "mkdocs.yml"):
        shutil.copyfile(REPO / name, project / name)
    shutil.copytree(REPO / "examples", project / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    global BENCH_CACHE
    BENCH_CACHE = project / "cache"
    command = [sys.executable, "-m", "generator", "build", "--config", str(project / "checkpoints.yaml")]
    cold = measure(command, project, "examples traindocs build (cold)")
    unchanged = measure(command, project, "examples traindocs build (nothing changed)")
    log(f"examples: traindocs build cold {cold.seconds:.2f} s, nothing changed {unchanged.seconds:.2f} s")
    return cold, unchanged


def time_read_and_analyse(run_dir: Path, repeats: int = 3) -> list[float]:
    """Seconds per `read_run` + `analyse` of one checkpoint, in this process; the first call first."""
    from generator.analysis import analyse
    from generator.reader import read_run
    from generator.records import AnalysisSettings, CheckpointEntry

    entry = CheckpointEntry(index=0, name=run_dir.name, slug=run_dir.name, path=str(run_dir), resolved=run_dir)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        analyse(read_run(entry), AnalysisSettings())
        times.append(time.perf_counter() - started)
    return times


# ---------------------------------------------------------------- output sizes


@dataclass(frozen=True)
class Sizes:
    """What a cold generation left in docs/ (and, after the build, in site/)."""

    docs_bytes: int
    """Every file under docs/, the manifest included."""
    docs_files: int
    plots: int
    """Plot files under docs/: PNG, and the WebP model plots of large sites."""
    largest_plot_bytes: int
    largest_plot: str
    """Its path relative to docs/."""
    index_bytes: int
    """docs/index.md alone."""
    index_with_images_bytes: int
    """docs/index.md plus every file under assets/traindocs/ that it references."""


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(total bytes, file count) of every file under `folder`."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), len(files)


def output_sizes(docs: Path) -> Sizes:
    total, count = folder_bytes(docs)
    plots = sorted([*docs.rglob("*.png"), *docs.rglob("*.webp")], key=lambda path: (path.stat().st_size, str(path)))
    index = docs / "index.md"
    referenced = sorted({docs / reference for reference in IMAGE_REFERENCE.findall(index.read_text(encoding="utf-8"))})
    return Sizes(
        docs_bytes=total,
        docs_files=count,
        plots=len(plots),
        largest_plot_bytes=plots[-1].stat().st_size if plots else 0,
        largest_plot=plots[-1].relative_to(docs).as_posix() if plots else "",
        index_bytes=index.stat().st_size,
        index_with_images_bytes=index.stat().st_size + sum(path.stat().st_size for path in referenced if path.is_file()),
    )


# ---------------------------------------------------------------- one case


@dataclass
class CaseResult:
    """Everything measured for one case."""

    case: str
    checkpoints: int
    rows: int
    state_bytes: int
    """Total size of the case's trainer_state.json files."""
    setup_seconds: float
    """Writing the synthetic files (not part of any measurement)."""
    cold: Measurement
    unchanged: Measurement
    one_changed: Measurement
    mkdocs_build: Measurement
    naive: Measurement | None
    """None for cases of NO_NAIVE_FROM checkpoints or more."""
    sizes: Sizes
    site_bytes: int
    """Everything `mkdocs build` wrote into site/."""
    index_html_bytes: int
    naive_plot_bytes: int
    """Total size of the naive baseline's PNGs."""
    naive_largest_plot_bytes: int
    cold_one_job: Measurement | None = None
    """Cold generate with --jobs 1 (headline case only): one core, like the naive script."""
    read_analyse_seconds: list[float] | None = None
    """In-process read_run + analyse of the first checkpoint, per repeat (big-file case only)."""
    floor_per_figure: float = 0.0
    """Seconds per figure of one reused matplotlib figure on this case's logs (bench/floor.py)."""
    cores: int = 1
    largest_html_bytes: int = 0
    largest_html: str = ""
    site_files: int = 0
    site_theme_bytes: int = 0
    """site/assets/ (the theme's and traindocs' static files, the overview plots): what does not grow per run."""
    group_pages: int = 0
    """Group pages in site/ (large sites only)."""
    serve_reload_seconds: float | None = None
    """Rewrite of one trainer_state.json under `traindocs serve` until Chromium shows it (serve case only)."""

    @property
    def floor_seconds(self) -> float:
        """The matplotlib floor of the cold run: figures drawn x seconds per reused figure / cores."""
        return self.sizes.plots * self.floor_per_figure / max(1, self.cores)

    def measurements(self) -> list[Measurement]:
        """Every subprocess measurement of the case, in the order they ran."""
        steps = [self.cold, self.unchanged, self.one_changed, self.mkdocs_build]
        steps += [self.naive] if self.naive is not None else []
        return steps + ([self.cold_one_job] if self.cold_one_job is not None else [])

    @property
    def ratio(self) -> float | None:
        """Cold traindocs generate / naive baseline."""
        return self.cold.seconds / self.naive.seconds if self.naive is not None else None


Log = Callable[[str], None]


def run_case(case: Case, root: Path, one_job: bool, log: Log, serve: bool = False) -> CaseResult:
    """Write the project, take every measurement, return them."""
    started = time.perf_counter()
    project = write_project(root, case)
    setup = time.perf_counter() - started
    state_bytes = sum(path.stat().st_size for path in project.state_files())
    log(f"{case.name}: wrote {case.checkpoints} trainer_state.json ({state_bytes / MB:.1f} MB) in {setup:.1f} s")

    def step(command: list[str], label: str) -> Measurement:
        result = measure(command, project.root, f"{case.name} {label}")
        written = f", {result.written} files written" if result.written is not None else ""
        others = f", other processes {result.other_cores:.2f} cores" if result.other_cores is not None else ""
        log(f"{case.name}: {label}: {result.seconds:.2f} s, peak {result.peak_mb:.0f} MB{written}{others}")
        return result

    read_analyse = None
    if case.rows >= BIG_FILE_ROWS:
        read_analyse = time_read_and_analyse(project.state_files()[0].parent.parent)
        log(f"{case.name}: read_run + analyse in process: " + ", ".join(f"{s:.2f} s" for s in read_analyse))
    global BENCH_CACHE
    BENCH_CACHE = project.root / "cache"  # empty: the cold run parses every file
    cold = step(traindocs_generate(project), "cold generate")
    sizes = output_sizes(project.docs)
    unchanged = step(traindocs_generate(project), "generate, nothing changed")
    change_one_loss(project)
    one_changed = step(traindocs_generate(project), "generate, one checkpoint changed")
    build = step(mkdocs_build(project), "mkdocs build")
    html_bytes, html_path = largest_html(project.site)
    naive_out = project.root / "naive"
    naive = None
    if case.checkpoints < NO_NAIVE_FROM:
        naive = step(naive_plots(project, naive_out), "naive baseline")
    naive_pngs = [path.stat().st_size for path in naive_out.glob("*.png")]
    floor = floor_per_figure(project)
    log(f"{case.name}: floor: {floor * 1000:.0f} ms per figure of a reused matplotlib figure; "
        f"{sizes.plots} figures / {usable_cores()} cores = {sizes.plots * floor / usable_cores():.2f} s")
    reload = serve_reload_seconds(project, log) if serve else None
    cold_one_job = None
    if one_job and case.checkpoints < NO_NAIVE_FROM:
        BENCH_CACHE = project.root / "cache-j1"  # a cold run again: nothing cached
        cold_one_job = step(traindocs_generate(project, "--jobs", "1", "--docs-dir", str(project.root / "docs-j1")),
                            "cold generate --jobs 1")
    return CaseResult(
        case=case.name,
        checkpoints=case.checkpoints,
        rows=case.rows,
        state_bytes=state_bytes,
        setup_seconds=setup,
        cold=cold,
        unchanged=unchanged,
        one_changed=one_changed,
        mkdocs_build=build,
        naive=naive,
        sizes=sizes,
        site_bytes=folder_bytes(project.site)[0],
        index_html_bytes=(project.site / "index.html").stat().st_size,
        naive_plot_bytes=sum(naive_pngs),
        naive_largest_plot_bytes=max(naive_pngs, default=0),
        cold_one_job=cold_one_job,
        read_analyse_seconds=read_analyse,
        floor_per_figure=floor,
        cores=usable_cores(),
        largest_html_bytes=html_bytes,
        largest_html=html_path,
        site_files=folder_bytes(project.site)[1],
        site_theme_bytes=folder_bytes(project.site / "assets")[0],
        group_pages=len(list(project.site.glob("group-*/index.html"))) + len(list(project.site.glob("group-*.html"))),
        serve_reload_seconds=reload,
    )


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One goal, what was measured for it, the naive and floor figures beside it, and whether it was met."""

    goal: str
    measured: str
    passed: bool | None
    """None: the case it needs was not run (or only a smaller stand-in was)."""
    naive: str = ""
    """The naive script's time for the same case, when it applies."""
    floor: str = ""
    """The matplotlib floor for the same case (figures x reused-figure time / cores), when it applies."""

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else "PASS" if self.passed else "MISS"


def _named(results: Sequence[CaseResult], name: str) -> CaseResult | None:
    return next((r for r in results if r.case == name), None)


def _naive_of(result: CaseResult) -> str:
    return f"{result.naive.seconds:.2f} s" if result.naive is not None else "not run"


def _floor_of(result: CaseResult) -> str:
    return (f"{result.floor_seconds:.2f} s ({result.sizes.plots} figures x {result.floor_per_figure * 1000:.0f} ms "
            f"/ {result.cores} cores)")


def _ratio_target(result: CaseResult | None, name: str, limit: float) -> Target:
    goal = f"{name}: cold generate <= {limit:g} x naive"
    if result is None or result.ratio is None:
        return Target(goal, "not run", None)
    return Target(goal, f"{result.ratio:.2f} x ({result.cold.seconds:.2f} s)", result.ratio <= limit,
                  _naive_of(result), _floor_of(result))


def evaluate_targets(results: Sequence[CaseResult], examples: tuple[Measurement, Measurement] | None = None,
                     ) -> list[Target]:
    """Issue 16's targets, each with its measured value, and the naive and floor figures where they apply."""
    targets: list[Target] = []
    small = _named(results, SMALL_CASE)
    targets.append(_ratio_target(small, SMALL_CASE, 0.5))
    if examples is None:
        targets.append(Target("3 examples: `traindocs build` cold (generate + MkDocs) < 1.5 s", "not run", None))
    else:
        cold, _ = examples
        targets.append(Target("3 examples: `traindocs build` cold (generate + MkDocs) < 1.5 s",
                              f"{cold.seconds:.2f} s", cold.seconds < 1.5))
    targets.append(Target(f"{SMALL_CASE}: generate with nothing changed < 0.3 s",
                          f"{small.unchanged.seconds:.2f} s" if small else "not run",
                          small.unchanged.seconds < 0.3 if small else None))
    big = next((r for r in results if r.checkpoints == 1 and r.rows >= BIG_FILE_ROWS), None)
    targets.append(_ratio_target(big, big.case if big else f"1x{BIG_FILE_ROWS}", 0.5))
    head = _named(results, HEADLINE)
    targets.append(_ratio_target(head, HEADLINE, 0.25))
    goal = f"{HEADLINE}: cold generate <= 1.5 x the matplotlib floor"
    if head is None:
        targets.append(Target(goal, "not run", None))
    else:
        over = head.cold.seconds / head.floor_seconds if head.floor_seconds else math.inf
        targets.append(Target(goal, f"{over:.2f} x floor ({head.cold.seconds:.2f} s)", over <= 1.5,
                              _naive_of(head), _floor_of(head)))
    thousand = _named(results, THOUSAND_CASE)
    single = _named(results, "1x3000")
    if thousand is None:
        for goal in (f"{THOUSAND_CASE}: cold generate < 120 s", f"{THOUSAND_CASE}: nothing changed < 1 s",
                     f"{THOUSAND_CASE}: one checkpoint changed <= 2 s more than 1x3000 cold"):
            targets.append(Target(goal, "not run", None))
    else:
        targets.append(Target(f"{THOUSAND_CASE}: cold generate < 120 s", f"{thousand.cold.seconds:.1f} s",
                              thousand.cold.seconds < 120, "", _floor_of(thousand)))
        targets.append(Target(f"{THOUSAND_CASE}: nothing changed < 1 s", f"{thousand.unchanged.seconds:.2f} s",
                              thousand.unchanged.seconds < 1.0))
        if single is None:
            targets.append(Target(f"{THOUSAND_CASE}: one checkpoint changed <= 2 s more than 1x3000 cold",
                                  f"{thousand.one_changed.seconds:.2f} s (1x3000 not run)", None))
        else:
            extra = thousand.one_changed.seconds - single.cold.seconds
            targets.append(Target(f"{THOUSAND_CASE}: one checkpoint changed <= 2 s more than 1x3000 cold",
                                  f"{thousand.one_changed.seconds:.2f} s vs {single.cold.seconds:.2f} s: {extra:+.2f} s",
                                  extra <= 2.0))
    many = max((r for r in results if r.checkpoints > LARGE_SITE_FROM), key=lambda r: r.checkpoints, default=None)
    label = f"{MANY_ENTRIES:,} entries"
    if many is None:
        for goal in ("site < 500 MB", "no HTML page > 150 KB", "generate + build < 10 min", "peak memory < 1 GB",
                     "index usable (groups, pages, sort, filter)"):
            targets.append(Target(f"{label}: {goal}", "not run", None))
    else:
        real = many.checkpoints >= MANY_ENTRIES  # a smaller stand-in shows the numbers, not a verdict
        on = "" if real else f" (on {many.case}, a stand-in: n/a)"
        total = many.cold.seconds + many.mkdocs_build.seconds
        # Everything but site/assets/ (pages, plots, downloads, group pages, the search index) taken as growing
        # with the runs: an upper estimate (the index and methodology pages do not).
        per_model = (many.site_bytes - many.site_theme_bytes) / many.checkpoints
        # Every command a user runs on such a registry counts: a generation after one change peaked higher than
        # the cold one (2026-12-03: 1,068 against 934 MB), and an earlier version of this row left it out.
        peak = max(many.cold.peak_mb, many.one_changed.peak_mb, many.mkdocs_build.peak_mb)
        targets += [
            Target(f"{label}: site < 500 MB", f"{many.site_bytes / MB:.0f} MB, {many.site_files:,} files{on}"
                   + ("" if real else f"; {per_model / KB:.0f} KB a model beyond site/assets/ "
                      f"({many.site_theme_bytes / MB:.1f} MB), x {MANY_ENTRIES:,} = "
                      f"{(many.site_theme_bytes + per_model * MANY_ENTRIES) / MB:.0f} MB extrapolated"),
                   many.site_bytes < SITE_CAP if real else None),
            Target(f"{label}: no HTML page > 150 KB",
                   f"largest {many.largest_html_bytes / KB:.0f} KB ({many.largest_html}){on}",
                   many.largest_html_bytes <= HTML_PAGE_CAP if real else None),
            Target(f"{label}: generate + build < 10 min",
                   f"{total:.0f} s ({many.cold.seconds:.0f} + {many.mkdocs_build.seconds:.0f}){on}",
                   total < 600 if real else None, "", _floor_of(many)),
            Target(f"{label}: peak memory < 1 GB", f"{peak:.0f} MB (generate {many.cold.peak_mb:.0f}, one changed "
                   f"{many.one_changed.peak_mb:.0f}, build {many.mkdocs_build.peak_mb:.0f}; RSS summed over "
                   f"workers){on}", peak < 1024 if real else None),
            Target(f"{label}: index usable (groups, pages, sort, filter)",
                   f"index.html {many.index_html_bytes / KB:.0f} KB, {many.group_pages} group pages{on}",
                   (many.group_pages > 0 and many.index_html_bytes <= HTML_PAGE_CAP) if real else None),
        ]
    served = next((r for r in results if r.serve_reload_seconds is not None), None)
    goal = f"serve with {SERVE_MODELS} models: edited trainer_state.json shown in Chromium < 2 s"
    if served is None or served.serve_reload_seconds is None:
        targets.append(Target(goal, "not run", None))
    else:
        real = served.checkpoints >= SERVE_MODELS
        targets.append(Target(goal, f"{served.serve_reload_seconds:.2f} s"
                              + ("" if real else f" (on {served.case}, a stand-in: n/a)"),
                              served.serve_reload_seconds < 2.0 if real else None))
    # Earlier targets, still checked.
    if big is not None and big.read_analyse_seconds:
        first = big.read_analyse_seconds[0]
        targets.append(Target(f"{BIG_FILE_ROWS:,}-row file read + analysed < 1.5 s",
                              f"{first:.2f} s first call (best of {len(big.read_analyse_seconds)}: "
                              f"{min(big.read_analyse_seconds):.2f} s)", first < 1.5))
    largest = max(results, key=lambda r: r.sizes.largest_plot_bytes)
    targets.append(Target("every plot file < 200 KB (all cases)",
                          f"largest {largest.sizes.largest_plot_bytes / KB:.0f} KB ({largest.case}: "
                          f"{largest.sizes.largest_plot})", largest.sizes.largest_plot_bytes < 200 * KB))
    if head is not None:
        targets.append(Target(f"{HEADLINE}: peak memory of the cold run < 600 MB",
                              f"{head.cold.peak_mb:.0f} MB (RSS summed over workers; PSS {head.cold.peak_pss_mb:.0f} MB)",
                              head.cold.peak_mb < 600))
    return targets


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """The machine and software the numbers were measured on."""
    cpu = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        cpu = platform.processor() or cpu
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    import matplotlib
    import mkdocs
    import pandas

    import generator

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "traindocs": generator.__version__,
        "git": _git_revision(),
        "matplotlib": matplotlib.__version__,
        "pandas": pandas.__version__,
        "mkdocs": mkdocs.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "generator"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (generator/ has uncommitted changes)" if dirty else head


def _s(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds >= 100 else f"{seconds:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column, l or r."""
    marks = [":---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def results_table(results: Sequence[CaseResult]) -> list[str]:
    header = ["case", "N", "rows", "cold s", "unchanged s", "one changed s", "mkdocs build s", "peak MB",
              "largest plot KB", "index+images KB", "naive s", "ratio"]
    rows = [
        [r.case, str(r.checkpoints), f"{r.rows:,}", _s(r.cold.seconds), _s(r.unchanged.seconds),
         _s(r.one_changed.seconds), _s(r.mkdocs_build.seconds), f"{r.cold.peak_mb:.0f}",
         f"{r.sizes.largest_plot_bytes / KB:.0f}", f"{r.sizes.index_with_images_bytes / KB:.0f}",
         _s(r.naive.seconds) if r.naive else "-", f"{r.ratio:.2f}" if r.ratio is not None else "-"]
        for r in results
    ]
    return _table(header, rows, "lrrrrrrrrrrr")


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (as `uptime` prints them)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "unknown"


def markdown(results: Sequence[CaseResult], targets: Sequence[Target], info: dict[str, Any], command: str,
             failures: Sequence[str] = (), examples: tuple[Measurement, Measurement] | None = None) -> str:
    lines = [
        "# traindocs benchmark",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['memory']} memory; "
        f"{info['os']}",
        f"- Software: Python {info['python']}, traindocs {info['traindocs']} (git {info['git']}), "
        f"matplotlib {info['matplotlib']}, pandas {info['pandas']}, mkdocs {info['mkdocs']}",
        f"- Command: `{command}`",
        f"- Load average (1/5/15 min) before: {info.get('load_before', '?')}, after: {info.get('load_after', '?')} "
        f"on {info['usable_cores']} cores",
        "- Python as users run it: traindocs' modules compiled before measuring (as `pip install` does), "
        "PYTHONDONTWRITEBYTECODE unset for the measured commands.",
        "- Data: synthetic TRL SFT checkpoints (seeded), N checkpoints x rows log rows each "
        f"(every {EVAL_EVERY}th an eval row, plus a summary row). Not real training logs.",
        "",
        "## Results",
        "",
        *results_table(results),
        "",
        "Seconds are wall time of a fresh process (`python -m generator generate`, `python -m mkdocs build`, "
        "`python bench/naive.py`), start-up and imports included; peak MB is the cold generate's largest sum "
        "of RSS over the process and its workers; ratio = cold / naive. See bench/README.md.",
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "naive", "floor", "result"],
                [[t.goal, t.measured, t.naive or "-", t.floor or "-", t.verdict] for t in targets], "lllll"),
        "",
        "naive: bench/naive.py on the same case (one process, a fresh pyplot figure per plot); floor: the "
        "figures the cold run drew x the seconds per figure of one reused matplotlib figure (bench/floor.py) "
        "/ the cores. n/a: the case was not run, or a smaller stand-in was.",
        "",
    ]
    busy = [(r.case, m) for r in results for m in r.measurements() if (m.other_cores or 0) > BUSY_MACHINE]
    if busy:
        worst_case, worst = max(busy, key=lambda item: item[1].other_cores or 0)
        lines += [f"**Other processes were using the CPU** during {len(busy)} of the measurements (up to "
                  f"{worst.other_cores:.2f} of {info['usable_cores']} cores, in {worst_case} "
                  f"{worst.command.split(' ', 1)[1]}): those times are too high. See the details below.", ""]
    if failures:
        lines += ["**Some cases failed** and are missing from the tables:", "", "```",
                  *(line for failure in failures for line in failure.splitlines()), "```", ""]
    versions = sorted({m.source for r in results for m in r.measurements()})
    if len(versions) > 1:
        lines += [f"**generator/ was edited during the run**: the measurements ran on {len(versions)} versions of "
                  "the code (see `source` per measurement in results.json); compare them with care.", ""]
    lines += [
        "## Output sizes and details",
        "",
        *_table(
            ["case", "trainer_state.json MB", "docs/ MB", "docs/ files", "plots (PNG, WebP)", "index.md KB", "site/ MB",
             "index.html KB", "naive PNGs MB", "cold: traindocs' own s", "unchanged: own s", "written cold / unchanged / changed"],
            [
                [r.case, f"{r.state_bytes / MB:.1f}", f"{r.sizes.docs_bytes / MB:.1f}", str(r.sizes.docs_files),
                 str(r.sizes.plots), f"{r.sizes.index_bytes / KB:.0f}", f"{r.site_bytes / MB:.1f}",
                 f"{r.index_html_bytes / KB:.0f}", f"{r.naive_plot_bytes / MB:.1f}" if r.naive else "-",
                 _optional_s(r.cold.reported_seconds), _optional_s(r.unchanged.reported_seconds),
                 f"{_count(r.cold.written)} / {_count(r.unchanged.written)} / {_count(r.one_changed.written)}"]
                for r in results
            ],
            "lrrrrrrrrrrl",
        ),
        "",
        "\"own s\" is the time traindocs reports itself (after start-up and imports); "
        "the difference to the wall time is interpreter start-up, imports and loading mkdocs.yml.",
        "",
    ]
    if examples is not None:
        lines.append(f"- The three examples, `traindocs build` (generate + MkDocs): cold {_s(examples[0].seconds)} s "
                     f"(peak {examples[0].peak_mb:.0f} MB), nothing changed {_s(examples[1].seconds)} s.")
    for r in results:
        lines.append(f"- {r.case}: matplotlib floor {_floor_of(r)}; site/ {r.site_bytes / MB:.1f} MB in "
                     f"{r.site_files:,} files, largest HTML page {r.largest_html_bytes / KB:.0f} KB ({r.largest_html})"
                     + (f", {r.group_pages} group pages" if r.group_pages else "")
                     + (f"; serve reload in Chromium {r.serve_reload_seconds:.2f} s"
                        if r.serve_reload_seconds is not None else "") + ".")
        if r.cold_one_job is not None and r.naive is not None:
            lines.append(f"- {r.case} cold generate with `--jobs 1` (one core, like the naive script): "
                         f"{_s(r.cold_one_job.seconds)} s, {r.cold_one_job.seconds / r.naive.seconds:.2f} x naive; "
                         f"peak {r.cold_one_job.peak_mb:.0f} MB.")
        if r.read_analyse_seconds:
            lines.append(f"- {r.case}: `read_run` + `analyse` in process: "
                         + ", ".join(f"{s:.2f} s" for s in r.read_analyse_seconds) + " (first call first).")
        lines.append(f"- {r.case}: peak memory per step (sum of RSS / largest process), MB: "
                     + "; ".join(f"{m.command.split(' ', 1)[1]} {m.peak_mb:.0f} / {m.peak_process_mb:.0f}"
                                 for m in r.measurements()) + ".")
        lines.append(f"- {r.case}: CPU cores used by other processes meanwhile: "
                     + "; ".join(f"{m.command.split(' ', 1)[1]} {_optional_cores(m.other_cores)}"
                                 for m in r.measurements()) + ".")
    return "\n".join(lines) + "\n"


def _optional_s(seconds: float | None) -> str:
    return "?" if seconds is None else _s(seconds)


def _optional_cores(cores: float | None) -> str:
    return "?" if cores is None else f"{cores:.2f}"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


# ---------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark traindocs on synthetic TRL checkpoints written into a temporary folder.",
        epilog=f"default sizes: {' '.join(FULL_SIZES)}; --quick: {' '.join(QUICK_SIZES)}",
    )
    parser.add_argument("--sizes", nargs="+", type=Case.parse, metavar="NxROWS",
                        help="cases to run, e.g. 3x300 200x3000 (N checkpoints of ROWS log rows)")
    parser.add_argument("--quick", action="store_true", help=f"only the small cases ({' '.join(QUICK_SIZES)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="where results.json and results.md go "
                        "(default: bench/results, with --quick bench/results/quick)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and print where they are")
    parser.add_argument("--no-serve", action="store_true",
                        help="skip the `traindocs serve` reload measurement in Chromium")
    parser.add_argument("--no-examples", action="store_true",
                        help="skip `traindocs build` of the repository's three examples")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 measured, 1 a measured command failed, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick and args.sizes:
        parser.error("--quick and --sizes exclude each other")
    cases: list[Case] = args.sizes or [Case.parse(size) for size in (QUICK_SIZES if args.quick else FULL_SIZES)]
    cases = list(dict.fromkeys(cases))  # each case once, in the order given
    try:
        import generator  # noqa: F401 (the package must be installed in this interpreter)
    except ImportError:
        parser.error(f"{sys.executable} cannot import traindocs' package 'generator'; "
                     "run with the project's venv: .venv/bin/python bench/run.py")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    info = machine()
    compile_package()
    command = "python bench/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    temporary = Path(tempfile.mkdtemp(prefix="traindocs-bench-"))
    log(f"benchmark projects in {temporary}")
    head = HEADLINE if any(case.name == HEADLINE for case in cases) else None
    if head is None:
        several = [case for case in cases if 1 < case.checkpoints < NO_NAIVE_FROM]
        head = max(several, key=lambda c: (c.checkpoints, c.rows)).name if several else None
    servable = [case for case in cases if case.checkpoints <= 300]
    serve_case = None
    if not args.no_serve and servable:
        serve_case = min(servable, key=lambda c: (abs(c.checkpoints - SERVE_MODELS), -c.rows)).name
    results: list[CaseResult] = []
    failures: list[str] = []
    examples: tuple[Measurement, Measurement] | None = None
    info["load_before"] = load_average()
    try:
        if not args.no_examples:
            try:
                examples = examples_build(temporary, log)
            except BenchmarkError as exc:
                log(f"error: {exc}")
                failures.append(str(exc))
        for case in cases:
            try:
                results.append(run_case(case, temporary / case.name, one_job=case.name == head, log=log,
                                        serve=case.name == serve_case))
            except BenchmarkError as exc:
                # The other cases may still run (e.g. generator/ was broken for a moment).
                log(f"error: {exc}")
                failures.append(str(exc))
            if not args.keep:
                shutil.rmtree(temporary / case.name, ignore_errors=True)
    finally:
        if args.keep:
            log(f"kept the benchmark projects in {temporary}")
        else:
            shutil.rmtree(temporary, ignore_errors=True)
    if not results:
        log("error: no case could be measured; nothing written")
        return 1
    info["load_after"] = load_average()
    targets = evaluate_targets(results, examples)
    report = markdown(results, targets, info, command, failures, examples)
    out: Path = args.out or (BENCH_DIR / "results" / "quick" if args.quick else BENCH_DIR / "results")
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "command": command,
        "cases": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in results],
        "targets": [{**dataclasses.asdict(t), "verdict": t.verdict} for t in targets],
        "failures": failures,
        "examples": [dataclasses.asdict(m) for m in examples] if examples else None,
    }
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report, encoding="utf-8")
    print(report)
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
