"""TLS for an agent off loopback: its own self-signed certificate, pinned by the workstation through its fingerprint.

At the first start on a non-loopback address the agent makes an ECDSA P-256 key and a self-signed certificate
(both mode 0600) beside its token file, and reuses them after. ``edgekit agent token`` prints the token and the
certificate's SHA-256 fingerprint; the workstation keeps both in its token file, and ``AgentClient`` accepts
exactly that certificate (no certificate authority is involved, so no name has to match). A user's own
certificate (``--tls-cert/--tls-key``) works the same way, or through the system's trust store when it is signed.

The key is made with ``cryptography`` (the agent extra); the client side needs only the standard ``ssl`` module.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .auth import AgentSetupError

KEY_NAME = "agent-tls.key"
CERT_NAME = "agent-tls.crt"
FINGERPRINT_LINE = "tls-fingerprint:"
VALID_DAYS = 3650
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    fingerprint: str  # SHA256:AB:CD:… of the certificate the agent presents


def format_fingerprint(digest: bytes) -> str:
    return "SHA256:" + ":".join(f"{b:02X}" for b in digest)


def parse_fingerprint(text: str) -> bytes:
    """The 32 bytes of a SHA-256 fingerprint written as ``SHA256:AB:CD:…``, ``sha256 Fingerprint=AB:…`` (openssl)
    or 64 hex digits; an ``InputError`` otherwise."""
    cleaned = re.sub(r"^(sha-?256)\s*(fingerprint)?\s*[:=]?\s*", "", text.strip(), flags=re.I).replace(":", "")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", cleaned):
        raise InputError(f"{text.strip()[:80]!r} is not a SHA-256 certificate fingerprint",
                         hint="copy the tls-fingerprint line that `edgekit agent token` prints on the device")
    return bytes.fromhex(cleaned)


def cert_fingerprint(cert_pem: bytes) -> str:
    """The fingerprint of the first certificate in a PEM file (the one a server presents)."""
    found = _PEM_CERT.search(cert_pem)
    if found is None:
        raise InputError("the certificate file holds no PEM certificate", hint="pass a PEM file to --tls-cert")
    return format_fingerprint(hashlib.sha256(ssl.PEM_cert_to_DER_cert(found.group().decode())).digest())


def _names(host: str) -> list:
    from cryptography import x509

    names = {socket.gethostname(), f"{socket.gethostname()}.local", "localhost"}
    addresses = {"127.0.0.1", "::1"}
    try:
        if not ipaddress.ip_address(host).is_unspecified:
            addresses.add(host)
    except ValueError:
        names.add(host)
    return ([x509.DNSName(n) for n in sorted(names) if n] +
            [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)])


def make_self_signed(folder: Path, host: str) -> TlsFiles:
    """Write a fresh key and self-signed certificate into ``folder`` (0600 each, never over existing files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edgekit agent on {socket.gethostname()}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    for path, data in ((folder / KEY_NAME, key_pem), (folder / CERT_NAME, cert_pem)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return TlsFiles(folder / CERT_NAME, folder / KEY_NAME, cert_fingerprint(cert_pem))


def load_or_create(folder: Path, host: str) -> TlsFiles:
    """The agent's own key and certificate in ``folder``, made on first use."""
    key, cert = folder / KEY_NAME, folder / CERT_NAME
    if not key.exists() and not cert.exists():
        return make_self_signed(folder, host)
    if not (key.exists() and cert.exists()):
        missing = cert if key.exists() else key
        raise AgentSetupError(f"{missing} is missing but its pair is there",
                              hint=f"delete {key} and {cert}: the agent makes a new pair (and a new fingerprint for "
                                   "the workstations) on its next start")
    return own_files(cert, key)


def own_files(cert: Path, key: Path) -> TlsFiles:
    """A given certificate and key (``--tls-cert/--tls-key``), checked to be readable and the key private."""
    for path in (cert, key):
        if not path.is_file():
            raise InputError(f"{path} is not a file", hint="pass the PEM files of the certificate and its key")
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        raise AgentSetupError(f"the TLS key {key} is readable by others (mode {mode:o})", hint=f"chmod 600 {key}")
    return TlsFiles(cert, key, cert_fingerprint(cert.read_bytes()))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls_options(cert: Path | None, key: Path | None, insecure_http: bool) -> None:
    """Refuse contradicting TLS options before anything is bound or created."""
    if (cert is None) != (key is None):
        raise InputError("--tls-cert and --tls-key go together", hint="pass both PEM files, or neither (the agent "
                                                                      "then makes its own certificate)")
    if cert is not None and insecure_http:
        raise InputError("--insecure-http contradicts --tls-cert", hint="drop one of them")


def server_tls(host: str, *, cert: Path | None, key: Path | None, insecure_http: bool, force_tls: bool,
               folder: Path) -> TlsFiles | None:
    """What the agent serves: the given certificate, else plain HTTP on loopback (or with ``insecure_http``), else
    its own certificate in ``folder`` (made on first use)."""
    check_tls_options(cert, key, insecure_http)
    if cert is not None and key is not None:
        return own_files(cert, key)
    if insecure_http or (is_loopback(host) and not force_tls):
        return None
    return load_or_create(folder, host)


def fingerprint_of_folder(folder: Path) -> str | None:
    """The fingerprint of the agent's certificate in ``folder``, if it made one."""
    cert = folder / CERT_NAME
    return cert_fingerprint(cert.read_bytes()) if cert.is_file() else None


# -- the workstation side ----------------------------------------------------------------------------------------

class FingerprintMismatch(ssl.SSLError):
    """The server presented another certificate than the pinned one."""


class _PinnedSocket(ssl.SSLSocket):
    pinned: bytes = b""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        presented = hashlib.sha256(self.getpeercert(binary_form=True) or b"").digest()
        if presented != self.pinned:
            raise FingerprintMismatch(f"the agent's certificate has fingerprint {format_fingerprint(presented)}, "
                                      f"not the pinned {format_fingerprint(self.pinned)}")


def pinned_context(fingerprint: str) -> ssl.SSLContext:
    """A client context that accepts exactly the certificate with ``fingerprint``, checked during the handshake,
    before any request (or token) is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pin replaces the CA: a self-signed certificate is the point
    context.sslsocket_class = type("PinnedSocket", (_PinnedSocket,), {"pinned": parse_fingerprint(fingerprint)})
    return context


def token_file_text(token_file: Path, cert: Path | None = None) -> str:
    """What a workstation's token file holds: the token, then ``tls-fingerprint: SHA256:…`` when the agent has a
    certificate (its own, made at its first start off loopback, or ``cert``)."""
    from .auth import load_or_create_token

    token = load_or_create_token(token_file)
    fingerprint = cert_fingerprint(cert.read_bytes()) if cert else fingerprint_of_folder(token_file.parent)
    return f"{token}\n" + (f"{FINGERPRINT_LINE} {fingerprint}\n" if fingerprint else "")
