"""Checkpoints where they live: `s3://`, `hf://`, `gs://`, `https://` or any other fsspec URL.

`localise` mirrors the few small files the reader needs (`trainer_state.json` of
every `checkpoint-N`, `adapter_config.json`, `config.json`, `README.md`; never
weights) into a local cache and returns the entry pointing at that mirror, so the
reader works on remote runs unchanged. The mirror has the remote's relative
layout: `checkpoint-500/trainer_state.json` in the bucket is
`checkpoint-500/trainer_state.json` under `entry.resolved`.

The cache is keyed by each object's identity as the backend reports it (ETag,
version id, Hub blob id, ..., else size and modification time): a rebuild lists
and stats, but downloads only what changed, and `offline` builds from the cache
alone. Credentials come from each backend's usual places, never from the URL
(the registry refuses `user:password@`), and every URL shown has its query string
(presigned tokens) redacted.

Each backend finds its credentials and settings where it always does. S3-compatible
servers (MinIO, moto, ...): `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3` (botocore,
which s3fs uses), or fsspec's own configuration, `FSSPEC_S3_ENDPOINT_URL` or
`~/.config/fsspec/*.json` (read once, when fsspec is imported).

fsspec and its backends are imported only when a remote entry is read: local
sites never pay for them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from generator.errors import CheckpointError
from generator.files import held_lock, write_atomic
from generator.folders import (
    JSONL_LOG,
    MAX_SIDE_BYTES,
    MAX_STATE_BYTES,
    SIDE_FILES,
    STATE_FILE,
    STATE_SUFFIXES,
    checkpoint_number,
    missing,
    not_a_state_file,
    nothing_to_read,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from generator.records import CheckpointEntry  # pandas: not imported by a CLI that only parses its options

CACHE_ENV = "TRAINDOCS_CACHE_DIR"
"""Overrides the cache location."""
OFFLINE_ENV = "TRAINDOCS_OFFLINE"
"""'1' (or true/yes/on): build remote entries from the cache alone (read by `options_from_env`)."""
TIMEOUT_ENV = "TRAINDOCS_TIMEOUT"
"""Seconds a server may take to connect or to send the next bytes (read by `options_from_env`)."""
DEFAULT_TIMEOUT = 60.0


EXTRAS = {"s3": "s3", "s3a": "s3", "hf": "hf", "gs": "gcs", "gcs": "gcs", "http": "remote", "https": "remote"}
"""Protocol -> the traindocs extra that installs its fsspec backend."""

INDEX_FILE = "index.json"
TREE_DIR = "tree"
LOCK_FILE = "lock"
INDEX_VERSION = 1

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
"""A URL's protocol; at least two letters, so `C://x` (a Windows drive) is a path."""
_URL_IN_TEXT = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]+://)(?P<rest>[^?#\s'\"<>]*)"
    r"(?P<query>\?[^#\s'\"<>]*)?(?P<fragment>#[^\s'\"<>]*)?"
)
_TOKEN_IN_TEXT = re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|(?:AKIA|ASIA)[A-Z0-9]{16})\b")
"""Hugging Face tokens and AWS access key ids, whatever message they turn up in."""
_SECRET_ENV_NAME = re.compile(r"(?:SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY|API_KEY|CREDENTIAL)", re.IGNORECASE)
REDACTED = "<redacted>"

# Keys of fsspec `info()` dicts that name one version of an object's bytes.
_CONTENT_KEYS = (
    "ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "crc32c", "Content-MD5", "Digest",
    "blob_id", "xet_hash", "lfs", "content_md5", "checksum", "sha256",
)
# Weaker: a time that changes when the object is rewritten (used when no content key is given).
_TIME_KEYS = (
    "LastModified", "Last-Modified", "last_modified", "updated", "mtime", "modified", "created", "uploaded_at",
    "timeCreated",
)


@dataclass(frozen=True)
class RemoteOptions:
    """How remote entries are fetched; picklable, since it crosses into worker processes."""

    cache_dir: Path
    """Where mirrors live: one folder per URL (see `default_cache_dir`)."""
    offline: bool = False
    """Build from the cache alone: no network, an uncached entry is an error."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds a server may take to connect, or to send the next bytes of an answer."""


