"""The processes a run starts: its own MongoDB stand-in and N orgsvc
instances on free loopback ports, all on the same master database.

Everything started here is stopped by `Cluster.shutdown` / `StandIn.stop`,
which the main program calls on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Same on every instance, so a token from one is accepted by all (>= 32 bytes).
# Signs access tokens with the stored key set (EdDSA), shared by every
# instance on the store.
KEY_ENCRYPTION_SECRET = "cluster-test-key-encryption-secret-0123456789"

#: Seconds after which another instance takes over an unfinished lifecycle
#: operation (today: `reconcile_stale_after_secs`; with the lease fix:
#: `lease_timeout_secs`, time since the last renewal).
TAKEOVER_SECS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandIn:
    """`scripts/mongo-standin` with a state directory of its own (own pid file)."""

    def __init__(self, root: Path, state_dir: Path):
        self.script = root / "scripts" / "mongo-standin"
        self.env = {**os.environ, "MONGO_STANDIN_STATE": str(state_dir)}
        self.state_dir = state_dir
        self.uri = ""

    def start(self) -> str:
        out = subprocess.run([str(self.script), "start"], env=self.env, check=True, capture_output=True, text=True, timeout=300)
        self.uri = out.stdout.strip().splitlines()[-1]
        return self.uri

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop"], env=self.env, capture_output=True, timeout=60)


@dataclass
class Instance:
    """One orgsvc process; restartable on the same port."""

    index: int
    binary: Path
    port: int
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    stopped: bool = False  # SIGSTOPped
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"instance-{self.index}.log"

    def start(self, wait: float = 30.0) -> None:
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"\n==== start #{self.starts} at {time.strftime('%H:%M:%S')} (db {self.env.get('ORGSVC__MONGODB__MASTER_DB')})\n")
            log.flush()
            self.proc = subprocess.Popen([str(self.binary)], env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.stopped = False
        self.wait_ready(wait)

    def wait_ready(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"instance {self.index} exited with {self.proc.returncode}; log: {self.log_path}")
            if health(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"instance {self.index} not ready after {wait:.0f} s; log: {self.log_path}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.stopped = False

    def pause(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped = True

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def health(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health/ready")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def instance_env(uri: str, master_db: str, port: int) -> dict[str, str]:
    """The settings every instance gets (environment variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGSVC")}
    env.update(
        {
            "ORGSVC__PROFILE": "development",
            "ORGSVC__STORE__KIND": "mongodb",
            "ORGSVC__MONGODB__URI": uri,
            "ORGSVC__MONGODB__MASTER_DB": master_db,
            "ORGSVC__SERVER__HOST": "127.0.0.1",
            "ORGSVC__SERVER__PORT": str(port),
            "ORGSVC__SERVER__WORKERS": "2",
            "ORGSVC__AUTH__KEY_ENCRYPTION_SECRET": KEY_ENCRYPTION_SECRET,
            "ORGSVC__AUTH__ACCESS_TOKEN_TTL": "86400",
            # Cheap hashing: argon2 needs at least 8 KiB per lane.
            "ORGSVC__AUTH__ARGON2__MEMORY_KIB": "64",
            "ORGSVC__AUTH__ARGON2__ITERATIONS": "1",
            "ORGSVC__AUTH__ARGON2__PARALLELISM": "1",
            "ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE": "1000000",
            "ORGSVC__SECURITY__LOGIN_RATE_BURST": "1000000",
            "ORGSVC__SECURITY__LOGIN_MAX_FAILURES": "1000000",
            "ORGSVC__MONGODB__RECONCILE_INTERVAL_SECS": "1",
            # Today's key, and the lease key being introduced: takeover after 2 s.
            "ORGSVC__MONGODB__RECONCILE_STALE_AFTER_SECS": str(TAKEOVER_SECS),
            "ORGSVC__MONGODB__LEASE_TIMEOUT_SECS": str(TAKEOVER_SECS),
            "ORGSVC__LOG__LEVEL": "info",
            "ORGSVC__LOG__FORMAT": "text",
            "NO_COLOR": "1",
        }
    )
    return env


class Cluster:
    """N instances of `binary` on one stand-in and one master database.
    `proxied` instances reach the stand-in through their own WireProxy
    (given as {index: proxy port})."""

    def __init__(self, binary: Path, count: int, log_dir: Path):
        self.binary = binary
        self.log_dir = log_dir
        self.instances = [Instance(i, binary, free_port(), log_dir) for i in range(count)]

    @property
    def ports(self) -> list[int]:
        return [inst.port for inst in self.instances]

    def start(self, uri: str, master_db: str, proxied: dict[int, int] | None = None) -> None:
        """(Re)starts every instance on `master_db`."""
        self.shutdown()
        for inst in self.instances:
            inst_uri = uri
            if proxied and inst.index in proxied:
                inst_uri = f"mongodb://127.0.0.1:{proxied[inst.index]}/?directConnection=true"
            inst.env = instance_env(inst_uri, master_db, inst.port)
        # One first, so the migrations run once, then the others.
        self.instances[0].start()
        for inst in self.instances[1:]:
            inst.start()

    def resume_all(self) -> None:
        for inst in self.instances:
            if inst.stopped:
                inst.resume()

    def shutdown(self) -> None:
        for inst in self.instances:
            inst.terminate()
