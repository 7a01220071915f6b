"""Everything that touches the network: host-name lookups with a deadline, HTTPS probes, downloads
(resumed and retried: see :func:`download_file`).

Used by the model registry (fetching models on first use, ``models download``)
and by ``doctor`` (are the model sources reachable?), so both judge the network
with the same code.

The system resolver ignores socket timeouts, so every lookup that could hang
runs in a daemon thread with a deadline: a machine with a broken DNS set-up
waits one timeout, never minutes, and a lookup the resolver will not abandon
cannot keep the process alive.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from virnucpro.sizes import human_size

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 4.0
#: What a failed transfer raises (URLError, HTTPError and timeouts are OSErrors).
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
_CHUNK = 1 << 20


def host_of(url: str) -> str:
    """The host name of ``url`` (the text itself when it has none)."""
    return urllib.parse.urlsplit(url).hostname or url


def resolve_host(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Resolve the host of ``url`` within ``timeout`` seconds.

    Raises:
        TimeoutError: no answer from the resolver in time.
        OSError: the name does not resolve.
    """
    host = host_of(url)
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(None)
        except OSError as exc:
            result.append(exc)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise TimeoutError(f"cannot resolve {host} within {timeout:.0f} s")
    if result[0] is not None:
        raise OSError(f"cannot resolve {host}: {result[0]}")


def short_error(exc: BaseException) -> str:
    """One line for an exception: its type and the first non-empty line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Probe:
    """Outcome of one HTTPS probe: ``reachable`` means the server answered 2xx/3xx."""

    host: str
    url: str
    reachable: bool
    detail: str


def probe(url: str, timeout: float = PROBE_TIMEOUT_S, user_agent: str = "virnucpro") -> Probe:
    """Send ``HEAD url`` and describe the answer in one line (never raises for network trouble)."""
    host = host_of(url)
    started = time.monotonic()
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": user_agent})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return Probe(host, url, False, f"answers HTTP {exc.code} {exc.reason} for {url}")
    except (OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Probe(host, url, False, f"unreachable ({reason})")
    return Probe(host, url, True, f"reachable (HTTP {status}, {1000 * (time.monotonic() - started):.0f} ms)")


def probe_all(urls: Sequence[str], timeout: float = PROBE_TIMEOUT_S, user_agent: str = "virnucpro") -> dict[str, Probe]:
    """Probe every URL at once, each in a daemon thread with ``timeout`` seconds (lookup included)."""
    found: dict[str, Probe] = {}
    threads = []
    for url in urls:
        def run(url: str = url) -> None:
            found[url] = probe(url, timeout, user_agent)

        thread = threading.Thread(target=run, name=f"probe-{url}", daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for url in urls:
        if url not in found:
            found[url] = Probe(host_of(url), url, False, f"no answer within {timeout:.0f} s")
    return found


# --------------------------------------------------------------------------- one file over HTTP(S): resumed, retried, verified

#: The partial file of a download sits beside its destination under this suffix, and is
#: continued by the next try or the next run (an HTTP Range request).
PARTIAL_SUFFIX = ".part"
#: Beside the partial: the URL, validators (ETag, Last-Modified) and length it was started with.
VALIDATORS_SUFFIX = ".part.json"
#: Tries in a row that add no data before a download gives up; a try that adds at least
#: :data:`PROGRESS_RESETS_TRIES` bytes starts the count again (so the bound is per stretch of no progress).
DOWNLOAD_ATTEMPTS = 5
#: Overrides :data:`DOWNLOAD_ATTEMPTS` (a whole number >= 1), e.g. on a cluster with a poor link.
ATTEMPTS_VARIABLE = "VIRNUCPRO_DOWNLOAD_TRIES"
PROGRESS_RESETS_TRIES = 1 << 20
BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0
#: HTTP statuses worth another try: timeouts, rate limits and server-side failures.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class TransferError(OSError):
    """The connection ended before the whole file arrived (a try that can be resumed)."""


def partial_path(dest: Path) -> Path:
    """The partial file of a download to ``dest`` (``<dest>.part``)."""
    return dest.with_name(dest.name + PARTIAL_SUFFIX)


def _validators_path(dest: Path) -> Path:
    return dest.with_name(dest.name + VALIDATORS_SUFFIX)


@dataclass(frozen=True)
class PartialDownload:
    """A download interrupted before it finished, which the next download of its file continues.

    Attributes:
        path: the partial file (``<dest>.part``).
        size: bytes already there.
        total: the file's full length when the server told it, else None.
        url: where it was being fetched from (None when its record is missing).
    """

    path: Path
    size: int
    total: int | None
    url: str | None


def find_partials(directory: Path) -> list[PartialDownload]:
    """The partial downloads left in ``directory`` (not its subdirectories), sorted by name."""
    found: list[PartialDownload] = []
    if not directory.is_dir():
        return found
    for part in sorted(directory.glob("*" + PARTIAL_SUFFIX)):
        if not part.is_file():
            continue
        record = _read_record(_validators_path(part.with_name(part.name[: -len(PARTIAL_SUFFIX)])))
        found.append(PartialDownload(part, part.stat().st_size, record.get("total"), record.get("url")))
    return found


def is_transient(exc: BaseException) -> bool:
    """True when another try may succeed: a timeout, a reset or closed connection, a short
    transfer, HTTP 408/425/429/5xx. A host name that does not resolve, a refused TLS
    certificate, another HTTP error (404, 403) or a local file error is not transient."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_STATUS
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, BaseException) and is_transient(exc.reason)
    if isinstance(exc, socket.gaierror):
        return False
    if isinstance(exc, ssl.SSLError):
        return isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))
    return isinstance(exc, (TimeoutError, ConnectionError, TransferError, http.client.HTTPException))