def is_remote(path: str) -> bool:
    """A registry `path` that names a remote location (`scheme://...`).

    `file://` URLs are not remote: the registry turns them into local paths
    (see `file_url_path`). A Windows drive (`C:\\x`, `C://x`) is a path.
    """
    match = _SCHEME.match(path)
    return match is not None and match.group(1).lower() != "file"


def protocol(url: str) -> str:
    """The URL's protocol in lowercase ('' for a local path)."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def file_url_path(url: str) -> str | None:
    """The local path of a `file://` URL (`file:///abs` or `file://localhost/abs`); None for any other URL.

    Raises `ValueError` for a `file://` URL naming another host.
    """
    if protocol(url) != "file":
        return None
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"'{shown_url(url)}' names the host '{parts.netloc}'; file:// URLs must be local")
    return url2pathname(parts.path)


@dataclass(frozen=True)
class _UrlParts:
    """A URL split as `urllib.parse` splits it, with the user information found even when a
    secret holds a '/' (an AWS secret key may; the standard parser then ends the host there)."""

    scheme: str
    """With its '://'."""
    userinfo: str | None
    """Everything before the '@' that ends the credentials; None when there are none."""
    rest: str
    """Host and path, without query string and fragment."""
    query: str | None
    fragment: str | None


_ENCODED_COLON = re.compile(r"%3a", re.IGNORECASE)


def _url_parts(url: str) -> _UrlParts | None:
    """The parts of a `scheme://` URL; None for a local path."""
    from urllib.parse import urlsplit

    match = _SCHEME.match(url)
    if not match:
        return None
    scheme = match.group(0)
    body = url[len(scheme):]
    try:
        parts = urlsplit(url)
        # urlsplit cuts at the first '?' or '#': so does the body here.
        query: str | None = parts.query if "?" in body.split("#", 1)[0] else None
        fragment: str | None = parts.fragment if "#" in body else None
    except ValueError:  # e.g. an invalid IPv6 host: cut by hand, the same way
        query = "" if "?" in body.split("#", 1)[0] else None
        fragment = "" if "#" in body else None
    body = body.split("#", 1)[0].split("?", 1)[0]
    userinfo = None
    if "@" in body:
        authority = body.split("/", 1)[0]
        before_at = body.split("@", 1)[0]
        if "@" in authority:
            # The standard case: user[:password]@host; the last '@' of the authority ends it.
            userinfo = authority.rpartition("@")[0]
            body = body[len(userinfo) + 1:]
        elif ":" in before_at or _ENCODED_COLON.search(before_at):
            # user:secret@host with a '/' in the secret: everything up to the last '@' is
            # taken as the credentials (over-redacting a path beats showing a secret).
            userinfo, _, body = body.rpartition("@")
    return _UrlParts(scheme, userinfo, body, query, fragment)


def shown_url(url: str) -> str:
    """The URL as it may be shown: user and password, query string and fragment redacted.

    Presigned URLs carry their token in the query string; a page, log line or
    error message shows `https://host/file.json?<redacted>` instead.
    """
    parts = _url_parts(url)
    if parts is None:
        return url
    userinfo = f"{REDACTED}@" if parts.userinfo is not None else ""
    query = f"?{REDACTED}" if parts.query is not None else ""
    return f"{parts.scheme}{userinfo}{parts.rest}{query}"


def _redact_match(match: re.Match[str]) -> str:
    return shown_url(match.group(0))


def scrub(text: str) -> str:
    """A server's or library's message made safe to show, on one line.

    Every URL in it is redacted like `shown_url`; Hub tokens, AWS access key ids
    and the values of credential-like environment variables are replaced.
    """
    text = _URL_IN_TEXT.sub(_redact_match, text)
    text = _TOKEN_IN_TEXT.sub(REDACTED, text)
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_ENV_NAME.search(name) and value in text:
            text = text.replace(value, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def credentials_problem(url: str) -> str | None:
    """Why a registry URL must be refused (credentials or nothing after `scheme://`), or None."""
    from urllib.parse import urlsplit

    scheme = protocol(url)
    rest = url[len(scheme) + 3:]
    if not rest.strip("/"):
        return f"'{shown_url(url)}' names nothing after '{scheme}://'"
    try:
        urlsplit(url)
    except ValueError:
        return f"'{shown_url(url)}' is not a valid URL"
    parts = _url_parts(url)
    userinfo = parts.userinfo if parts is not None else None
    if userinfo and (":" in userinfo or _ENCODED_COLON.search(userinfo) or scheme in ("http", "https")):
        return (
            f"'{shown_url(url)}' holds credentials (user:password@); remove them and give them "
            "the backend's usual way (environment variables, its config file, or 'huggingface-cli login')"
        )
    return None


def protocol_problem(url: str) -> str | None:
    """Why fsspec cannot know the URL's protocol (a typo such as `s4://`), or None."""
    scheme = protocol(url)
    if scheme in _STAND_INS or scheme in EXTRAS:
        return None
    from fsspec.registry import known_implementations, registry

    known = set(known_implementations) | set(registry)
    if scheme in known:
        return None
    # The common protocols first, with a looser cutoff: 's4' is one letter from 's3'.
    close = difflib.get_close_matches(scheme, sorted(EXTRAS), n=1, cutoff=0.5) or \
        difflib.get_close_matches(scheme, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"'{scheme}://' is not a protocol fsspec knows{hint}"


def default_cache_dir() -> Path:
    """$TRAINDOCS_CACHE_DIR, else $XDG_CACHE_HOME/traindocs, else ~/.cache/traindocs."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "traindocs"
    return Path.home() / ".cache" / "traindocs"


def options_from_env() -> RemoteOptions:
    """Options from $TRAINDOCS_CACHE_DIR, $TRAINDOCS_OFFLINE and $TRAINDOCS_TIMEOUT (for the MkDocs
    plugin and defaults); a timeout that is not a positive number is ignored."""
    offline = os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return RemoteOptions(cache_dir=default_cache_dir(), offline=offline,
                         timeout=parse_timeout(os.environ.get(TIMEOUT_ENV, "")) or DEFAULT_TIMEOUT)


def parse_timeout(text: str) -> float | None:
    """A timeout in seconds from text ('30', '2.5'); None when it is not a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


# --- test hooks --------------------------------------------------------------------------

_STAND_INS: dict[str, AbstractFileSystem] = {}
_RECORDERS: list[list[str]] = []


def register_filesystem(protocol_name: str, filesystem: AbstractFileSystem | None) -> None:
    """Read `protocol_name://` URLs through `filesystem` (None: back to fsspec's own).

    For tests: fsspec's `MemoryFileSystem` stands in for `hf://`, and goes through
    exactly the code the Hub does. Only this process sees it (not spawned workers).
    """
    if filesystem is None:
        _STAND_INS.pop(protocol_name.lower(), None)
    else:
        _STAND_INS[protocol_name.lower()] = filesystem


@contextlib.contextmanager
def recording_downloads() -> Iterator[list[str]]:
    """Collect the URL (as shown) of every object this process downloads while inside.

    Listings and `info()` calls are not downloads; the bytes of a file are.
    """
    downloads: list[str] = []
    _RECORDERS.append(downloads)
    try:
        yield downloads
    finally:
        _RECORDERS.remove(downloads)


# --- the mirror ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    """One file to mirror: where it is for the file system, and how it is shown."""

    path: str
    url: str
    info: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    """What a URL's mirror holds: its kind ('folder' or 'file'), the state file's name for a file,
    and every file by its path relative to the URL."""

    kind: str
    target: str
    files: dict[str, _Remote]


def cache_folder(url: str, options: RemoteOptions) -> Path:
    """The cache folder of one URL (a hash of it: a URL may hold anything a folder name may not)."""
    return options.cache_dir / hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def localise(entry: CheckpointEntry, options: RemoteOptions) -> CheckpointEntry:
    """Fetch (or reuse from cache) the small files of a remote entry.

    Returns the entry with `resolved` at the local mirror, which has the remote's
    relative layout, so the local reader works unchanged and
    `state_file.relative_to(entry.resolved)` is the remote-relative path.
    Raises `CheckpointError` with a one-line message starting with the entry's label.
    """
    url = entry.path
    where = f"{entry.label}: path '{shown_url(url)}'"
    folder = cache_folder(url, options)
    if options.offline and not (folder / INDEX_FILE).is_file():
        raise CheckpointError(f"{where}: not in the cache ({options.cache_dir}); run once without --offline to fetch it")
    try:
        with _locked(folder, required=not options.offline):
            if options.offline:
                index = _load_index(folder)
                if index is None or not _complete(folder, index):
                    raise CheckpointError(
                        f"{where}: not in the cache ({options.cache_dir}); run once without --offline to fetch it"
                    )
            else:
                token = _TIMEOUT.set(options.timeout)
                try:
                    filesystem, root = _filesystem(url, where, options.timeout)
                    plan = _plan(filesystem, root, url, where)
                    index = _sync(filesystem, folder, plan, url, where)
                finally:
                    _TIMEOUT.reset(token)
    except OSError as exc:  # the cache itself (remote failures are CheckpointErrors by now)
        raise CheckpointError(
            f"{where}: cannot use the cache folder {folder}: {exc.strerror or exc}; set {CACHE_ENV} or --cache-dir"
        ) from None
    tree = folder / TREE_DIR
    resolved = tree / index["target"] if index["kind"] == "file" else tree
    return dataclasses.replace(entry, resolved=resolved)


@contextlib.contextmanager
def _locked(folder: Path, required: bool = True) -> Iterator[None]:
    """Hold the URL's lock: two processes mirroring one URL would prune each other's files.

    Reading offline from a cache we may not write to (`required=False`) goes without it.
    """
    lock = contextlib.ExitStack()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.enter_context(held_lock(folder / LOCK_FILE))
    except OSError:
        if required:
            raise
    with lock:
        yield


_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("traindocs_timeout", default=None)
"""The timeout in force while an entry is fetched (for the wording of failures)."""


def _timeout_options(scheme: str, timeout: float) -> dict[str, Any]:
    """Storage options that make a backend give up on a silent server after `timeout` seconds."""
    if scheme in ("http", "https"):
        try:
            import aiohttp
        except ImportError:
            return {}
        # Per connection and per read, not in total: a slow but steady download goes on.
        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=None, connect=timeout,
                                                                   sock_connect=timeout, sock_read=timeout)}}
    if scheme in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout}}
    if scheme in ("gs", "gcs"):
        return {"timeout": timeout}
    if scheme == "hf":
        _hub_timeout(timeout)  # huggingface_hub takes no per-filesystem timeout: it is process-wide
    return {}


