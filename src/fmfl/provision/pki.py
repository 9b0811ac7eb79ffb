"""A development PKI with ``cryptography``: a CA, a broker server certificate, device certificates, a CRL.

X.509 profile as in RFC 5280: the CA has ``basicConstraints CA:true`` and may only sign certificates and
CRLs; leaf certificates carry ``extendedKeyUsage`` serverAuth (the broker, with its DNS/IP names in the
subjectAltName, which TLS clients check per RFC 6125) or clientAuth (a device, CN = its id, which Mosquitto's
``use_identity_as_username`` turns into the MQTT username). Keys are ECDSA P-256: small and fast on devices.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CLOCK_SKEW = dt.timedelta(minutes=5)  # a device whose clock is a little behind still accepts a fresh cert


@dataclass(frozen=True)
class Issued:
    """A private key and the certificate issued for it."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_ca(organization: str, days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign leaf certificates and CRLs (pathLen 0: no intermediates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{organization} development CA", organization)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _leaf(ca: Issued, common_name: str, usage: x509.ObjectIdentifier, days: int,
          alt_names: list[x509.GeneralName]) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, _organization(ca)))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def _organization(ca: Issued) -> str:
    values = ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else "fmfl"


def make_server_cert(ca: Issued, hostnames: Iterable[str], ips: Iterable[str], days: int) -> Issued:
    """The broker's certificate: CN is the first hostname; every hostname and IP is in the subjectAltName."""
    names = list(hostnames)
    alt: list[x509.GeneralName] = [x509.DNSName(h) for h in names]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if not alt:
        raise ValueError("the server certificate needs at least one hostname or IP address")
    common_name = names[0] if names else str(next(iter(ips)))
    return _leaf(ca, common_name, ExtendedKeyUsageOID.SERVER_AUTH, days, alt)


def make_client_cert(ca: Issued, identity: str, days: int) -> Issued:
    """A device's (or the gateway's) client certificate; CN = its id."""
    return _leaf(ca, identity, ExtendedKeyUsageOID.CLIENT_AUTH, days, [])


def make_crl(ca: Issued, revoked_serials: Iterable[int]) -> bytes:
    """A PEM CRL listing ``revoked_serials``, valid until the CA expires (OpenSSL refuses an expired CRL)."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(ca.cert.not_valid_after_utc)
    )
    for serial in sorted(set(revoked_serials)):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - CLOCK_SKEW).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_ca(key_pem: bytes, cert_pem: bytes) -> Issued:
    """The CA back from its PEM files (to sign a CRL on ``--revoke``)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC private key")
    return Issued(key, x509.load_pem_x509_certificate(cert_pem))
