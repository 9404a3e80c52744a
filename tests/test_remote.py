"""Remote checkpoints (`generator.remote`): the Hub through an in-memory file system, and S3
and HTTP against a real S3-compatible server (moto) on loopback.

The server runs in this process (`ThreadedMotoServer`) with fake credentials; no test
reaches beyond 127.0.0.1. The S3 tests skip when moto, boto3 or s3fs is not installed
(`pip install -e '.[test]'` installs them).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, sft_rows
from generator import pages, remote
from generator.cli import main
from generator.errors import CheckpointError
from generator.reader import read_run
from generator.records import CheckpointEntry
from generator.remote import RemoteOptions, localise, recording_downloads, shown_url
from generator.site import generate

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

EXAMPLES = REPO / "examples"
ADMIN_KEY_ID = "AKIATRAINDOCSADMIN01"
ADMIN_SECRET = "traindocs-fake-admin-secret-never-shown"
DEAD_ENDPOINT = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so any request fails at once."""


def entry_for(path: str, name: str = "Remote run", index: int = 0) -> CheckpointEntry:
    """A registry entry for `path`, as the registry makes it (resolved: a placeholder)."""
    return CheckpointEntry(index=index, name=name, slug="remote-run", path=path, resolved=Path("/nonexistent"))


def state_bytes(losses: list[float], every: int = 10, **top: object) -> bytes:
    rows = sft_rows(losses, every)
    state: dict[str, object] = {"global_step": every * len(losses), **top, "log_history": rows}
    return json.dumps(state, indent=1).encode("utf-8")


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- what a URL is, and how it is shown ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("s3://bucket/run", True),
        ("hf://user/repo@main/checkpoint-5", True),
        ("https://example.org/trainer_state.json?sig=1", True),
        ("memory://x", True),
        ("file:///tmp/run", False),
        ("runs/qwen", False),
        ("/abs/runs/qwen", False),
        ("C://runs/qwen", False),
        ("C:\\runs\\qwen", False),
        ("~/runs", False),
    ],
)
def test_is_remote(path: str, expected: bool) -> None:
    assert remote.is_remote(path) is expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://bucket/run", "s3://bucket/run"),
        ("hf://user/repo@v1.0/checkpoint-5", "hf://user/repo@v1.0/checkpoint-5"),
        (
            "https://host:9000/b/trainer_state.json?X-Amz-Credential=AKIAX&X-Amz-Signature=abc#top",
            "https://host:9000/b/trainer_state.json?<redacted>",
        ),
        ("https://user:secret@host/x.json", "https://<redacted>@host/x.json"),
        ("s3://bucket/run#frag", "s3://bucket/run"),
        ("runs/local?odd", "runs/local?odd"),
    ],
)
def test_shown_url_redacts_credentials_and_query(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_scrub_redacts_urls_tokens_and_secret_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_SECRET", "s3cr3t-value-42")
    text = (
        "GET https://h/x.json?X-Amz-Signature=feed failed;\n token hf_abcdefghijklmnopqrstuvwxyz012345 "
        "key AKIAABCDEFGHIJKLMNOP secret s3cr3t-value-42"
    )

    scrubbed = remote.scrub(text)

    assert scrubbed == (
        "GET https://h/x.json?<redacted> failed; token <redacted> key <redacted> secret <redacted>"
    )


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINDOCS_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert remote.default_cache_dir() == tmp_path / "home" / ".cache" / "traindocs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    assert remote.default_cache_dir() == tmp_path / "home" / ".cache" / "traindocs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert remote.default_cache_dir() == tmp_path / "xdg" / "traindocs"
    monkeypatch.setenv("TRAINDOCS_CACHE_DIR", str(tmp_path / "mine"))
    assert remote.default_cache_dir() == tmp_path / "mine"


def test_options_from_env_and_pickling(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINDOCS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRAINDOCS_OFFLINE", "1")
    options = remote.options_from_env()
    assert options == RemoteOptions(cache_dir=tmp_path, offline=True)
    # It crosses into spawned worker processes.
    assert pickle.loads(pickle.dumps(options)) == options
    monkeypatch.setenv("TRAINDOCS_OFFLINE", "0")
    assert remote.options_from_env().offline is False


def test_identity_prefers_content_keys_then_times() -> None:
    s3 = {"name": "b/k", "size": 3, "ETag": '"abc"', "LastModified": "2024-01-01", "type": "file"}
    hub = {"name": "u/r/k", "size": 3, "blob_id": "f00", "lfs": None, "last_commit": None, "type": "file"}
    memory = {"name": "/k", "size": 3, "created": 1.5, "type": "file"}
    assert json.loads(remote.identity(s3) or "") == {"size": 3, "ETag": '"abc"'}
    assert json.loads(remote.identity(hub) or "") == {"size": 3, "blob_id": "f00"}
    assert json.loads(remote.identity(memory) or "") == {"size": 3, "created": 1.5}
    # Nothing to tell versions apart: fetched every time.
    assert remote.identity({"name": "x", "size": 3, "type": "file"}) is None


class RepositoryNotFoundError(Exception):
    """Named like huggingface_hub's: the mapping goes by the name, the Hub library being optional."""


class GatedRepoError(RepositoryNotFoundError):
    pass


class ClientResponseError(Exception):
    """Shaped like aiohttp's: a status and a reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}, message={message!r}, url='https://h/x.json?sig=secret'")
        self.status, self.message = status, message


class ClientError(Exception):
    """Shaped like botocore's: the parsed error response."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code, "Message": "server says no"},
                         "ResponseMetadata": {"HTTPStatusCode": status}}


def raised_from(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("failure", "described"),
    [
        (raised_from(PermissionError("Access Denied"), ClientError("AccessDenied", 403)), "access denied (AccessDenied)"),
        (raised_from(FileNotFoundError("b/k"), ClientError("NoSuchKey", 404)), "does not exist"),
        (raised_from(FileNotFoundError("https://h/x.json?sig=secret"), ClientResponseError(401, "Unauthorized")),
         "access denied (HTTP 401 Unauthorized)"),
        (raised_from(FileNotFoundError("https://h/x.json?sig=secret"), ClientResponseError(404, "Not Found")),
         "does not exist"),
        (raised_from(FileNotFoundError("u/r (repository not found)"), RepositoryNotFoundError("401 Client Error")),
         "does not exist (repository not found; if it is private, log in ('hf auth login' or 'huggingface-cli "
         "login') or set HF_TOKEN)"),
        (raised_from(FileNotFoundError("u/r"), GatedRepoError("403 Client Error")),
         "access denied (gated repository: accept its conditions on the Hub, then log in ('hf auth login' or "
         "'huggingface-cli login') or set HF_TOKEN)"),
        (FileNotFoundError("u/r@v9 (revision not found)"), "does not exist (revision not found)"),
        (raised_from(FileNotFoundError("https://h/x.json?sig=secret"), ConnectionRefusedError(111, "refused")),
         "cannot connect ([Errno 111] refused)"),
        (raised_from(OSError(5, "Internal error"), ClientError("InternalError", 500)),
         "cannot be read: server says no (InternalError)"),
        (ValueError("bad thing at https://h/x?token=secret\nsecond line"),
         "cannot be read: bad thing at https://h/x?<redacted> second line"),
    ],
    ids=["s3-denied", "s3-missing", "http-401", "http-404", "hub-private-or-missing", "hub-gated",
         "hub-revision", "refused", "server-error", "other"],
)
def test_failures_are_described_in_one_safe_line(failure: BaseException, described: str) -> None:
    assert remote.describe_failure(failure) == described


# --- the Hub, with fsspec's in-memory file system standing in for hf:// ----------------------


@pytest.fixture
def hub() -> Iterator[Any]:
    """An empty MemoryFileSystem serving hf:// URLs (its store is global: emptied before and after)."""
    from fsspec.implementations.memory import MemoryFileSystem

    filesystem = MemoryFileSystem()
    filesystem.store.clear()
    filesystem.pseudo_dirs[:] = [""]
    remote.register_filesystem("hf", filesystem)
    yield filesystem
    remote.register_filesystem("hf", None)
    filesystem.store.clear()
    filesystem.pseudo_dirs[:] = [""]


def put_hub_run(hub: Any, root: str, steps: tuple[int, ...]) -> None:
    """A training output folder with checkpoint-N for each N, weights included, and a model card."""
    for step in steps:
        folder = f"{root}/checkpoint-{step}"
        hub.pipe_file(f"{folder}/trainer_state.json", state_bytes([2.0, 1.5, 1.0 + step / 1000], every=step // 3 or 1))
        hub.pipe_file(f"{folder}/adapter_config.json", json.dumps({"r": step, "peft_type": "LORA"}).encode())
        hub.pipe_file(f"{folder}/adapter_model.safetensors", b"\0" * 4096)
        hub.pipe_file(f"{folder}/optimizer.pt", b"\0" * 4096)
    hub.pipe_file(f"{root}/README.md", b"---\nbase_model: Qwen/Qwen2.5-0.5B\n---\n# card\n")
    hub.pipe_file(f"{root}/model.safetensors", b"\0" * 4096)


def test_hub_run_folder_is_mirrored_and_its_highest_checkpoint_read(hub: Any, tmp_path: Path) -> None:
    put_hub_run(hub, "/someone/run", (5, 10, 100))
    options = RemoteOptions(cache_dir=tmp_path / "cache")

    with recording_downloads() as downloads:
        entry = localise(entry_for("hf://someone/run"), options)

    # Every checkpoint's state (progression), the card and the latest adapter; never weights.
    assert sorted(downloads) == [
        "hf://someone/run/README.md",
        "hf://someone/run/checkpoint-10/trainer_state.json",
        "hf://someone/run/checkpoint-100/adapter_config.json",
        "hf://someone/run/checkpoint-100/trainer_state.json",
        "hf://someone/run/checkpoint-5/trainer_state.json",
    ]
    assert sorted(files_under(entry.resolved)) == [
        "README.md",
        "checkpoint-10/trainer_state.json",
        "checkpoint-100/adapter_config.json",
        "checkpoint-100/trainer_state.json",
        "checkpoint-5/trainer_state.json",
    ]
    assert entry.resolved.is_relative_to(options.cache_dir)
    run = read_run(entry)
    # Numerically highest (100), not lexically (5); the card gives the base model.
    assert run.state_file.relative_to(entry.resolved).as_posix() == "checkpoint-100/trainer_state.json"
    assert (run.adapter.r if run.adapter else None) == 100
    assert run.base_model == "Qwen/Qwen2.5-0.5B"

    # Unchanged: nothing downloaded, the same mirror.
    with recording_downloads() as downloads:
        again = localise(entry_for("hf://someone/run"), options)
    assert downloads == []
    assert again == entry

    # One file rewritten upstream: only it is fetched.
    hub.pipe_file("/someone/run/checkpoint-10/trainer_state.json", state_bytes([3.0, 2.0]))
    with recording_downloads() as downloads:
        localise(entry_for("hf://someone/run"), options)
    assert downloads == ["hf://someone/run/checkpoint-10/trainer_state.json"]
    assert json.loads((entry.resolved / "checkpoint-10/trainer_state.json").read_bytes())["global_step"] == 20

    # The latest checkpoint deleted upstream: gone from the mirror too, so the reader picks the next.
    hub.rm("/someone/run/checkpoint-100", recursive=True)
    with recording_downloads() as downloads:
        localise(entry_for("hf://someone/run"), options)
    assert downloads == ["hf://someone/run/checkpoint-10/adapter_config.json"]
    assert not (entry.resolved / "checkpoint-100").exists()
    assert read_run(entry).state_file == entry.resolved / "checkpoint-10" / "trainer_state.json"


def test_hub_file_url_with_revision_mirrors_the_file_and_its_side_files(hub: Any, tmp_path: Path) -> None:
    put_hub_run(hub, "/someone/run@v2", (40,))
    options = RemoteOptions(cache_dir=tmp_path / "cache")

    with recording_downloads() as downloads:
        entry = localise(entry_for("hf://someone/run@v2/checkpoint-40/trainer_state.json"), options)

    assert sorted(downloads) == [
        "hf://someone/run@v2/checkpoint-40/adapter_config.json",
        "hf://someone/run@v2/checkpoint-40/trainer_state.json",
    ]
    assert entry.resolved.name == "trainer_state.json"
    assert sorted(files_under(entry.resolved.parent)) == ["adapter_config.json", "trainer_state.json"]
    run = read_run(entry)
    assert run.state_file == entry.resolved
    assert (run.adapter.r if run.adapter else None) == 40


def test_hub_checkpoint_folder(hub: Any, tmp_path: Path) -> None:
    put_hub_run(hub, "/someone/run", (7,))

    entry = localise(entry_for("hf://someone/run/checkpoint-7/"), RemoteOptions(tmp_path))

    assert sorted(files_under(entry.resolved)) == ["adapter_config.json", "trainer_state.json"]
    assert read_run(entry).state_file == entry.resolved / "trainer_state.json"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hf://someone/nothing", "checkpoints[0] (Remote run): path 'hf://someone/nothing' does not exist"),
        ("hf://someone/run/checkpoint-7/nothing.json",
         "checkpoints[0] (Remote run): path 'hf://someone/run/checkpoint-7/nothing.json' does not exist"),
        ("hf://someone/run/model.safetensors",
         "checkpoints[0] (Remote run): path 'hf://someone/run/model.safetensors' is a file but not a "
         "trainer_state.json; point it at a checkpoint folder, a training output folder or the trainer_state.json "
         "itself"),
        ("hf://someone/run/checkpoint-7/optimizer.pt",
         "checkpoints[0] (Remote run): path 'hf://someone/run/checkpoint-7/optimizer.pt' is a file but not a "
         "trainer_state.json; point it at a checkpoint folder, a training output folder or the trainer_state.json "
         "itself"),
        ("hf://someone/empty",
         "checkpoints[0] (Remote run): path 'hf://someone/empty' holds no trainer_state.json, no checkpoint-N folder "
         "with one and no trainer_log.jsonl; point it at a checkpoint folder, a training output folder or the file "
         "itself"),
    ],
)
def test_hub_problems_are_one_line(hub: Any, tmp_path: Path, path: str, message: str) -> None:
    put_hub_run(hub, "/someone/run", (7,))
    hub.pipe_file("/someone/empty/checkpoint-3/notes.txt", b"no state here")

    with recording_downloads() as downloads, pytest.raises(CheckpointError) as error:
        localise(entry_for(path), RemoteOptions(tmp_path))

    assert str(error.value) == message
    assert downloads == []


def test_a_state_file_too_large_is_refused_before_download(hub: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    put_hub_run(hub, "/someone/run", (7,))
    monkeypatch.setattr(remote, "MAX_STATE_BYTES", 100)

    with recording_downloads() as downloads, pytest.raises(CheckpointError, match="more than the 0 MB traindocs reads"):
        localise(entry_for("hf://someone/run"), RemoteOptions(tmp_path))
    assert all("trainer_state" not in url for url in downloads)


def test_offline_reads_the_cache_and_nothing_else(hub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_hub_run(hub, "/someone/run", (5, 10))
    cache = tmp_path / "cache"
    online = localise(entry_for("hf://someone/run"), RemoteOptions(cache))

    def no_network(url: str, where: str) -> None:
        raise AssertionError(f"offline mode reached for a file system ({url})")

    monkeypatch.setattr(remote, "_filesystem", no_network)
    offline = localise(entry_for("hf://someone/run"), RemoteOptions(cache, offline=True))
    assert offline == online
    assert read_run(offline).state_file.relative_to(offline.resolved).as_posix() == "checkpoint-10/trainer_state.json"

    with pytest.raises(CheckpointError) as error:
        localise(entry_for("hf://someone/other", name="Never fetched", index=3), RemoteOptions(cache, offline=True))
    assert str(error.value) == (
        f"checkpoints[3] (Never fetched): path 'hf://someone/other': not in the cache ({cache}); "
        "run once without --offline to fetch it"
    )
    # A mirror that lost a file is not trusted either.
    (online.resolved / "checkpoint-10" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match="not in the cache"):
        localise(entry_for("hf://someone/run"), RemoteOptions(cache, offline=True))


def test_concurrent_fetches_of_one_url_leave_a_whole_mirror(hub: Any, tmp_path: Path) -> None:
    put_hub_run(hub, "/someone/run", (5, 10, 15))
    options = RemoteOptions(tmp_path)
    results: list[CheckpointEntry] = []
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(localise(entry_for("hf://someone/run"), options))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len({entry.resolved for entry in results}) == 1
    mirror = results[0].resolved
    assert sorted(files_under(mirror)) == [
        "README.md", "checkpoint-10/trainer_state.json", "checkpoint-15/adapter_config.json",
        "checkpoint-15/trainer_state.json", "checkpoint-5/trainer_state.json",
    ]
    assert not [p for p in mirror.parent.rglob("*.tmp")]


def test_a_missing_backend_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    # As if gcsfs were not installed, whatever this machine has. (`fsspec.registry` the
    # attribute is a read-only view; the module holds the mapping behind it.)
    registered = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    monkeypatch.delitem(registered, "gs", raising=False)
    monkeypatch.delitem(registered, "gcs", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "checkpoints.yaml").write_text("checkpoints:\n  - {name: GCS run, path: 'gs://bucket/run'}\n")

    result = generate(project / "checkpoints.yaml", project / "docs", remote=RemoteOptions(tmp_path / "cache"))

    assert [p.message for p in result.problems] == [
        "checkpoints.yaml: checkpoints[0] (GCS run): path 'gs://bucket/run': the gs:// backend is not installed; "
        "pip install 'traindocs[gcs]'"
    ]


# --- S3 and HTTP against moto's server on loopback ------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1, in this process, for this module."""
    for module in ("moto.server", "boto3", "s3fs"):
        pytest.importorskip(module, reason=f"{module} is not installed; pip install -e '.[test]' installs it")
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


def _post(url: str, body: bytes = b"") -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@dataclass
class S3Server:
    """The moto server of one test: its endpoint, a client to upload with, and the credentials in use."""

    endpoint: str
    client: Any
    monkeypatch: pytest.MonkeyPatch
    secrets: list[str]

    def use_credentials(self, key_id: str, secret: str) -> None:
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        self.secrets += [key_id, secret]
        import boto3
        import s3fs

        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=key_id,
                                   aws_secret_access_key=secret, region_name="us-east-1")
        s3fs.S3FileSystem.clear_instance_cache()  # instances keep the credentials they started with

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def put_folder(self, folder: Path, bucket: str, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.put(bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())

    def enforce_auth(self, allowed_bucket: str) -> None:
        """From now on the server checks credentials: a user that may use `allowed_bucket` only.

        moto's IAM enforcement (`/moto-api/reset-auth`, like INITIAL_NO_AUTH_ACTION_COUNT=0)
        answers every other bucket with a real 403 AccessDenied.
        """
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1")
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="one-bucket", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*",
                           "Resource": [f"arn:aws:s3:::{allowed_bucket}", f"arn:aws:s3:::{allowed_bucket}/*"]}],
        }))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        _post(f"{self.endpoint}/moto-api/reset-auth", b"0")
        self.use_credentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    """A fresh server state with fake credentials in the environment (never the real ones)."""
    _post(f"{moto_endpoint}/moto-api/reset")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3", "FSSPEC_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # botocore's own setting, which s3fs honours
    server = S3Server(moto_endpoint, None, monkeypatch, [])
    server.use_credentials(ADMIN_KEY_ID, ADMIN_SECRET)
    try:
        yield server
    finally:
        _post(f"{moto_endpoint}/moto-api/reset-auth", b"inf")
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