def _hub_timeout(timeout: float) -> None:
    """Make huggingface_hub give up on a silent Hub after `timeout` seconds.

    Its metadata and download calls read two module constants at call time (10 s by
    default), and its shared HTTP client has no timeout at all (a directory listing
    waited forever): set both.
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        return  # _filesystem names the missing extra
    constants.HF_HUB_ETAG_TIMEOUT = constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout  # type: ignore[assignment]
    try:
        from huggingface_hub.utils._http import default_client_factory as default_factory
    except ImportError:  # pragma: no cover - huggingface_hub before 1.0 (the extra asks for 1.0)
        return

    def client_with_timeout() -> Any:
        client = default_factory()
        client.timeout = timeout  # httpx turns a number into the same timeout for connect, read and write
        return client

    huggingface_hub.set_client_factory(client_with_timeout)


def _filesystem(url: str, where: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[AbstractFileSystem, str]:
    """The file system serving `url` and the path it knows the URL by."""
    scheme = protocol(url)
    stand_in = _STAND_INS.get(scheme)
    if stand_in is not None:
        filesystem, path = stand_in, stand_in._strip_protocol(url[len(scheme) + 3:])
    else:
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise CheckpointError(f"{where}: fsspec is not installed; pip install 'traindocs[remote]'") from None
        try:
            filesystem, path = url_to_fs(url, **_timeout_options(scheme, timeout))
        except ImportError:
            extra = EXTRAS.get(scheme)
            if extra:
                hint = f"pip install 'traindocs[{extra}]'"
            else:
                from fsspec.registry import known_implementations

                hint = known_implementations.get(scheme, {}).get("err") or f"install fsspec's backend for {scheme}://"
            raise CheckpointError(f"{where}: the {scheme}:// backend is not installed; {hint}") from None
        except ValueError as exc:
            if "Protocol not known" in str(exc):
                raise CheckpointError(f"{where}: '{scheme}://' is not a protocol fsspec knows") from None
            raise CheckpointError(f"{where}: {scrub(str(exc))}") from None
        except Exception as exc:
            raise CheckpointError(f"{where}: {describe_failure(exc)}") from None
    # Backends cache listings per instance: a rebuild must see the bucket as it is now.
    filesystem.invalidate_cache()
    return filesystem, path


T = TypeVar("T")


def _remote(where: str, call: Callable[[], T]) -> T:
    """Run one call to the remote; any failure becomes one line naming the entry and the URL."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, CheckpointError):
        raise
    except Exception as exc:
        failure = describe_failure(exc)
        raise CheckpointError(f"{where}{'' if failure.startswith('does not exist') else ':'} {failure}") from None


