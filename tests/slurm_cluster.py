"""A real Slurm cluster on this host for the tests: munged, slurmctld and two slurmd daemons
posing as nodes n1 and n2 (both at 127.0.0.1, each on its own port), configured in a private
directory, started in seconds and stopped by PID. Needs root and Debian's munge, slurmctld,
slurmd and slurm-client packages (`make cluster-deps`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch")


def available() -> str | None:
    """None when a cluster can start here, else why not."""
    missing = [name for name in PROGRAMS if shutil.which(name, path=_sbin_path()) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing): run `make cluster-deps`"
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root"
    return None


def _sbin_path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _free_ports(n: int) -> list[int]:
    """n consecutive free ports (slurmd ports of a node range must be consecutive)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return list(range(base, base + n))
        except OSError:
            continue
    raise RuntimeError("no run of free ports found")


class SlurmCluster:
    def __init__(self):
        # Not under pytest's 0700 tmp folder: munged runs as the munge user and must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="ganpipe-slurm-"))
        self.root.chmod(0o755)
        self.conf = self.root / "slurm.conf"
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": _sbin_path()}

    def start(self) -> None:
        ctld_port, n1_port, n2_port = _free_ports(3)
        munge = self.root / "munge"
        munge.mkdir()
        shutil.chown(munge, "munge", "munge")
        socket_path = munge / "munge.socket"
        self._daemon(
            ["munged", "--foreground", f"--socket={socket_path}", f"--pid-file={munge}/munged.pid",
             f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"],
            user="munge",
        )  # fmt: skip
        self._wait(socket_path.exists, "munged did not create its socket", munge / "munged.log")
        for sub in ("state", "spool/n1", "spool/n2"):
            (self.root / sub).mkdir(parents=True)
        self.conf.write_text(
            CONFIG.format(
                host=socket.gethostname().split(".")[0],
                root=self.root,
                socket=socket_path,
                ctld_port=ctld_port,
                n1_port=n1_port,
                n2_port=n2_port,
                cpus=os.cpu_count() or 1,
            )
        )
        self._daemon(["slurmctld", "-D", "-f", str(self.conf)])
        for node in ("n1", "n2"):
            self._daemon(["slurmd", "-D", "-N", node, "-f", str(self.conf)])
        self._wait(self._nodes_idle, "the nodes did not come up", self.root / "slurmctld.log")

    def _daemon(self, command: list[str], user: str | None = None) -> None:
        log = (self.root / f"{command[0]}-{len(self.processes)}.out").open("w")
        proc = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, user=user, group=user
        )
        self.processes.append(proc)

    def _nodes_idle(self) -> bool:
        done = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
        return states.get("n1") == "idle" and states.get("n2") == "idle"

    def _wait(self, ready, message: str, log: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.is_file() else ""
                self.stop()
                raise RuntimeError(f"{message} (exited: {dead})\n{tail}")
            time.sleep(0.3)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...)."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def wait_for(self, job_id: str, states: set[str], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (info := self.job(job_id))["JobState"] not in states:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {info['JobState']} after {timeout} s")
            time.sleep(0.5)
        return info

    def stop(self) -> None:
        """Stop what this harness started, by PID (slurmd first, munged last)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()


CONFIG = """\
ClusterName=ganpipe-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket},cred_expire=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
JobRequeue=1
NodeName=n[1-2] NodeHostname={host} NodeAddr=127.0.0.1 Port={n1_port}-{n2_port} CPUs={cpus}
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
"""
