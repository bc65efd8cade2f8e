"""Key material for the simulator: a throwaway CA, the server certificate, client certificates.

Everything is generated in memory on start; nothing here is meant to protect anything real.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class ServerPki:
    ca_pem: str
    cert_pem: str  # server certificate followed by nothing else (the CA is trusted separately)
    key_pem: str


def make_server_pki(host: str) -> ServerPki:
    """A CA and a server certificate for `host` (an IP address or a DNS name) signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = new_key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("etd-audit simulator CA"))
        .issuer_name(_name("etd-audit simulator CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    if host != "127.0.0.1":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_key = new_key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServerPki(cert_pem(ca_cert), cert_pem(server_cert), key_pem(server_key))


@functools.lru_cache(maxsize=64)
def client_certificate(label: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a self-signed client certificate, cached per label.

    RSA keys cannot be derived from a seed cheaply, so the same label gives the same key only within
    one process. Generated tenants are otherwise fully deterministic.
    """
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert), key_pem(key)


def load_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def sha1_thumbprint(pem: str) -> str:
    """Upper-case hex SHA-1 of the certificate (what the portal shows and msal's `thumbprint` takes)."""
    return load_cert(pem).fingerprint(hashes.SHA1()).hex().upper()  # a thumbprint, not security


def x5t(cert: x509.Certificate, algorithm: str = "sha1") -> str:
    """The JWT `x5t` (SHA-1) or `x5t#S256` (SHA-256) header value of a certificate."""
    digest = cert.fingerprint(hashes.SHA1() if algorithm == "sha1" else hashes.SHA256())
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