REGISTRY = """\
site:
  title: Remote runs
checkpoints:
  - name: Local Gemma
    path: runs/gemma
  - name: Qwen on S3
    path: s3://runs/qwen
  - name: Phi on S3
    path: s3://runs/phi/checkpoint-199/trainer_state.json
  - name: Hub run
    path: hf://someone/hub-run
  - name: Missing run
    path: s3://runs/nothing
  - name: Denied run
    path: s3://locked/run
"""


def remote_project(tmp_path: Path, s3: S3Server, hub: Any, registry: str = REGISTRY) -> Path:
    """A project whose registry mixes a local run, S3 runs, a Hub run, a missing one and a denied one."""
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "gemma-2-2b-phase2-reasoning", project / "runs" / "gemma")
    (project / "checkpoints.yaml").write_text(registry, encoding="utf-8")
    for bucket in ("runs", "locked"):
        s3.client.create_bucket(Bucket=bucket)
    s3.put_folder(EXAMPLES / "qwen-7b-phase1-sft", "runs", "qwen")
    s3.put("runs", "qwen/checkpoint-2668/adapter_model.safetensors", b"\0" * 4096)
    s3.put_folder(EXAMPLES / "phi-3-mini-phase2-reasoning", "runs", "phi")
    s3.put_folder(EXAMPLES / "phi-3-mini-phase2-reasoning", "locked", "run")
    put_hub_run(hub, "/someone/hub-run", (30, 60))
    return project


