"""``virnucpro doctor``: can ``predict`` run here, and if not, what to do about it.

One screen of checks, each ``ok``, ``info``, ``warn``, ``fail`` or ``skip``:

* system: Python, torch (and the CUDA version it was built for), CPU cores, memory;
* GPUs: every CUDA device with compute capability, BF16 support and free
  memory, read through NVML (:mod:`virnucpro.pipeline.report.gpu_monitor`), so CUDA
  is never initialised here;
* caches: the three model caches (torch.hub for ESM-2, Hugging Face for
  DNABERT-S, ``$VIRNUCPRO_CACHE`` for classifiers and demo models), where
  they are, which variable set them, free disk space, and the models in them;
* network: whether each model source answers an HTTPS ``HEAD`` within
  :data:`NETWORK_TIMEOUT_S` seconds (:func:`virnucpro.net.probe_all`: all at once, in
  daemon threads, so a hanging DNS lookup costs one timeout, never more); skipped with ``offline``;
* optional: the ``plot`` extra (matplotlib);
* configuration: the three models ``predict`` would use with the same options,
  resolved exactly as ``predict`` resolves them but without downloading. A
  model that is neither cached nor downloadable is a ``fail``: the command
  then exits with :data:`~virnucpro.errors.EXIT_MODEL_UNAVAILABLE` and names
  the model and the fix.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from virnucpro import __version__, net
from virnucpro.errors import ModelNotAvailableError
from virnucpro.models import locations
from virnucpro.net import Probe
from virnucpro.sizes import human_size

logger = logging.getLogger(__name__)

NETWORK_TIMEOUT_S = net.PROBE_TIMEOUT_S
STATUSES = ("ok", "info", "warn", "fail", "skip")
_STYLE = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    section: str
    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class Configuration:
    """The model options of ``predict`` to check (same names and defaults)."""

    models: str = "published"
    model_type: int = 500
    model_path: str | None = None
    esm_model: str | None = None
    dnabert_model: str | None = None
    dnabert_revision: str | None = None


@dataclass
class Report:
    """Every check, in display order."""

    checks: list[Check] = field(default_factory=list)

    def add(self, section: str, name: str, status: str, detail: str) -> None:
        assert status in STATUSES, status
        self.checks.append(Check(section, name, status, detail))

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]


# --------------------------------------------------------------------------- network


def probe_all(urls: list[str], timeout: float = NETWORK_TIMEOUT_S) -> dict[str, Probe]:
    """Probe every URL at once (:func:`virnucpro.net.probe_all`); each gets ``timeout`` seconds."""
    return net.probe_all(urls, timeout, user_agent=f"virnucpro/{__version__} doctor")


# --------------------------------------------------------------------------- sections


def _system(report: Report) -> None:
    report.add("system", "virnucpro", "info", f"{__version__} ({Path(__file__).resolve().parent})")
    report.add("system", "python", "ok", f"{platform.python_version()} ({sys.executable})")
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch install is exactly what doctor is for
        report.add("system", "torch", "fail", f"cannot import torch: {exc}")
    else:
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
        report.add("system", "torch", "ok", f"{torch.__version__} ({built})")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    report.add("system", "CPU cores", "ok", f"{usable} usable of {os.cpu_count()}")
    total, available = _memory()
    if total:
        report.add("system", "memory", "ok", f"{_gib(available)} available of {_gib(total)}" if available else _gib(total))


def _memory() -> tuple[int | None, int | None]:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(info["MemTotal"].split()[0]) * 1024, int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None, None


def _gpus(report: Report) -> None:
    from virnucpro.pipeline.report import gpu_monitor

    gpus = gpu_monitor.visible_gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not gpus:
        note = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        report.add("gpu", "CUDA devices", "info", f"no CUDA devices{note}: predict runs on the CPU (slow for the "
                   "published 3B ESM-2)")
        return
    torch_cuda = None
    try:
        import torch

        torch_cuda = torch.version.cuda
    except Exception:  # noqa: BLE001 - reported in the system section
        pass
    for gpu in gpus:
        cc = f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}" if gpu.compute_capability else "unknown"
        sample = gpu_monitor.sample(gpu.ordinal)
        if sample and sample.memory_total and sample.memory_used is not None:
            memory = f"{_gib(sample.memory_total - sample.memory_used)} free of {_gib(sample.memory_total)}"
        else:
            memory = f"{_gib(gpu.memory_total)} total" if gpu.memory_total else "memory unknown"
        bf16 = "BF16 yes" if gpu.supports_bf16 else "BF16 no (FP32 by default)"
        report.add("gpu", f"cuda:{gpu.ordinal}", "ok", f"{gpu.name}, compute capability {cc}, {bf16}, {memory}")
    if torch_cuda is None:
        report.add("gpu", "torch", "warn", "torch is a CPU-only build: these GPUs will not be used; install a "
                   "CUDA build of torch (https://pytorch.org/get-started/locally/)")


def _caches(report: Report) -> None:
    from virnucpro.models.inventory import list_cached, list_partial_downloads

    dirs = (
        ("ESM-2 (torch.hub)", locations.esm_hub_dir(), "TORCH_HOME"),
        ("DNABERT-S (Hugging Face)", locations.hf_cache_dir(), "HF_HUB_CACHE" if os.environ.get("HF_HUB_CACHE") else "HF_HOME"),
        ("virnucpro", locations.cache_dir(), "VIRNUCPRO_CACHE"),
    )
    for label, path, var in dirs:
        source = f"${var}" if os.environ.get(var) else "default"
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        free = f", {_gib(shutil.disk_usage(existing).free)} free" if existing is not None else ""
        if path.is_dir():
            writable = "" if os.access(path, os.W_OK) else " (read-only: downloads will fail)"
            status = "ok" if not writable else "warn"
            report.add("caches", label, status, f"{path} [{source}]{free}{writable}")
        else:
            report.add("caches", label, "info", f"{path} [{source}] (not created yet){free}")
    try:
        cached = list_cached()
    except Exception as exc:  # noqa: BLE001 - an unreadable cache is reported, not fatal
        report.add("caches", "cached models", "warn", f"cannot list: {exc}")
        return
    if not cached:
        report.add("caches", "cached models", "info", "none")
    for model in cached:
        state = "" if model.complete else ", INCOMPLETE"
        report.add("caches", f"{model.kind}", "ok" if model.complete else "warn",
                   f"{model.name} ({human_size(model.size_bytes)}{state}) {model.path}")
    for partial in list_partial_downloads():
        of = f" of {human_size(partial.total)}" if partial.total else ""
        report.add("caches", "partial download", "info",
                   f"{partial.path} ({human_size(partial.size)}{of}): the next download of this model continues it")


def _optional(report: Report) -> None:
    try:
        import matplotlib
    except ImportError:
        report.add("optional", "matplotlib", "warn", "not installed: `virnucpro plot` needs it; "
                   "pip install 'virnucpro[plot]'")
    else:
        report.add("optional", "matplotlib", "ok", f"{matplotlib.__version__} (virnucpro plot)")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class _ModelSpec:
    kind: str
    label: str
    resolve: Callable[[], Path]
    url: str | None  # where predict would download it from; None for a local path
    download_args: str
    option: str


def _model_specs(config: Configuration) -> list[_ModelSpec]:
    from virnucpro.models import registry

    esm = config.esm_model or registry.DEFAULT_ESM_MODEL
    dnabert = config.dnabert_model or registry.DEFAULT_DNABERT_MODEL
    esm_named = registry.ESM_NAME.match(esm) is not None and not Path(esm).expanduser().is_file()
    dnabert_hub = registry.is_hub_repo_id(dnabert)
    endpoint = _hf_endpoint()
    revision = f" --dnabert-revision {config.dnabert_revision}" if config.dnabert_revision else ""
    return [
        _ModelSpec("esm", f"ESM-2 {esm}", lambda: registry.resolve_esm_model(esm, offline=True),
                   registry.esm_urls(esm)[0] if esm_named else None,
                   f"esm --esm-model {esm}", "--esm-model FILE"),
        _ModelSpec("dnabert", f"DNABERT-S {dnabert}" + (f"@{config.dnabert_revision}" if config.dnabert_revision else ""),
                   lambda: registry.resolve_dnabert_model(dnabert, config.dnabert_revision, offline=True),
                   f"{endpoint}/{dnabert}/resolve/{config.dnabert_revision or 'main'}/config.json" if dnabert_hub else None,
                   f"dnabert --dnabert-model {dnabert}{revision}", "--dnabert-model DIR"),
        _ModelSpec("classifier", f"classifier {config.model_path or f'{config.model_type}_model.pth'}",
                   lambda: registry.resolve_classifier(config.model_type, config.model_path, offline=True),
                   registry.classifier_url(config.model_type)
                   if config.model_path is None and config.model_type in registry.CLASSIFIER_MODEL_TYPES else None,
                   f"classifier --model-type {config.model_type}", "--model-path FILE"),
    ]


def _hf_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT.rstrip("/")
    except Exception:  # noqa: BLE001
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def source_urls(config: Configuration) -> list[str]:
    """The URLs the network section probes: each published model's download URL (defaults when local)."""
    if config.models == "demo":
        config = Configuration()
    urls = [spec.url for spec in _model_specs(config) if spec.url]
    defaults = [spec.url for spec in _model_specs(Configuration()) if spec.url]
    hosts = {net.host_of(u) for u in urls}
    return urls + [u for u in defaults if net.host_of(u) not in hosts]