def _plan(filesystem: AbstractFileSystem, root: str, url: str, where: str) -> _Plan:
    """Find what to mirror, with the same rules as the reader applies to a local path."""
    root = root.rstrip("/") or root
    base_url = _bare(url).rstrip("/")
    if _name(_bare(url)).endswith(STATE_SUFFIXES):
        info = _remote(where, lambda: filesystem.info(root))
        if info.get("type") != "directory":
            return _file_plan(filesystem, root, url, info)
    listing = _listing(filesystem, root, where)
    if not listing:
        raise CheckpointError(missing(where))
    if len(listing) == 1 and listing[0].get("type") != "directory" and _same(listing[0].get("name", ""), root):
        raise CheckpointError(not_a_state_file(where))
    children = {_name(item.get("name", "")): item for item in listing}
    files: dict[str, _Remote] = {}

    def add(rel: str, info: dict[str, Any]) -> None:
        files[rel] = _Remote(f"{root}/{rel}", f"{base_url}/{rel}", info)

    if _is_file(children.get(STATE_FILE)):
        for name in (STATE_FILE, *SIDE_FILES):
            if _is_file(children.get(name)):
                add(name, children[name])
        return _Plan("folder", "", files)
    checkpoints: list[tuple[int, str, dict[str, dict[str, Any]]]] = []
    for name, item in children.items():
        number = checkpoint_number(name)
        if number is not None and item.get("type") == "directory":
            inside = {_name(i.get("name", "")): i for i in _listing(filesystem, f"{root}/{name}", where)}
            if _is_file(inside.get(STATE_FILE)):
                checkpoints.append((number, name, inside))
    for name in SIDE_FILES:
        if _is_file(children.get(name)):
            add(name, children[name])
    if not checkpoints:
        if _is_file(children.get(JSONL_LOG)):
            add(JSONL_LOG, children[JSONL_LOG])
            return _Plan("folder", "", files)
        raise CheckpointError(nothing_to_read(where))
    checkpoints.sort()
    for _, name, inside in checkpoints:  # every one: progression across checkpoints
        add(f"{name}/{STATE_FILE}", inside[STATE_FILE])
    _, latest, inside = checkpoints[-1]
    for name in SIDE_FILES:
        if _is_file(inside.get(name)):
            add(f"{latest}/{name}", inside[name])
    return _Plan("folder", "", files)


