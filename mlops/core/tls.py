"""A local certificate authority and server certificates for TLS on this machine.

``mlops store start --tls`` uses it for the embedded store's S3 endpoint; the
same functions make the certificates of the TLS tests. Keys are ECDSA P-256,
written with mode 0600 (created so, never widened); certificates are PEM.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LocalCA",
    "ServerCertificate",
    "create_ca",
    "issue_server_certificate",
    "load_or_create",
]

CA_DAYS = 3650
SERVER_DAYS = 397  # what public CAs may issue at most; renewed when fewer than 30 days remain
_RENEW_BEFORE = _dt.timedelta(days=30)


@dataclass(frozen=True)
class LocalCA:
    """A CA's files.

    Attributes:
        cert: The CA certificate (PEM): what clients trust (``MLOPS_S3_CA_BUNDLE``).
        key: Its private key (PEM, mode 0600).
    """

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate and key, issued by a :class:`LocalCA`.

    Attributes:
        cert: The certificate (PEM).
        key: Its private key (PEM, mode 0600).
        ca: The issuing CA.
    """

    cert: Path
    key: Path
    ca: LocalCA


def _write_private(path: Path, data: bytes) -> None:
    """Writes a key: created with 0600, so it is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(folder: Path, common_name: str = "kfp-mlops local CA") -> LocalCA:
    """Creates a self-signed CA (``ca.pem``, ``ca.key``) in ``folder``.

    Returns:
        The CA's files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = Path(folder)
    ca = LocalCA(folder / "ca.pem", folder / "ca.key")
    _write_private(ca.key, _key_pem(key))
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca


def issue_server_certificate(
    ca: LocalCA,
    folder: Path,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    name: str = "server",
    *,
    client: bool = False,
) -> ServerCertificate:
    """Issues a certificate for ``hosts`` (IP addresses and DNS names) signed by ``ca``.

    Args:
        ca: The issuing CA.
        folder: Where ``<name>.pem`` and ``<name>.key`` go.
        hosts: The subject alternative names.
        name: The file stem.
        client: Issue a client certificate (``clientAuth``) instead of a server one.

    Returns:
        The certificate's files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _dt.datetime.now(_dt.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    folder = Path(folder)
    issued = ServerCertificate(folder / f"{name}.pem", folder / f"{name}.key", ca)
    _write_private(issued.key, _key_pem(key))
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def _still_valid(path: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - _dt.datetime.now(_dt.UTC) > _RENEW_BEFORE


def load_or_create(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> ServerCertificate:
    """The CA and server certificate in ``folder``, created on first use and renewed near expiry.

    The CA is kept across renewals, so a client that trusts it keeps working.
    """
    folder = Path(folder)
    ca = LocalCA(folder / "ca.pem", folder / "ca.key")
    if not (ca.key.exists() and _still_valid(ca.cert)):
        ca = create_ca(folder)
    server = ServerCertificate(folder / "server.pem", folder / "server.key", ca)
    if not (server.key.exists() and _still_valid(server.cert)) or (
        server.cert.stat().st_mtime < ca.cert.stat().st_mtime
    ):
        server = issue_server_certificate(ca, folder, hosts)
    return server
