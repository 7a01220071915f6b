"""A private single-node SLURM cluster on localhost, for tests (root only).

Started in a temporary directory, with its own munge key and socket, its own
MariaDB data directory, ports picked free at start, and every daemon run in
the foreground as a child of this process, so it is stopped by that child's
pid (never by name):

    munged -> mariadbd -> slurmdbd -> (sacctmgr add cluster) -> slurmctld -> slurmd

Accounting (slurmdbd + MariaDB) is what makes ``sacct`` answer, which the
Snakemake SLURM executor plugin polls for job states.

Clients reach it through the environment in :attr:`PrivateSlurm.env`
(``SLURM_CONF`` pointing at the generated ``slurm.conf``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sbatch", "sacct", "srun")
CLUSTER = "vnptest"
DB_USER = "slurm"
DB_NAME = "slurm_acct_db"


def missing_reason() -> str | None:
    """Why a private cluster cannot start here, or None when it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (slurmd runs jobs as their user; munged and slurmd want root here)"
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if missing:
        return (f"SLURM packages not installed ({', '.join(missing)} missing); "
                "apt-get install slurm-wlm munge mariadb-server slurmdbd")
    return None


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


class PrivateSlurm:
    """Start, use and stop a one-node SLURM cluster with accounting in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.memory_mb = max(512, _memory_mb() - 1024)
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.munge_socket = root / "munge" / "munge.socket"
        self.db_socket = root / "mysql" / "mysqld.sock"
        self.ports = {name: _free_port() for name in ("ctld", "slurmd", "dbd", "db")}
        self.conf = root / "etc" / "slurm.conf"
        self.bin = root / "bin"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        self.db_password = secrets.token_hex(8)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bring every daemon up; raises RuntimeError (with the daemon's log tail) when one fails."""
        for sub in ("munge", "mysql", "etc", "state", "spool", "log", "db"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.root / sub, 0o700)
        os.chmod(self.root, 0o755)
        self._write_srun_shim()
        try:
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._spawn("slurmdbd", [_which("slurmdbd"), "-D"], self.root / "log" / "slurmdbd.log")
            self._wait_for(lambda: self._port_open(self.ports["dbd"]), "slurmdbd", self.root / "log" / "slurmdbd.log")
            self._run([_which("sacctmgr"), "-i", "add", "cluster", CLUSTER])
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i"], self.root / "log" / "slurmctld.log")
            self._wait_for(lambda: self._port_open(self.ports["ctld"]), "slurmctld", self.root / "log" / "slurmctld.log")
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node], self.root / "log" / "slurmd.log")
            self._wait_for(self._node_idle, "slurmd", self.root / "log" / "slurmd.log", timeout=60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Cancel jobs, then stop every daemon this object started, newest first, by its pid."""
        if any(name == "slurmctld" for name, _ in self.procs):
            with contextlib.suppress(Exception):
                subprocess.run([_which("scancel"), "--full", "-u", "root"], env=self.env, timeout=10,
                               capture_output=True)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.queue():
                    time.sleep(0.5)
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.procs.clear()

    # ------------------------------------------------------------------ daemons

    def _spawn(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        handle = open(self.root / "log" / f"{name}.stdout", "ab")
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env or self.env, start_new_session=True, cwd=self.root)
        handle.close()
        self.procs.append((name, proc))

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return result

    def _wait_for(self, ready, name: str, log: Path, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        proc = next(p for n, p in self.procs if n == name) if any(n == name for n, _ in self.procs) else None
        while time.monotonic() < deadline:
            if ready():
                return
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.25)
        tail = ""
        for path in (log, self.root / "log" / f"{name}.stdout"):
            if path.exists():
                tail += path.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{name} did not come up: {tail.strip()}")

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        self._spawn("munged", [
            _which("munged"), "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--log-file={self.root / 'log' / 'munged.log'}", f"--pid-file={self.root / 'munge' / 'munged.pid'}",
            f"--seed-file={self.root / 'munge' / 'munged.seed'}",
        ], self.root / "log" / "munged.log")
        self._wait_for(self.munge_socket.exists, "munged", self.root / "log" / "munged.log")

    def _start_mariadb(self) -> None:
        datadir = self.root / "db"
        self._run([_which("mariadb-install-db"), f"--datadir={datadir}", "--user=root",
                   "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"], timeout=120)
        self._spawn("mariadbd", [
            _which("mariadbd"), "--no-defaults", f"--datadir={datadir}", f"--socket={self.db_socket}",
            f"--port={self.ports['db']}", "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve",
            f"--pid-file={self.root / 'mysql' / 'mariadbd.pid'}", f"--log-error={self.root / 'log' / 'mariadb.log'}",
            "--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900", "--skip-log-bin",
        ], self.root / "log" / "mariadb.log")
        self._wait_for(lambda: self._port_open(self.ports["db"]), "mariadbd", self.root / "log" / "mariadb.log", 60)
        sql = (
            f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{self.db_password}';"
            f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';"
            f"CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY '{self.db_password}';"
            f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost';FLUSH PRIVILEGES;"
        )
        self._run([shutil.which("mariadb") or "mysql", "--no-defaults", f"--socket={self.db_socket}", "-uroot", "-e", sql])

    def _write_srun_shim(self) -> None:
        """An ``srun`` first on PATH that puts ``SLURM_CONF`` back.

        The Snakemake SLURM jobstep plugin runs each job through a nested ``srun``
        and removes every ``SLURM_*`` variable but a few from its environment,
        ``SLURM_CONF`` included. A real cluster does not need it (its config is in
        /etc/slurm or served configless); this private one lives in a temporary
        directory, which only SLURM_CONF names.
        """
        self.bin.mkdir(parents=True, exist_ok=True)
        shim = self.bin / "srun"
        shim.write_text(f"#!/bin/sh\nSLURM_CONF={self.conf}\nexport SLURM_CONF\nexec {_which('srun')} \"$@\"\n")
        os.chmod(shim, 0o755)

    def _write_configs(self) -> None:
        root, ports = self.root, self.ports
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        self.conf.write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={ports['ctld']}\nSlurmdPort={ports['slurmd']}\n{auth}CredType=cred/munge\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={root / 'state'}\nSlurmdSpoolDir={root / 'spool'}\n"
            f"SlurmctldPidFile={root / 'state' / 'slurmctld.pid'}\nSlurmdPidFile={root / 'spool' / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}\nSlurmdLogFile={root / 'log' / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
            "ReturnToService=2\nSchedulerType=sched/backfill\nMailProg=/bin/true\n"
            "SlurmctldTimeout=30\nSlurmdTimeout=30\nInactiveLimit=0\nMinJobAge=300\nKillWait=5\nWaitTime=0\n"
            "JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n"
            "AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={ports['dbd']}\nAccountingStoragePass={self.munge_socket}\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN\n"
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO\n",
            encoding="ascii",
        )
        dbd_conf = self.conf.with_name("slurmdbd.conf")
        dbd_conf.write_text(
            f"{auth}DbdHost={self.node}\nDbdAddr=127.0.0.1\nDbdPort={ports['dbd']}\nSlurmUser=root\n"
            f"PidFile={root / 'state' / 'slurmdbd.pid'}\nLogFile={root / 'log' / 'slurmdbd.log'}\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={ports['db']}\nStorageUser={DB_USER}\nStoragePass={self.db_password}\nStorageLoc={DB_NAME}\n",
            encoding="ascii",
        )
        os.chmod(dbd_conf, 0o600)

    # ------------------------------------------------------------------ queries

    def _node_idle(self) -> bool:
        result = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%t"], env=self.env, capture_output=True,
                                text=True, timeout=10)
        return result.returncode == 0 and result.stdout.strip() in ("idle", "mix", "alloc")

    def queue(self) -> list[str]:
        """Job ids still in the queue."""
        result = subprocess.run([_which("squeue"), "-h", "-o", "%i"], env=self.env, capture_output=True,
                                text=True, timeout=10)
        return result.stdout.split() if result.returncode == 0 else []

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the queue is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.queue():
                return True
            time.sleep(1)
        return False

    def sacct_states(self, job_ids: list[str]) -> dict[str, str]:
        """``JobID -> State`` from accounting (``sacct``), array tasks included."""
        result = self._run([_which("sacct"), "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)])
        return dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)