def _file_plan(filesystem: AbstractFileSystem, root: str, url: str, info: dict[str, Any]) -> _Plan:
    """A URL to the state file itself, plus the side files beside it when there are any."""
    target = _name(_bare(url))  # never the query string: it may hold a token
    files = {target: _Remote(root, url, info)}
    if "?" not in url and "/" in root:  # a query string (a presigned URL) signs one object only
        parent, parent_url = root.rsplit("/", 1)[0], url.rsplit("/", 1)[0]
        for name in SIDE_FILES:
            if name == target:
                continue
            try:
                side = filesystem.info(f"{parent}/{name}")
            except Exception:  # optional: absent, or not ours to read
                continue
            if side.get("type") == "file":
                files[name] = _Remote(f"{parent}/{name}", f"{parent_url}/{name}", side)
    return _Plan("file", target, files)


def _listing(filesystem: AbstractFileSystem, path: str, where: str) -> list[dict[str, Any]]:
    listing = _remote(where, lambda: filesystem.ls(path, detail=True))
    return [item for item in listing if isinstance(item, dict)]


def _bare(url: str) -> str:
    """The URL without query string and fragment."""
    return url.split("#", 1)[0].split("?", 1)[0]


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _same(a: str, b: str) -> bool:
    return a.strip("/") == b.strip("/")


