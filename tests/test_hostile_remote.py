"""Hostile URLs and servers: credentials with '/' or '%3A', bodies without Content-Length,
servers that never answer, redirect loops."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import sft_rows
from generator import remote
from generator.cli import main
from generator.errors import CheckpointError
from generator.records import CheckpointEntry
from generator.registry import load_registry
from generator.remote import RemoteOptions, credentials_problem, localise, scrub, shown_url

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

# Real-shaped AWS keys: a 20-character key id, a 40-character secret with '/' and '+'.
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY+EXAMPLEKEY"
SECRET_PARTS = ("wJalrXUtnFEMI", "K7MDENG", "bPxRfiCY")
CREDENTIAL_URLS = (
    f"s3://{KEY_ID}:{SECRET}@bucket/run/checkpoint-5",
    f"s3://{KEY_ID}%3A{SECRET}@bucket/run",
    f"s3://{KEY_ID}%3a{SECRET.replace('/', '%2F')}@bucket/run",
    f"https://{KEY_ID}:{SECRET}@host.example/run/trainer_state.json",
    f"gs://{KEY_ID}:{SECRET}@bucket/run?x=1",
    f"hf://{KEY_ID}:{SECRET}@user/repo",
)


def _leaks(text: str) -> bool:
    return any(part in text for part in SECRET_PARTS) or SECRET in text


@pytest.mark.parametrize("url", CREDENTIAL_URLS)
def test_urls_with_credentials_are_refused_and_redacted(url: str) -> None:
    problem = credentials_problem(url)
    assert problem is not None and "credentials" in problem, url
    assert not _leaks(problem), problem
    assert not _leaks(shown_url(url)), shown_url(url)
    assert not _leaks(scrub(f"failed to read {url}: boom")), scrub(url)


def test_hub_revisions_and_at_signs_in_paths_are_not_credentials() -> None:
    for url in ("hf://user/repo@main/checkpoint-5", "hf://datasets/u/r@v1.0", "s3://bucket/a@b/run"):
        assert credentials_problem(url) is None, url
        assert shown_url(url) == url


def test_a_registry_with_a_secret_in_a_url_publishes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(
        "checkpoints:\n" + "".join(f"  - {{name: r{n}, path: '{url}'}}\n" for n, url in enumerate(CREDENTIAL_URLS)),
        encoding="utf-8",
    )
    loaded = load_registry(registry)
    assert loaded.entries == ()
    assert len(loaded.problems) == len(CREDENTIAL_URLS)
    status = main(["generate", "--config", str(registry), "--jobs", "1"])
    assert status == 0
    for published in (tmp_path / "docs").rglob("*"):
        if published.is_file():
            assert not _leaks(published.read_text(encoding="utf-8", errors="replace")), published
    assert not _leaks(capsys.readouterr().err)


# --- HTTP servers on loopback that misbehave ------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # no Content-Length needed: the body ends when the connection closes
    body = b""
    hang = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        if self.path.startswith("/hang/"):
            self.hang.wait(30)  # a server that accepts and never answers
            return
        if self.path.startswith("/loop/"):
            self.send_response(302)
            self.send_header("Location", "/loop/" + ("b" if self.path.endswith("a/trainer_state.json") else "a")
                             + "/trainer_state.json")
            self.end_headers()
            return
        if self.path == "/big/trainer_state.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no Content-Length
            if not head:
                for start in range(0, len(self.body), 65536):
                    self.wfile.write(self.body[start:start + 65536])
            return
        self.send_response(404)
        self.end_headers()


@contextmanager
def misbehaving_server(body: bytes) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"body": body, "hang": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        handler.hang.set()
        server.shutdown()
        server.server_close()


def _entry(url: str) -> CheckpointEntry:
    return CheckpointEntry(index=0, name="Remote", slug="remote", path=url, resolved=Path("/nonexistent"))


def test_a_body_without_content_length_is_read_to_its_end(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    rows = sft_rows([2.0 - i * 1e-5 for i in range(12000)])  # over 1 MB, far past 652,288 bytes
    body = json.dumps({"global_step": 80000, "log_history": rows}).encode("utf-8")
    assert len(body) > 1_000_000
    with misbehaving_server(body) as base:
        entry = localise(_entry(f"{base}/big/trainer_state.json"), RemoteOptions(cache_dir=tmp_path))
    assert entry.resolved.read_bytes() == body


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    started = time.monotonic()
    with misbehaving_server(b"") as base, pytest.raises(CheckpointError) as error:
        localise(_entry(f"{base}/hang/trainer_state.json"), RemoteOptions(cache_dir=tmp_path, timeout=1.5))
    assert time.monotonic() - started < 15
    message = str(error.value)
    assert "timed out" in message and "1.5 s" in message and "cannot connect" not in message, message


def test_a_redirect_loop_is_called_one(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    with misbehaving_server(b"") as base, pytest.raises(CheckpointError) as error:
        localise(_entry(f"{base}/loop/a/trainer_state.json"), RemoteOptions(cache_dir=tmp_path, timeout=10))
    message = str(error.value)
    assert "redirect" in message and "does not exist" not in message, message


def test_the_timeout_comes_from_the_environment_and_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDOCS_TIMEOUT", "7.5")
    assert remote.options_from_env().timeout == 7.5
    monkeypatch.delenv("TRAINDOCS_TIMEOUT")
    assert remote.options_from_env().timeout == remote.DEFAULT_TIMEOUT == 60
    from generator.cli import _parser

    args = _parser().parse_args(["generate", "--timeout", "3"])
    assert args.timeout == 3


def test_a_silent_hub_times_out_after_the_timeout_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        request: pytest.FixtureRequest) -> None:
    """hf:// took the Hub library's own waits (10 s per call, none for listings), whatever --timeout said."""
    pytest.importorskip("huggingface_hub", minversion="1.0")
    from huggingface_hub import constants, get_session, set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    request.addfinalizer(lambda: set_client_factory(default_client_factory))  # the timeout is process-wide
    monkeypatch.setattr(constants, "ENDPOINT", "")  # set below, once the server has a port
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", constants.HF_HUB_ETAG_TIMEOUT)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", constants.HF_HUB_DOWNLOAD_TIMEOUT)
    with misbehaving_server(b"") as base:
        monkeypatch.setattr(constants, "ENDPOINT", base + "/hang")  # every Hub call hangs
        started = time.monotonic()
        with pytest.raises(CheckpointError) as error:
            localise(_entry("hf://someone/some-model/checkpoint-10"), RemoteOptions(cache_dir=tmp_path, timeout=1))
        waited = time.monotonic() - started
    message = str(error.value)
    assert "timed out after 1 s" in message and "cannot connect" not in message, message
    assert constants.HF_HUB_ETAG_TIMEOUT == constants.HF_HUB_DOWNLOAD_TIMEOUT == 1
    assert get_session().timeout.read == get_session().timeout.connect == 1
    assert waited < 9.5  # not a speed target: the Hub's own wait is 10 s per call, and it was taken before