def download_attempts() -> int:
    """Tries in a row without progress before a download gives up: ``$VIRNUCPRO_DOWNLOAD_TRIES``,
    else :data:`DOWNLOAD_ATTEMPTS` (also when the variable is not a whole number >= 1)."""
    text = os.environ.get(ATTEMPTS_VARIABLE, "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text:
        logger.warning("%s=%s is not a whole number >= 1; using %d", ATTEMPTS_VARIABLE, text, DOWNLOAD_ATTEMPTS)
    return DOWNLOAD_ATTEMPTS


def retry_delay(exc: BaseException, attempt: int, backoff_s: float = BACKOFF_S) -> float:
    """Seconds to wait before try ``attempt + 1``: the server's ``Retry-After`` (seconds) when it
    sent one, else ``backoff_s * 2 ** (attempt - 1)``; at most :data:`MAX_BACKOFF_S`."""
    if isinstance(exc, urllib.error.HTTPError) and exc.headers is not None:
        retry_after = (exc.headers.get("Retry-After") or "").strip()
        if retry_after.isdigit():
            return min(float(retry_after), MAX_BACKOFF_S)
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)


def download_file(
    url: str,
    dest: Path,
    *,
    label: str | None = None,
    validate: Callable[[Path], None] | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
    attempts: int | None = None,
    backoff_s: float = BACKOFF_S,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resumed and retried, renamed into place.

    The partial file keeps what arrived: a later try, or a later run after a kill, asks
    only for the rest (HTTP ``Range`` with ``If-Range``). When the server ignores the range
    or the file changed (other ETag, Last-Modified or length), the download starts over.
    Transient failures (:func:`is_transient`) are retried after a growing pause, each
    logged; ``attempts`` tries in a row without progress end it. Concurrent callers for
    the same ``dest`` wait on ``<dest>.lock`` and the second finds the file there.

    Args:
        url: HTTP(S) URL.
        dest: final path.
        label: name shown in progress messages.
        validate: called with the complete partial file before the rename; raises to reject
            it (the partial is then deleted, so the next download starts over).
        timeout: seconds for the host-name lookup, the connection and each read.
        attempts: tries in a row that add no data before giving up (:func:`download_attempts` when None).
        backoff_s: pause after the first failed try; doubled after each next one.

    Raises:
        OSError: the host is unreachable, the server answered with an error, or every try
            broke (the partial is kept for the next run when it holds data).
    """
    from filelock import FileLock

    name = label or dest.name
    attempts = attempts or download_attempts()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():
            return dest
        resolve_host(url, timeout)
        part = partial_path(dest)
        failures = 0
        while True:
            before = _size(part)
            try:
                _transfer(url, dest, name, timeout)
                break
            except NETWORK_ERRORS as exc:
                if _size(part) - before >= PROGRESS_RESETS_TRIES:
                    failures = 0
                failures += 1
                if not is_transient(exc) or failures >= attempts:
                    _forget_if_empty(dest)
                    if _size(part):
                        logger.warning("%s: download stopped (%s); %s of it kept in %s for the next try",
                                       name, short_error(exc), human_size(_size(part)), part)
                    raise
                delay = retry_delay(exc, failures, backoff_s)
                logger.warning("%s: try %d of %d failed (%s); %s kept, retrying in %.0f s", name, failures,
                               attempts, short_error(exc), human_size(_size(part)), delay)
                time.sleep(delay)
        if validate is not None:
            try:
                validate(part)
            except Exception:
                _discard(dest)  # complete but wrong: the next download must start over
                raise
        os.replace(part, dest)
        _validators_path(dest).unlink(missing_ok=True)
    logger.info("downloaded %s -> %s", url, dest)
    return dest


def _transfer(url: str, dest: Path, name: str, timeout: float) -> None:
    """One try: continue (or start) ``<dest>.part`` until it holds the whole file."""
    part = partial_path(dest)
    record = _read_record(_validators_path(dest))
    condition = _resume_condition(record, url)
    offset = _size(part) if condition else 0
    total = record.get("total") if condition else None
    if offset and total is not None and offset >= total:
        if offset == total:
            return  # complete: a kill came between the last byte and the rename
        offset = 0
    if not offset:
        _discard(dest)
    headers = {"User-Agent": "virnucpro"}
    if offset:
        headers.update({"Range": f"bytes={offset}-", "If-Range": condition or ""})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        _discard(dest)  # the partial is longer than the file now is: it changed
        raise TransferError(f"the server cannot continue at {human_size(offset)}; starting over") from exc
    with response:
        if offset and response.status == 206:
            start, length = _content_range(response.headers.get("Content-Range"))
            if start != offset or (length is not None and total is not None and length != total):
                logger.warning("%s: the server's range (%s) does not continue the partial file; starting over",
                               name, response.headers.get("Content-Range"))
                _discard(dest)
                raise TransferError("answer did not continue the partial file")
            total = length
        elif response.status == 200:
            if offset:
                logger.warning("%s: the server sent the whole file (it ignores ranges, or the file changed "
                               "since %s were fetched); starting over", name, human_size(offset))
                _discard(dest)
            offset = 0
            length_text = response.headers.get("Content-Length")
            total = int(length_text) if length_text and length_text.isdigit() else None
            _write_record(_validators_path(dest), {
                "url": url, "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"), "total": total,
            })
        else:
            raise TransferError(f"unexpected HTTP {response.status} for {url}")
        with part.open("ab" if offset else "wb") as out:
            _copy_with_progress(response, out, offset, total, name)
    size = _size(part)
    if total is not None and size != total:
        raise TransferError(f"the connection closed after {human_size(size)} of {human_size(total)}")


def _resume_condition(record: dict, url: str) -> str | None:
    """The ``If-Range`` value that makes a range answer safe: the strong ETag, else Last-Modified;
    None (start over) when the partial was for another URL or has no validator."""
    if record.get("url") != url:
        return None
    etag = record.get("etag")
    if isinstance(etag, str) and etag and not etag.startswith("W/"):
        return etag
    modified = record.get("last_modified")
    return modified if isinstance(modified, str) and modified else None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, full length) of ``Content-Range: bytes 100-199/200``; None where absent or ``*``."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, length = value[6:].partition("/")
    first = span.split("-", 1)[0].strip()
    return (int(first) if first.isdigit() else None), (int(length) if length.strip().isdigit() else None)


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _discard(dest: Path) -> None:
    """Delete the partial file and its record (the record last: a partial without one is not resumed)."""
    partial_path(dest).unlink(missing_ok=True)
    _validators_path(dest).unlink(missing_ok=True)


def _forget_if_empty(dest: Path) -> None:
    if not _size(partial_path(dest)):
        _discard(dest)


def _copy_with_progress(source: IO[bytes], out: IO[bytes], done: int, total: int | None, label: str) -> None:
    """Copy ``source`` to ``out``; ``done`` bytes were there before (a resumed download).

    A terminal gets a bar with size, speed and time left; a log gets a line every 10%
    (every 256 MiB when the length is unknown) with the same figures.
    """
    resumed = f" (resuming at {human_size(done)})" if done else ""
    # read1: what has arrived (up to 1 MiB), so the partial file grows as the bytes come in
    read = getattr(source, "read1", source.read)
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task(f"downloading {label}{resumed}", total=total, completed=done)
            while chunk := read(_CHUNK):
                out.write(chunk)
                bar.advance(task, len(chunk))
        return
    logger.info("downloading %s: %s%s", label, human_size(total) if total else "size unknown", resumed)
    started, start_bytes = time.monotonic(), done
    step = max(total // 10, 1) if total else 256 << 20
    next_report = (done // step + 1) * step
    while chunk := read(_CHUNK):
        out.write(chunk)
        done += len(chunk)
        if done >= next_report:
            next_report = (done // step + 1) * step
            speed = (done - start_bytes) / max(time.monotonic() - started, 1e-6)
            logger.info("  %s: %s", label, progress_line(done, total, speed))


def progress_line(done: int, total: int | None, speed: float) -> str:
    """``40% (2.3 GB of 5.7 GB, 35.0 MB/s, 1 min 37 s left)``: how far a transfer is."""
    rate = f"{human_size(int(speed))}/s"
    if not total:
        return f"{human_size(done)}, {rate}"
    left = (total - done) / speed if speed > 0 else None
    eta = "" if left is None else f", {_duration(left)} left"
    return f"{100 * done // total}% ({human_size(done)} of {human_size(total)}, {rate}{eta})"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
