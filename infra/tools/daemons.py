"""Real Prometheus, Alertmanager and moto servers on loopback, started and stopped by the caller, bounded in time.

One launcher for every test, drill and gate that runs the real daemons (Debian `prometheus` 2.42 and
`prometheus-alertmanager` 0.25, the versions promtool/amtool come from; PyPI `moto[server]`): each listens on
127.0.0.1 on a free port, is ready when its readiness endpoint answers, and is terminated (then killed) on exit.
A daemon that exits before it is ready raises with its own stderr, so a refused config names the problem.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class DaemonError(RuntimeError):
    """A daemon is missing, refused its configuration or did not become ready in time."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the daemon binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Daemon:
    """A running daemon: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DaemonError(f"{name} is not installed: `make tools` installs the Debian packages prometheus and "
                          "prometheus-alertmanager")
    return path


@contextmanager
def _running(argv: Sequence[str], url: str, ready_path: str, workdir: Path,
             timeout_s: float = READY_TIMEOUT_S) -> Iterator[Daemon]:
    log = (workdir / "daemon.log").open("wb")
    proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=workdir)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise DaemonError(f"{argv[0]} exited with {proc.returncode} before it was ready:\n"
                                  f"{(workdir / 'daemon.log').read_text(errors='replace')[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}{ready_path}", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise DaemonError(f"{argv[0]} not ready at {url}{ready_path} within {timeout_s:.0f} s") \
                        from None
                time.sleep(0.05)
        yield Daemon(url=url, process=proc, workdir=workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        log.close()


@contextmanager
def _workdir(workdir: Path | None, prefix: str) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@contextmanager
def prometheus(config_file: Path, *, tsdb: Path | None = None, workdir: Path | None = None,
               extra_args: Sequence[str] = ()) -> Iterator[Daemon]:
    """Prometheus with `config_file` (rule files resolved relative to it), its TSDB in `tsdb` (e.g. blocks
    backfilled by `promtool tsdb create-blocks-from`), the lifecycle API on (reload by POST /-/reload)."""
    with _workdir(workdir, "prometheus-") as wd:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [_binary(PROMETHEUS), f"--config.file={config_file}",
                f"--storage.tsdb.path={tsdb or wd / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={url}", "--web.enable-lifecycle", "--web.enable-admin-api",
                # Backfilled blocks may be older than the default 15 days; the budget rules read 30 days.
                "--storage.tsdb.retention.time=90d", *extra_args]
        with _running(argv, url, "/-/ready", wd) as daemon:
            yield daemon


@contextmanager
def alertmanager(config_file: Path, *, workdir: Path | None = None,
                 extra_args: Sequence[str] = ()) -> Iterator[Daemon]:
    """Alertmanager 0.25 alone (clustering off), its API at `url` + /api/v2."""
    with _workdir(workdir, "alertmanager-") as wd:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [_binary(ALERTMANAGER), f"--config.file={config_file}", f"--storage.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url={url}",
                "--cluster.listen-address=", *extra_args]
        with _running(argv, url, "/-/ready", wd) as daemon:
            yield daemon


@contextmanager
def moto_server(*, workdir: Path | None = None) -> Iterator[Daemon]:
    """A moto server (all services) in its own process; point boto3 at `url` with any credentials."""
    with _workdir(workdir, "moto-") as wd:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        binary = Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            raise DaemonError(f"{binary} is missing: moto[server] is in the dev extra (`make venv`)")
        env_argv = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
        with _running(env_argv, url, "/moto-api/", wd) as daemon:
            yield daemon


def aws_env(moto_url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment for a process whose boto3 must talk to `moto_url` only (never to AWS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=moto_url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=region, AWS_REGION=region)
    return env