def everything_written(*folders: Path) -> bytes:
    return b"\n".join(data for folder in folders if folder.exists() for data in files_under(folder).values())


def test_build_from_s3_hub_and_local_entries(s3: S3Server, hub: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    project = remote_project(tmp_path, s3, hub)
    s3.enforce_auth(allowed_bucket="runs")
    registry, docs, cache = project / "checkpoints.yaml", project / "docs", tmp_path / "cache"
    options = RemoteOptions(cache_dir=cache)

    # Cold: the four readable entries build; the missing and the denied one are one line each.
    with recording_downloads() as downloads:
        cold = generate(registry, docs, remote=options)
    assert [r.entry.name for r in cold.reports] == ["Local Gemma", "Qwen on S3", "Phi on S3", "Hub run"]
    assert [p.message for p in cold.problems] == [
        "checkpoints.yaml: checkpoints[4] (Missing run): path 's3://runs/nothing' does not exist",
        "checkpoints.yaml: checkpoints[5] (Denied run): path 's3://locked/run': access denied (AccessDenied)",
    ]
    assert sorted(downloads) == [
        "hf://someone/hub-run/README.md",
        "hf://someone/hub-run/checkpoint-30/trainer_state.json",
        "hf://someone/hub-run/checkpoint-60/adapter_config.json",
        "hf://someone/hub-run/checkpoint-60/trainer_state.json",
        "s3://runs/phi/checkpoint-199/adapter_config.json",
        "s3://runs/phi/checkpoint-199/trainer_state.json",
        "s3://runs/qwen/checkpoint-2668/adapter_config.json",
        "s3://runs/qwen/checkpoint-2668/trainer_state.json",
        "s3://runs/qwen/checkpoint-500/trainer_state.json",
    ]
    qwen = cold.reports[1]
    assert qwen.run.state_file.relative_to(qwen.entry.resolved).as_posix() == "checkpoint-2668/trainer_state.json"
    # The same bytes as the local copy of that run.
    assert qwen.run.state_sha256 == read_run(_local_entry(EXAMPLES / "qwen-7b-phase1-sft")).state_sha256
    index = (docs / pages.INDEX_PAGE).read_text(encoding="utf-8")
    assert "access denied (AccessDenied)" in index
    phi_page = docs / pages.model_page_path("phi-on-s3")
    assert "s3://runs/phi/checkpoint-199/trainer_state.json" in phi_page.read_text(encoding="utf-8")

    # Unchanged: listings only, no download, no file rewritten.
    with recording_downloads() as downloads:
        unchanged = generate(registry, docs, remote=options)
    assert downloads == []
    assert unchanged.written == []

    # One object rewritten upstream: only it is downloaded, and its page changes.
    before = phi_page.read_bytes()
    state = json.loads((EXAMPLES / "phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json").read_bytes())
    state["log_history"] = state["log_history"][: len(state["log_history"]) // 2]
    s3.put("runs", "phi/checkpoint-199/trainer_state.json", json.dumps(state).encode())
    with recording_downloads() as downloads:
        changed = generate(registry, docs, remote=options)
    assert downloads == ["s3://runs/phi/checkpoint-199/trainer_state.json"]
    assert pages.model_page_path("phi-on-s3") in changed.written
    assert phi_page.read_bytes() != before
    assert not any(path.startswith("models/qwen-on-s3") for path in changed.written)

    # Offline, with the server unreachable and no file system allowed: the same site from the cache.
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)

    def no_network(url: str, where: str) -> None:
        raise AssertionError(f"offline mode reached for a file system ({url})")

    monkeypatch.setattr(remote, "_filesystem", no_network)
    with recording_downloads() as downloads:
        offline = generate(registry, docs, remote=RemoteOptions(cache_dir=cache, offline=True))
    assert downloads == []
    assert [r.entry.name for r in offline.reports] == ["Local Gemma", "Qwen on S3", "Phi on S3", "Hub run"]
    assert [p.message for p in offline.problems] == [
        f"checkpoints.yaml: checkpoints[{i}] ({name}): path '{url}': not in the cache ({cache}); "
        "run once without --offline to fetch it"
        for i, name, url in ((4, "Missing run", "s3://runs/nothing"), (5, "Denied run", "s3://locked/run"))
    ]
    assert not any(path.startswith("models/") for path in offline.written)

    # No credential anywhere: pages, downloads, cache, messages.
    written = everything_written(docs, cache)
    messages = "\n".join(p.message for result in (cold, unchanged, changed, offline) for p in result.problems)
    for secret in s3.secrets:
        assert secret.encode() not in written
        assert secret not in messages


def _local_entry(path: Path) -> CheckpointEntry:
    return CheckpointEntry(index=0, name="local", slug="local", path=str(path), resolved=path)


def test_cli_build_online_then_offline(s3: S3Server, hub: Any, example_project: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    s3.client.create_bucket(Bucket="runs")
    s3.put_folder(EXAMPLES / "qwen-7b-phase1-sft", "runs", "qwen")
    put_hub_run(hub, "/someone/hub-run", (30,))
    registry = example_project / "checkpoints.yaml"
    registry.write_text(textwrap.dedent("""\
        checkpoints:
          - {name: Local Phi, path: examples/phi-3-mini-phase2-reasoning}
          - {name: Qwen on S3, path: 's3://runs/qwen'}
          - {name: Hub run, path: 'hf://someone/hub-run'}
        """), encoding="utf-8")
    cache = example_project / "cache"

    assert main(["build", "--config", str(registry), "--cache-dir", str(cache), "--strict"]) == 0
    assert "traindocs: 3 models, 0 problems" in capsys.readouterr().err
    assert (example_project / "site" / "models" / "qwen-on-s3" / "index.html").is_file()

    # No network from here on: --offline builds from the cache.
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    monkeypatch.setattr(remote, "_filesystem", lambda url, where: pytest.fail(f"network use offline: {url}"))
    assert main(["build", "--config", str(registry), "--cache-dir", str(cache), "--offline", "--strict"]) == 0
    assert "traindocs: 3 models, 0 problems; 0 files written" in capsys.readouterr().err

    # An entry never fetched: one line, the others build; --strict makes it status 1.
    with registry.open("a", encoding="utf-8") as stream:
        stream.write("  - {name: New run, path: 's3://runs/new'}\n")
    assert main(["generate", "--config", str(registry), "--cache-dir", str(cache), "--offline"]) == 0
    err = capsys.readouterr().err
    assert (f"error: checkpoints.yaml: checkpoints[3] (New run): path 's3://runs/new': not in the cache ({cache}); "
            "run once without --offline to fetch it") in err.splitlines()
    assert "traindocs: 3 models, 1 problems" in err
    monkeypatch.setenv("TRAINDOCS_OFFLINE", "1")  # the same through the environment
    assert main(["generate", "--config", str(registry), "--cache-dir", str(cache), "--strict"]) == 1
    assert "not in the cache" in capsys.readouterr().err


def test_cli_in_a_subprocess_honours_fsspec_endpoint_config(s3: S3Server, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket="runs")
    s3.put_folder(EXAMPLES / "phi-3-mini-phase2-reasoning", "runs", "phi")
    project = tmp_path / "project"
    project.mkdir()
    (project / "checkpoints.yaml").write_text("checkpoints:\n  - {name: Phi, path: 's3://runs/phi'}\n")
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["FSSPEC_S3_ENDPOINT_URL"] = s3.endpoint  # fsspec's configuration, read when it is imported

    done = subprocess.run(
        [sys.executable, "-m", "generator", "generate", "--config", str(project / "checkpoints.yaml"),
         "--cache-dir", str(tmp_path / "cache"), "--strict", "--jobs", "1"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "traindocs: 1 models, 0 problems" in done.stderr
    assert (project / "docs" / pages.model_page_path("phi")).is_file()
    for secret in s3.secrets:
        assert secret not in done.stderr + done.stdout


def test_s3_denied_missing_and_http_failures_are_one_line(s3: S3Server, tmp_path: Path) -> None:
    for bucket in ("runs", "locked"):
        s3.client.create_bucket(Bucket=bucket)
    s3.put_folder(EXAMPLES / "phi-3-mini-phase2-reasoning", "locked", "run")
    options = RemoteOptions(tmp_path)

    def failure(path: str) -> str:
        with pytest.raises(CheckpointError) as error:
            localise(entry_for(path), options)
        return str(error.value)

    # Without credentials checked, a missing object is a 404.
    assert failure("s3://runs/nothing") == "checkpoints[0] (Remote run): path 's3://runs/nothing' does not exist"
    assert failure(f"{s3.endpoint}/runs/nothing/trainer_state.json?X-Amz-Signature=feed") == (
        f"checkpoints[0] (Remote run): path '{s3.endpoint}/runs/nothing/trainer_state.json?<redacted>' does not exist"
    )
    s3.enforce_auth(allowed_bucket="runs")
    assert failure("s3://locked/run") == "checkpoints[0] (Remote run): path 's3://locked/run': access denied (AccessDenied)"
    # A file URL is a HEAD request: the server's 403 has no body, hence no error code.
    assert failure("s3://locked/run/checkpoint-199/trainer_state.json") == (
        "checkpoints[0] (Remote run): path 's3://locked/run/checkpoint-199/trainer_state.json': "
        "access denied (HTTP 403 Forbidden)"
    )
    # Plain HTTP, no credentials: the server's 403.
    assert failure(f"{s3.endpoint}/locked/run/checkpoint-199/trainer_state.json") == (
        f"checkpoints[0] (Remote run): path '{s3.endpoint}/locked/run/checkpoint-199/trainer_state.json': "
        "access denied (HTTP 403 FORBIDDEN)"
    )
    # Nobody listening.
    message = failure(f"{DEAD_ENDPOINT}/runs/x/trainer_state.json")
    assert message.startswith(f"checkpoints[0] (Remote run): path '{DEAD_ENDPOINT}/runs/x/trainer_state.json': "
                              "cannot connect (")
    assert "\n" not in message


def test_presigned_https_style_url_never_shows_its_token(s3: S3Server, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket="runs")
    s3.put_folder(EXAMPLES / "phi-3-mini-phase2-reasoning", "runs", "phi")
    url = s3.client.generate_presigned_url(
        "get_object", Params={"Bucket": "runs", "Key": "phi/checkpoint-199/trainer_state.json"}, ExpiresIn=600
    )
    signature = url.split("Signature=")[1].split("&")[0]
    s3.secrets.append(signature)
    project = tmp_path / "project"
    project.mkdir()
    (project / "checkpoints.yaml").write_text(f"checkpoints:\n  - name: Presigned\n    path: '{url}'\n")
    options = RemoteOptions(tmp_path / "cache")

    with recording_downloads() as downloads:
        first = generate(project / "checkpoints.yaml", project / "docs", remote=options)
    with recording_downloads() as again:
        generate(project / "checkpoints.yaml", project / "docs", remote=options)

    assert first.problems == []
    shown = f"{s3.endpoint}/runs/phi/checkpoint-199/trainer_state.json?<redacted>"
    assert downloads == [shown]  # side files are not guessed for a signed URL
    assert again == []  # the server's ETag: a cache hit
    written = everything_written(project / "docs", tmp_path / "cache")
    for secret in s3.secrets:
        assert secret.encode() not in written
