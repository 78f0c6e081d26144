"""A real SMTP server for tests (aiosmtpd): STARTTLS required, AUTH only over TLS, mail kept in memory.

`smtp_server(tmp_path)` generates a self-signed certificate for 127.0.0.1 (its file is the CA bundle the
client must trust), starts the server on a free loopback port and yields it; `server.messages` holds
every accepted mail as an `email.message.EmailMessage`. `server.stop()` / `server.start()` simulate an
outage on the same port; `server.quit_reply = "421 ..."` makes it answer QUIT with that (after accepting
the mail: a server shutting down between the message and the goodbye).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from tests.servers import free_port

USER, PASSWORD = "aiops", "s3cret-mail"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.server.lock:
            self.server.messages.append(msg)  # type: ignore[arg-type]
            self.server.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                          "tls": session.ssl is not None, "auth": session.authenticated})
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> Any:  # noqa: N802 - aiosmtpd's name
        return self.server.quit_reply or MISSING


class SMTPServer:
    def __init__(self, tmp: Path) -> None:
        self.cert, self.key = self_signed(tmp)
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.quit_reply: str | None = None  # e.g. "421 4.3.0 shutting down": QUIT answered with it
        self.controller: Controller | None = None

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
            and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, authenticator=self._auth, auth_require_tls=True,
                                     ready_timeout=10)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@contextmanager
def smtp_server(tmp: Path) -> Iterator[SMTPServer]:
    server = SMTPServer(tmp)
    server.start()
    try:
        yield server
    finally:
        server.stop()