def _is_file(info: dict[str, Any] | None) -> bool:
    return info is not None and info.get("type") == "file"


def identity(info: dict[str, Any]) -> str | None:
    """What names this version of an object, from its `info()`; None when the backend tells nothing.

    Content keys (ETag, version id, Hub blob id, MD5, ...) when there are any, else
    modification times; with the size. An object without either is fetched every time.
    """
    keys = [k for k in _CONTENT_KEYS if info.get(k) not in (None, "")]
    if not keys:
        keys = [k for k in _TIME_KEYS if info.get(k) not in (None, "")]
    if not keys:
        return None
    return json.dumps({"size": info.get("size"), **{k: info[k] for k in keys}}, sort_keys=True, default=str)


def _sync(filesystem: AbstractFileSystem, folder: Path, plan: _Plan, url: str, where: str) -> dict[str, Any]:
    """Bring the mirror to `plan`: download what changed, drop what went away; returns the new index."""
    previous = _load_index(folder) or {}
    known_files = previous.get("files") if isinstance(previous.get("files"), dict) else {}
    tree = folder / TREE_DIR
    files: dict[str, dict[str, Any]] = {}
    for rel, remote in plan.files.items():
        is_state = rel == plan.target or _name(rel) in (STATE_FILE, JSONL_LOG)
        limit = MAX_STATE_BYTES if is_state else MAX_SIDE_BYTES
        size = remote.info.get("size")
        if isinstance(size, int) and size > limit:
            if is_state:
                raise CheckpointError(
                    f"{where}: {_name(rel)} is {size / 1e6:.0f} MB, more than the {limit / 1e6:.0f} MB "
                    "traindocs reads; is it really a trainer_state.json?"
                )
            continue
        current = identity(remote.info)
        known = known_files.get(rel) if isinstance(known_files, dict) else None
        local = tree / rel
        if current is not None and isinstance(known, dict) and known.get("identity") == current \
                and _has_size(local, known.get("size")):
            files[rel] = known
            continue
        data = _remote(where, functools.partial(_download, filesystem, remote, limit))
        if len(data) > limit:
            if is_state:
                raise CheckpointError(
                    f"{where}: {_name(rel)} is more than the {limit / 1e6:.0f} MB traindocs reads; "
                    "is it really a trainer_state.json?"
                )
            continue
        for recorder in _RECORDERS:
            recorder.append(shown_url(remote.url))
        write_atomic(local, data)
        files[rel] = {"identity": current, "size": len(data)}
    _prune(tree, set(files))
    index = {"version": INDEX_VERSION, "url": shown_url(url), "kind": plan.kind, "target": plan.target,
             "files": dict(sorted(files.items()))}
    write_atomic(folder / INDEX_FILE, (json.dumps(index, indent=1) + "\n").encode("utf-8"))
    return index


def _download(filesystem: AbstractFileSystem, remote: _Remote, limit: int) -> bytes:
    """The object's bytes; at most limit + 1 of them when the size was not known beforehand.

    Without a size (an HTTP answer without Content-Length) the stream is read to its
    end: one `read` of a stream may return only the bytes that have arrived.
    """
    if isinstance(remote.info.get("size"), int):
        return bytes(filesystem.cat_file(remote.path))
    chunks: list[bytes] = []
    total = 0
    with filesystem.open(remote.path, "rb") as stream:
        while total <= limit:
            chunk = stream.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(bytes(chunk))
            total += len(chunk)
    return b"".join(chunks)


def _has_size(path: Path, size: object) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _load_index(folder: Path) -> dict[str, Any] | None:
    """The cache index of a URL's folder; None when absent, unreadable or of another version."""
    try:
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or index.get("kind") not in ("file", "folder") \
            or not isinstance(index.get("files"), dict) or not isinstance(index.get("target"), str):
        return None
    return index


def _complete(folder: Path, index: dict[str, Any]) -> bool:
    """Every file the index lists is in the mirror, with its size."""
    return all(
        isinstance(known, dict) and _has_size(folder / TREE_DIR / rel, known.get("size"))
        for rel, known in index["files"].items()
    )


