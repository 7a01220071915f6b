"""Everything that touches the network: host-name lookups with a deadline, HTTPS probes, downloads.

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
import logging
import os
import socket
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


# --------------------------------------------------------------------------- one file over HTTPS, atomically


def download_file(
    url: str,
    dest: Path,
    *,
    label: str | None = None,
    validate: Callable[[Path], None] | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` through a temporary file renamed into place.

    Concurrent callers for the same ``dest`` wait on a lock file and the second
    finds the file already there. A download that fails leaves nothing behind.

    Args:
        url: HTTP(S) URL.
        dest: final path.
        label: name shown in progress messages.
        validate: called with the temporary file before the rename; raises to reject it.
        timeout: seconds for the host-name lookup, the connection and each read.

    Raises:
        OSError: the host is unreachable, the server answered with an error, or the transfer broke.
    """
    from filelock import FileLock

    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():
            return dest
        resolve_host(url, timeout)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "virnucpro"})
            with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                _copy_with_progress(response, out, total, label or dest.name)
            if validate is not None:
                validate(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    logger.info("downloaded %s -> %s", url, dest)
    return dest


def _copy_with_progress(source: IO[bytes], out: IO[bytes], total: int, label: str) -> None:
    if sys.stderr.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
            task = bar.add_task(f"downloading {label}", total=total or None)
            while chunk := source.read(_CHUNK):
                out.write(chunk)
                bar.advance(task, len(chunk))
        return
    logger.info("downloading %s (%s)", label, human_size(total) if total else "size unknown")
    done, next_report = 0, 0.1
    while chunk := source.read(_CHUNK):
        out.write(chunk)
        done += len(chunk)
        if total and done / total >= next_report:
            logger.info("  %s: %d%%", label, int(100 * done / total))
            next_report += 0.1