def _configuration(report: Report, config: Configuration, probes: dict[str, Probe] | None, offline: bool) -> None:
    from virnucpro.models import registry

    section = "predict"
    if config.models == "demo":
        from virnucpro.models.demo import DEMO_VERSION, cached_demo_sets

        built = [d for v, d, complete in cached_demo_sets(registry.cache_dir()) if v == DEMO_VERSION and complete]
        detail = f"cached in {built[0]}" if built else f"built locally on first use in {registry.cache_dir()} (no network)"
        report.add(section, "demo models", "ok", detail)
        return
    no_download = registry.is_offline(offline)
    resolved: dict[str, Path] = {}
    for spec in _model_specs(config):
        try:
            resolved[spec.kind] = spec.resolve()
            report.add(section, spec.label, "ok", f"available: {resolved[spec.kind]}")
            continue
        except ModelNotAvailableError as exc:
            missing = str(exc)
        probe = probes.get(spec.url) if probes and spec.url else None
        if spec.url is None:
            report.add(section, spec.label, "fail", f"{missing}; give an existing local copy with {spec.option}")
        elif not no_download and probe is not None and probe.reachable:
            report.add(section, spec.label, "warn", f"not cached; predict will download it from {probe.host} "
                       "on first use")
        else:
            if no_download:
                why = "offline mode is on" + ("" if offline else " (VIRNUCPRO_OFFLINE/HF_HUB_OFFLINE)")
            elif probe is None:
                why = "the network was not checked"
            else:
                why = f"{probe.host} is {probe.detail}"
            report.add(section, spec.label, "fail",
                       f"not cached and {why}; run `virnucpro models download {spec.download_args}` where the "
                       f"network is reachable (and copy the cache here), or pass a local copy with {spec.option}")
    if len(resolved) == 3:
        _compatibility(report, section, resolved, config)


