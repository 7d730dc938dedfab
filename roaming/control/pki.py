# -*- test-case-name: tests.control.test_pki -*-
"""
Create the certificate authority (CA) and the node certificates that the
control plane's mutual TLS uses.

Every AP and SC has a key, a certificate signed by the network's CA and a
copy of the CA certificate. A node certificate carries the node's addresses as
IP subjectAltNames and its host names as DNS subjectAltNames, because peers
check the identity they dialled against those names (RFC 6125, RFC 5280
section 4.2.1.6). Node certificates are valid for both TLS server and TLS
client authentication because every node both accepts and opens control
connections.

The functions here take the current time as an argument, so tests can issue
certificates that are expired or not yet valid. L{main} is the
C{roaming-pki} console script.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from roaming.errors import RoamingError

__all__ = [
    "CA_CERTIFICATE_FILE",
    "CA_KEY_FILE",
    "DEFAULT_CA_DAYS",
    "DEFAULT_NODE_DAYS",
    "KEY_TYPES",
    "PKIError",
    "PrivateKey",
    "create_ca",
    "generate_private_key",
    "issue_certificate",
    "load_certificate",
    "load_private_key",
    "main",
    "write_certificate",
    "write_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Supported key algorithms: ECDSA on P-256 (the default) and 3072-bit RSA.
KEY_TYPES = ("ec", "rsa")
RSA_KEY_BITS = 3072

DEFAULT_CA_DAYS = 3650
DEFAULT_NODE_DAYS = 825

CA_CERTIFICATE_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"

# RFC 1035 section 2.3.1 labels, as ASCII; service-identity rejects the rest.
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class PKIError(RoamingError):
    """
    A certificate or key could not be created, read or written; the message
    names the file or value and what to do.
    """


def generate_private_key(key_type: str = "ec") -> PrivateKey:
    """
    Generate a private key: ECDSA on P-256 for C{"ec"}, 3072-bit RSA for
    C{"rsa"}.

    @raise PKIError: for any other C{key_type}.
    """
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    raise PKIError(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def _validity(
    now: datetime.datetime, days: int, not_before: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    if days < 1:
        raise PKIError(f"validity of {days} days is invalid; give at least 1 day")
    if now.tzinfo is None:
        raise PKIError("the current time must be timezone-aware (UTC)")
    start = now if not_before is None else not_before
    if start.tzinfo is None:
        raise PKIError("not_before must be timezone-aware (UTC)")
    return start, start + datetime.timedelta(days=days)


def create_ca(
    common_name: str,
    *,
    now: datetime.datetime,
    days: int = DEFAULT_CA_DAYS,
    key_type: str = "ec",
    not_before: datetime.datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """
    Create a CA key and its self-signed certificate.

    The CA may sign only end-entity certificates (path length 0, RFC 5280
    section 4.2.1.9).

    @param now: the current time (timezone-aware); validity starts here
        unless C{not_before} is given.
    @param days: validity period in days.
    @return: C{(certificate, private_key)}.
    """
    start, end = _validity(now, days, not_before)
    key = generate_private_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def _parse_ip_addresses(
    addresses: Iterable[str],
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    parsed = []
    for address in addresses:
        try:
            parsed.append(ipaddress.ip_address(address))
        except ValueError:
            raise PKIError(
                f"invalid IP address {address!r}; give an IPv4 or IPv6 literal"
            ) from None
    return parsed


def _check_dns_names(names: Iterable[str]) -> list[str]:
    checked = []
    for name in names:
        labels = name.rstrip(".").split(".")
        if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
            raise PKIError(f"invalid DNS name {name!r}; use ASCII labels of letters, digits and -")
        checked.append(name)
    return checked


def issue_certificate(
    ca_certificate: x509.Certificate,
    ca_key: PrivateKey,
    common_name: str,
    *,
    now: datetime.datetime,
    ip_addresses: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    days: int = DEFAULT_NODE_DAYS,
    key_type: str = "ec",
    not_before: datetime.datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """
    Issue a node certificate signed by the CA.

    @param ip_addresses: IP literals put in the subjectAltName as iPAddress
        entries.
    @param dns_names: host names put in the subjectAltName as dNSName entries.
    @return: C{(certificate, private_key)} for the node.
    @raise PKIError: if neither an IP address nor a DNS name is given (peers
        verify the identity only against subjectAltNames, RFC 6125 section
        6.4.4), if a name is invalid, or if C{ca_key} does not match
        C{ca_certificate}.
    """
    ips = _parse_ip_addresses(ip_addresses)
    dns = _check_dns_names(dns_names)
    if not ips and not dns:
        raise PKIError(
            f"certificate {common_name!r} needs at least one IP address or DNS name, "
            "because peers verify the identity against them"
        )
    if not _same_public_key(ca_certificate, ca_key):
        raise PKIError("the CA key does not match the CA certificate; check the CA files")
    start, end = _validity(now, days, not_before)
    key = generate_private_key(key_type)
    public_key = key.public_key()
    alt_names: list[x509.GeneralName] = [x509.IPAddress(ip) for ip in ips]
    alt_names += [x509.DNSName(name) for name in dns]
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_type == "rsa",
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256()), key


def _same_public_key(certificate: x509.Certificate, key: PrivateKey) -> bool:
    encoding = serialization.Encoding.DER
    public_format = serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(encoding, public_format) == (
        key.public_key().public_bytes(encoding, public_format)
    )


def _write_new_file(path: Path, data: bytes, mode: int, *, force: bool) -> None:
    """
    Write C{data} to a file created with C{mode}, never exposing a partial or
    wider-permission file; with C{force}, replace an existing file atomically.
    """
    if path.exists() and not force:
        raise PKIError(f"{path} already exists; pass --force to replace it")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as error:
        raise PKIError(f"failed to create {temporary}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as output:
            output.write(data)
        if force:
            os.replace(temporary, path)
        else:
            # A hard link fails if another process created the file meanwhile.
            os.link(temporary, path)
    except FileExistsError:
        raise PKIError(f"{path} already exists; pass --force to replace it") from None
    except OSError as error:
        raise PKIError(f"failed to write {path}: {error.strerror}") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def write_private_key(path: Path | str, key: PrivateKey, *, force: bool = False) -> None:
    """
    Write C{key} as unencrypted PKCS#8 PEM, readable by the owner only (0600).

    @raise PKIError: if the file exists and C{force} is false, or on an OS
        error.
    """
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new_file(Path(path), data, 0o600, force=force)


def write_certificate(
    path: Path | str, certificate: x509.Certificate, *, force: bool = False
) -> None:
    """
    Write C{certificate} as PEM with mode 0644.

    @raise PKIError: if the file exists and C{force} is false, or on an OS
        error.
    """
    data = certificate.public_bytes(serialization.Encoding.PEM)
    _write_new_file(Path(path), data, 0o644, force=force)


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PKIError(f"{what} {path} not found") from None
    except OSError as error:
        raise PKIError(f"failed to read {what} {path}: {error.strerror}") from None


def load_certificate(path: Path | str, what: str = "certificate") -> x509.Certificate:
    """
    Read a PEM certificate.

    @param what: the file's role, used in error messages (C{"CA certificate"}).
    @raise PKIError: naming the file if it is missing, unreadable, not a PEM
        certificate or contains more than one certificate. Only one CA
        certificate is a trust anchor, so a CA file with several would
        silently distrust the others.
    """
    path = Path(path)
    data = _read_file(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PKIError(f"{what} {path} is not a PEM certificate") from None
    if len(certificates) > 1:
        raise PKIError(
            f"{what} {path} contains {len(certificates)} certificates, but only one is"
            " allowed; keep only the certificate that is needed in the file"
        )
    return certificates[0]


def load_private_key(path: Path | str, what: str = "private key") -> PrivateKey:
    """
    Read an unencrypted PEM private key (EC or RSA).

    @raise PKIError: naming the file if it is missing, unreadable, encrypted,
        not a PEM key or of another algorithm.
    """
    path = Path(path)
    data = _read_file(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PKIError(f"{what} {path} is encrypted; give an unencrypted key") from None
    except ValueError:
        raise PKIError(f"{what} {path} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PKIError(f"{what} {path} is a {type(key).__name__}; use an EC or RSA key")
    return key


def _parse_time(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}; use ISO 8601, such as 2026-01-31T00:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roaming-pki",
        description="Create the CA and node certificates for roaming's mutual TLS.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ca = commands.add_parser("create-ca", help="create a CA key and self-signed certificate")
    ca.add_argument("--dir", required=True, type=Path, help="directory for ca.crt and ca.key")
    ca.add_argument("--name", default="roaming control CA", help="CA common name")
    ca.add_argument("--days", type=int, default=DEFAULT_CA_DAYS, help="validity in days")

    issue = commands.add_parser("issue", help="issue a node certificate signed by the CA")
    issue.add_argument("--ca-dir", required=True, type=Path, help="directory with ca.crt, ca.key")
    issue.add_argument("--name", required=True, help="node common name and file name stem")
    issue.add_argument("--ip", action="append", default=[], help="IP subjectAltName (repeatable)")
    issue.add_argument("--dns", action="append", default=[], help="DNS subjectAltName (repeatable)")
    issue.add_argument("--days", type=int, default=DEFAULT_NODE_DAYS, help="validity in days")
    issue.add_argument(
        "--out-dir", type=Path, help="directory for NAME.crt and NAME.key (default: --ca-dir)"
    )

    for command in (ca, issue):
        command.add_argument(
            "--key-type", choices=KEY_TYPES, default="ec", help="key algorithm (default: ec P-256)"
        )
        command.add_argument(
            "--not-before",
            type=_parse_time,
            help="start of validity, ISO 8601 (default: now; UTC if no offset)",
        )
        command.add_argument(
            "--force",
            action="store_true",
            help="replace existing files; for issue, also sign with a CA certificate that is"
            " expired or not yet valid",
        )
    return parser


def _run_create_ca(arguments: argparse.Namespace, now: datetime.datetime) -> list[Path]:
    certificate, key = create_ca(
        arguments.name,
        now=now,
        days=arguments.days,
        key_type=arguments.key_type,
        not_before=arguments.not_before,
    )
    arguments.dir.mkdir(parents=True, exist_ok=True)
    key_path = arguments.dir / CA_KEY_FILE
    certificate_path = arguments.dir / CA_CERTIFICATE_FILE
    if not arguments.force:
        _check_absent([key_path, certificate_path])
    write_private_key(key_path, key, force=arguments.force)
    write_certificate(certificate_path, certificate, force=arguments.force)
    return [certificate_path, key_path]


def _run_issue(arguments: argparse.Namespace, now: datetime.datetime) -> list[Path]:
    ca_certificate = load_certificate(arguments.ca_dir / CA_CERTIFICATE_FILE, "CA certificate")
    ca_key = load_private_key(arguments.ca_dir / CA_KEY_FILE, "CA private key")
    if not arguments.force:
        _check_ca_validity(ca_certificate, arguments.ca_dir / CA_CERTIFICATE_FILE, now)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", arguments.name):
        raise PKIError(
            f"invalid node name {arguments.name!r}; use letters, digits, '.', '_' and '-' "
            "because it becomes the file name"
        )
    certificate, key = issue_certificate(
        ca_certificate,
        ca_key,
        arguments.name,
        now=now,
        ip_addresses=arguments.ip,
        dns_names=arguments.dns,
        days=arguments.days,
        key_type=arguments.key_type,
        not_before=arguments.not_before,
    )
    out_dir = arguments.out_dir if arguments.out_dir is not None else arguments.ca_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path = out_dir / f"{arguments.name}.key"
    certificate_path = out_dir / f"{arguments.name}.crt"
    if not arguments.force:
        _check_absent([key_path, certificate_path])
    write_private_key(key_path, key, force=arguments.force)
    write_certificate(certificate_path, certificate, force=arguments.force)
    return [certificate_path, key_path]


def _check_ca_validity(certificate: x509.Certificate, path: Path, now: datetime.datetime) -> None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if start <= now <= end:
        return
    state = "expired" if now > end else "not yet valid"
    raise PKIError(
        f"CA certificate {path} is {state}: valid from {start:%Y-%m-%d %H:%M} to"
        f" {end:%Y-%m-%d %H:%M} UTC, now is {now:%Y-%m-%d %H:%M} UTC; create a new CA, or"
        " pass --force to sign anyway"
    )


def _check_absent(paths: Iterable[Path]) -> None:
    # Checked before writing either file, so a refusal leaves no half-made pair.
    for path in paths:
        if path.exists():
            raise PKIError(f"{path} already exists; pass --force to replace it")


def main(argv: Sequence[str] | None = None, now: datetime.datetime | None = None) -> int:
    """
    Run C{roaming-pki}: C{create-ca} or C{issue}.

    @param argv: arguments without the program name (default: C{sys.argv[1:]}).
    @param now: the current time (default: the system clock).
    @return: the exit status: 0 on success, 1 on a PKI error (printed to
        standard error).
    """
    arguments = _build_parser().parse_args(argv)
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    try:
        if arguments.command == "create-ca":
            written = _run_create_ca(arguments, now)
        else:
            written = _run_issue(arguments, now)
    except PKIError as error:
        print(f"roaming-pki: error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