def _prune(tree: Path, keep: set[str]) -> None:
    """Delete files of the mirror that are not in `keep` (a checkpoint removed upstream must not be read)."""
    if not tree.is_dir():
        return
    for folder, _, names in os.walk(tree, topdown=False):
        here = Path(folder)
        for name in names:
            if (here / name).relative_to(tree).as_posix() not in keep:
                (here / name).unlink(missing_ok=True)
        if here != tree:
            with contextlib.suppress(OSError):  # not empty
                here.rmdir()


# --- failures as one line --------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from or during, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _server_reply(exc: BaseException) -> tuple[int | None, str, str]:
    """(HTTP status, error code, message) of the first server reply in the chain (botocore,
    aiohttp, requests/httpx, huggingface_hub); (None, '', '') when no server answered."""
    for cause in _causes(exc):
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):  # botocore ClientError
            error = response["Error"]
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return (status if isinstance(status, int) else None, str(error.get("Code") or ""),
                    str(error.get("Message") or ""))
        status = getattr(response, "status_code", None) if response is not None else None
        if not isinstance(status, int):
            status = getattr(cause, "status", None)  # aiohttp ClientResponseError
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) \
                or getattr(cause, "message", None) or ""
            return status, "", str(reason)
    return None, "", ""


HUB_LOGIN = "log in ('hf auth login' or 'huggingface-cli login') or set HF_TOKEN"
_NOT_FOUND_CODES = ("NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchVersion")


def describe_failure(exc: BaseException) -> str:
    """A remote failure as the end of a one-line message: 'access denied (AccessDenied)',
    'does not exist', 'cannot connect (...)', 'cannot be read: ... (code)'."""
    causes = list(_causes(exc))
    names = {type(cause).__name__ for cause in causes}
    text = " ".join(str(cause) for cause in causes)
    status, code, message = _server_reply(exc)
    if status is None and code.isdigit():
        status = int(code)
    said = code if code and not code.isdigit() else (f"HTTP {status} {message}".strip() if status else "")
    connection = next((cause for cause in causes if _is_connection_failure(cause)), None)
    if status is None and any(_is_timeout(cause) for cause in causes):
        timeout = _TIMEOUT.get()
        after = f" after {timeout:g} s" if timeout else ""
        return (f"timed out{after}: the server did not answer (a longer wait: --timeout SECONDS or "
                f"{TIMEOUT_ENV})")
    if "TooManyRedirects" in names or any("redirect" in type(cause).__name__.lower() for cause in causes):
        return "too many redirects (the server sends the request round in a loop)"
    # The Hub answers 401 for a private repository as for a missing one: say both.
    if "GatedRepoError" in names:
        return f"access denied (gated repository: accept its conditions on the Hub, then {HUB_LOGIN})"
    if "RepositoryNotFoundError" in names or "(repository not found)" in text:
        return f"does not exist (repository not found; if it is private, {HUB_LOGIN})"
    if "RevisionNotFoundError" in names or "(revision not found)" in text:
        return "does not exist (revision not found)"
    if status in (401, 403) or any(isinstance(cause, PermissionError) for cause in causes):
        return f"access denied ({scrub(said or 'permission denied')})"
    if "NoCredentialsError" in names:
        return "no credentials found (give them the backend's usual way: environment variables or its config file)"
    if status == 404 or code in _NOT_FOUND_CODES or (
        status is None and connection is None and any(isinstance(cause, FileNotFoundError) for cause in causes)
    ):
        return "does not exist"
    if connection is not None and status is None:
        return f"cannot connect ({scrub(str(connection) or type(connection).__name__)})"
    detail = scrub(message or str(exc) or type(exc).__name__)
    if said and said not in detail:
        detail += f" ({scrub(said)})"
    return f"cannot be read: {detail}"


def _is_timeout(exc: BaseException) -> bool:
    name = type(exc).__name__
    return isinstance(exc, TimeoutError) or "Timeout" in name


def _is_connection_failure(exc: BaseException) -> bool:
    name = type(exc).__name__
    return isinstance(exc, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name \
        or name in ("gaierror", "ClientOSError", "ServerDisconnectedError")