def _compatibility(report: Report, section: str, resolved: dict[str, Path], config: Configuration) -> None:
    """The same fit check ``predict`` makes: classifier input = DNABERT-S dim + ESM-2 dim."""
    from virnucpro.models.classifier import check_input_dim, load_classifier
    from virnucpro.pipeline.run.setup import dnabert_hidden_size, esm_embed_dim

    try:
        dnabert_dim = dnabert_hidden_size(resolved["dnabert"])
        esm_dim = esm_embed_dim(resolved["esm"])
        classifier = load_classifier(resolved["classifier"])
        check_input_dim(classifier, dnabert_dim, esm_dim)
    except ModelNotAvailableError as exc:
        report.add(section, "models fit together", "fail", str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreadable file is a failed check, not a crash
        report.add(section, "models fit together", "fail", f"cannot read the models: {type(exc).__name__}: {exc}")
    else:
        report.add(section, "models fit together", "ok",
                   f"DNABERT-S {dnabert_dim} + ESM-2 {esm_dim} = classifier input {classifier.input_dim}")


# --------------------------------------------------------------------------- run + print


def run_doctor(config: Configuration | None = None, offline: bool = False,
               timeout: float = NETWORK_TIMEOUT_S) -> Report:
    """Collect every check (network probes run in parallel with the local checks)."""
    config = config or Configuration()
    report = Report()
    urls = source_urls(config)
    probes: dict[str, Probe] | None = None
    probe_thread = None
    if not offline:
        holder: dict[str, dict[str, Probe]] = {}
        probe_thread = threading.Thread(target=lambda: holder.setdefault("probes", probe_all(urls, timeout)),
                                        name="doctor-network", daemon=True)
        probe_thread.start()
    _system(report)
    _gpus(report)
    _caches(report)
    _optional(report)
    if probe_thread is not None:
        probe_thread.join(timeout + 2.0)
        probes = holder.get("probes", {})
        for url in urls:
            probe = probes.get(url)
            if probe is None:
                probe = probes[url] = Probe(net.host_of(url), url, False, "no answer")
            report.add("network", probe.host, "ok" if probe.reachable else "warn", probe.detail)
    else:
        report.add("network", "model sources", "skip", "not checked (--offline)")
    _configuration(report, config, probes, offline)
    return report


def print_report(report: Report, stream: TextIO | None = None) -> None:
    """A rich table on a terminal; plain ``status  check  detail`` lines otherwise."""
    out = stream if stream is not None else sys.stdout
    if getattr(out, "isatty", lambda: False)():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="virnucpro doctor", show_lines=False, title_justify="left")
        table.add_column("section", style="bold")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        previous = None
        for check in report.checks:
            if previous is not None and check.section != previous:
                table.add_section()
            table.add_row(check.section if check.section != previous else "", escape(check.name),
                          f"[{_STYLE[check.status]}]{check.status}[/]", escape(check.detail))
            previous = check.section
        Console(file=out).print(table)
        return
    width = max(len(c.name) for c in report.checks)
    previous = None
    for check in report.checks:
        if check.section != previous:
            out.write(f"{'' if previous is None else chr(10)}[{check.section}]\n")
            previous = check.section
        out.write(f"  {check.status:<4}  {check.name:<{width}}  {check.detail}\n")
    out.flush()


def _gib(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.1f} GiB"
