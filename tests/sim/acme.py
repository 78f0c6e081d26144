"""A local ACME CA (Let's Encrypt's own test server, `pebble`) and certbot lineages on stand-in hosts.

Nothing here is simulated: `pebble` (Debian package `pebble`) is the ACME server Let's Encrypt tests
certbot against, run as a real process on free loopback ports with a throw-away TLS certificate, and
`certbot` (Debian package `certbot`) is the real client. `PEBBLE_VA_ALWAYS_VALID=1` makes pebble accept
every challenge without connecting back (the stand-in's domains resolve nowhere), so issuance and
renewal are the real ACME exchange minus the validation round-trip.

`issue(root, domain)` creates a certbot lineage inside a stand-in host's sandbox (`<root>/etc/letsencrypt`,
work and logs dirs beside it), as `certbot certonly --standalone` would on the host. `age(root, domain,
days_left)` makes it the lineage of a certificate about to expire: its current certificate is re-signed
by pebble's own intermediate (pebble publishes the key on its management port, for tests) with the same
key and names and `days_left` days of validity, as if it had been issued 90 - days_left days ago.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


class AcmeUnavailable(RuntimeError):
    """pebble or certbot is not installed (apt-get install pebble certbot)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certbot_dirs(root: Path) -> list[str]:
    """The certbot directories of a stand-in host (on a real host: /etc/letsencrypt and its siblings)."""
    return [f"--config-dir={root / 'etc/letsencrypt'}", f"--work-dir={root / 'var/lib/letsencrypt'}",
            f"--logs-dir={root / 'var/log/letsencrypt'}"]


class Pebble:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port, self.mgmt_port = _free_port(), _free_port()
        self.ca_file = str(workdir / "pebble-tls.pem")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        from tests.sim.proxmox import _self_signed  # the same throw-away certificate maker

        cert, key = _self_signed(self.workdir)
        shutil.copy(cert, self.ca_file)
        cfg = self.workdir / "pebble.json"
        cfg.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(cert), "privateKey": str(key), "httpPort": 5002, "tlsPort": 5001,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        env = {**os.environ, "PEBBLE_VA_ALWAYS_VALID": "1", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        log = open(self.workdir / "pebble.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(["pebble", "-config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self._get("/dir", mgmt=False)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("pebble did not start: " + (self.workdir / "pebble.log").read_text()[-1000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def _get(self, path: str, mgmt: bool = True) -> bytes:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        port = self.mgmt_port if mgmt else self.port
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=5) as resp:
            return bytes(resp.read())

    def issue(self, root: Path, domain: str) -> None:
        """A certbot lineage for `domain` inside the stand-in host at `root` (the real certbot and ACME)."""
        env = {**os.environ, "REQUESTS_CA_BUNDLE": self.ca_file}
        out = subprocess.run(["certbot", "certonly", "--standalone", f"--http-01-port={_free_port()}", "-d", domain,
                              f"--server={self.directory}", "--non-interactive", "--agree-tos",
                              "-m", f"ops@{domain}", *certbot_dirs(root)],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"certbot certonly failed: {out.stderr[-1500:]}")

    def age(self, root: Path, domain: str, days_left: float) -> None:
        """Re-sign the lineage's current certificate by pebble's intermediate to expire in `days_left`."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        live = root / "etc/letsencrypt/live" / domain
        current = (live / "cert.pem").resolve()
        old = x509.load_pem_x509_certificate(current.read_bytes())
        issuer = x509.load_pem_x509_certificate(self._get("/intermediates/0"))
        issuer_key = serialization.load_pem_private_key(self._get("/intermediate-keys/0"), None)
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(issuer.subject)
                   .public_key(old.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=90 - days_left))
                   .not_valid_after(now + dt.timedelta(days=days_left)))
        for ext in old.extensions:
            if ext.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
                builder = builder.add_extension(ext.value, ext.critical)
        cert = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
        current.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        full = (live / "fullchain.pem").resolve()
        full.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + (live / "chain.pem").read_bytes())


@contextlib.contextmanager
def pebble() -> Iterator[Pebble]:
    if shutil.which("pebble") is None or shutil.which("certbot") is None:
        raise AcmeUnavailable("pebble and certbot are not installed (apt-get install pebble certbot)")
    with tempfile.TemporaryDirectory(prefix="aiops-pebble-") as tmp:
        server = Pebble(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()
