# -*- test-case-name: tests.control.test_pki -*-
"""
Tests for L{roaming.control.pki}: the certificates it makes are checked with
the OpenSSL command line tool as an independent verifier, and the
C{roaming-pki} command's files, permissions and errors.
"""

from __future__ import annotations

import datetime
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from roaming.control import pki

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command is not installed"
)


def run_pki(*arguments: str, now: datetime.datetime = NOW) -> int:
    return pki.main(list(arguments), now=now)


@pytest.fixture
def ca_dir(tmp_path):
    assert run_pki("create-ca", "--dir", str(tmp_path / "ca")) == 0
    return tmp_path / "ca"


def openssl(*arguments: str) -> str:
    result = subprocess.run(
        ["openssl", *arguments], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_create_ca_files_and_modes(ca_dir) -> None:
    """
    C{create-ca} writes the CA certificate (0644) and key (0600).
    """
    key_mode = stat.S_IMODE((ca_dir / "ca.key").stat().st_mode)
    certificate_mode = stat.S_IMODE((ca_dir / "ca.crt").stat().st_mode)
    assert key_mode == 0o600
    assert certificate_mode == 0o644
    certificate = pki.load_certificate(ca_dir / "ca.crt")
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True
    assert constraints.value.path_length == 0
    assert isinstance(pki.load_private_key(ca_dir / "ca.key"), ec.EllipticCurvePrivateKey)


def test_issue_node_certificate(ca_dir, tmp_path) -> None:
    """
    C{issue} writes a node certificate with the IP and DNS subjectAltNames,
    an EC P-256 key, and both TLS extended key usages.
    """
    status = run_pki(
        "issue",
        "--ca-dir", str(ca_dir),
        "--name", "sc1",
        "--ip", "10.0.0.1",
        "--ip", "2001:db8::1",
        "--dns", "sc1.example.net",
        "--days", "10",
        "--out-dir", str(tmp_path / "sc1"),
    )  # fmt: skip
    assert status == 0
    certificate = pki.load_certificate(tmp_path / "sc1" / "sc1.crt")
    key = pki.load_private_key(tmp_path / "sc1" / "sc1.key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "10.0.0.1",
        "2001:db8::1",
    ]
    assert names.get_values_for_type(x509.DNSName) == ["sc1.example.net"]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert certificate.not_valid_before_utc == NOW
    assert certificate.not_valid_after_utc == NOW + datetime.timedelta(days=10)
    assert stat.S_IMODE((tmp_path / "sc1" / "sc1.key").stat().st_mode) == 0o600


@needs_openssl
def test_openssl_verifies_issued_certificate(ca_dir) -> None:
    """
    The OpenSSL tool verifies the node certificate against the CA for TLS
    client and server use, and decodes the subjectAltNames.
    """
    now = datetime.datetime.now(datetime.UTC)
    assert run_pki("create-ca", "--dir", str(ca_dir), "--force", now=now) == 0
    assert (
        run_pki("issue", "--ca-dir", str(ca_dir), "--name", "ap7", "--ip", "10.1.2.3", now=now) == 0
    )
    ca, node = str(ca_dir / "ca.crt"), str(ca_dir / "ap7.crt")
    for purpose in ("sslserver", "sslclient"):
        output = openssl("verify", "-CAfile", ca, "-purpose", purpose, node)
        assert output.strip() == f"{node}: OK"
    text = openssl("x509", "-in", node, "-noout", "-ext", "subjectAltName")
    assert "IP Address:10.1.2.3" in text
    key_text = openssl("pkey", "-in", str(ca_dir / "ap7.key"), "-noout", "-text")
    assert "prime256v1" in key_text


@needs_openssl
def test_openssl_rejects_expired_certificate(tmp_path) -> None:
    """
    A certificate issued with a past validity period fails OpenSSL's check as
    expired.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_certificate, ca_key = pki.create_ca("ca", now=now - datetime.timedelta(days=10))
    certificate, _ = pki.issue_certificate(
        ca_certificate,
        ca_key,
        "old",
        now=now,
        ip_addresses=["10.0.0.5"],
        days=1,
        not_before=now - datetime.timedelta(days=5),
    )
    pki.write_certificate(tmp_path / "ca.crt", ca_certificate)
    pki.write_certificate(tmp_path / "old.crt", certificate)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "old.crt")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "certificate has expired" in result.stdout + result.stderr


def test_rsa_key_type(ca_dir) -> None:
    """
    C{--key-type rsa} issues a 3072-bit RSA key.
    """
    status = run_pki(
        "issue", "--ca-dir", str(ca_dir), "--name", "n", "--ip", "10.0.0.2", "--key-type", "rsa"
    )
    assert status == 0
    key = pki.load_private_key(ca_dir / "n.key")
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_refuses_overwrite_without_force(ca_dir, capsys) -> None:
    """
    An existing CA is not replaced without C{--force}, and the files are
    left unchanged.
    """
    before = (ca_dir / "ca.key").read_bytes()
    assert run_pki("create-ca", "--dir", str(ca_dir)) == 1
    error = capsys.readouterr().err
    assert f"{ca_dir / 'ca.key'} already exists; pass --force to replace it" in error
    assert (ca_dir / "ca.key").read_bytes() == before


def test_force_replaces_files(ca_dir) -> None:
    """
    With C{--force} the CA is replaced and the key keeps mode 0600.
    """
    before = (ca_dir / "ca.key").read_bytes()
    assert run_pki("create-ca", "--dir", str(ca_dir), "--force") == 0
    assert (ca_dir / "ca.key").read_bytes() != before
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert not [path for path in ca_dir.iterdir() if path.name.endswith(".tmp")]


def test_issue_without_names_fails(ca_dir, capsys) -> None:
    """
    A node certificate needs at least one IP address or DNS name.
    """
    assert run_pki("issue", "--ca-dir", str(ca_dir), "--name", "n") == 1
    assert "needs at least one IP address or DNS name" in capsys.readouterr().err
    assert not (ca_dir / "n.crt").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--ip", "10.0.0.256", "invalid IP address '10.0.0.256'"),
        ("--dns", "bad_name.example", "invalid DNS name 'bad_name.example'"),
        ("--days", "0", "validity of 0 days is invalid"),
    ],
)
def test_issue_invalid_values(ca_dir, capsys, option: str, value: str, message: str) -> None:
    """
    Invalid addresses, names and validity periods are reported by value.
    """
    arguments = ["issue", "--ca-dir", str(ca_dir), "--name", "n", option, value]
    if option != "--ip":
        arguments += ["--ip", "10.0.0.1"]
    assert run_pki(*arguments) == 1
    assert message in capsys.readouterr().err


def test_issue_missing_ca(tmp_path, capsys) -> None:
    """
    A missing CA directory is reported with the file that was looked for.
    """
    missing = tmp_path / "nowhere"
    assert run_pki("issue", "--ca-dir", str(missing), "--name", "n", "--ip", "10.0.0.1") == 1
    assert f"CA certificate {missing / 'ca.crt'} not found" in capsys.readouterr().err


def test_issue_mismatched_ca_key(ca_dir, tmp_path, capsys) -> None:
    """
    A CA key that does not belong to the CA certificate is rejected.
    """
    other = tmp_path / "other"
    assert run_pki("create-ca", "--dir", str(other)) == 0
    (ca_dir / "ca.key").write_bytes((other / "ca.key").read_bytes())
    assert run_pki("issue", "--ca-dir", str(ca_dir), "--name", "n", "--ip", "10.0.0.1") == 1
    assert "the CA key does not match the CA certificate" in capsys.readouterr().err


def test_invalid_node_name(ca_dir, capsys) -> None:
    """
    A node name that would escape the output directory is rejected.
    """
    assert run_pki("issue", "--ca-dir", str(ca_dir), "--name", "../x", "--ip", "10.0.0.1") == 1
    assert "invalid node name '../x'" in capsys.readouterr().err


def test_not_before_option(ca_dir) -> None:
    """
    C{--not-before} sets the start of validity; a time without an offset is
    UTC.
    """
    status = run_pki(
        "issue", "--ca-dir", str(ca_dir), "--name", "n", "--ip", "10.0.0.1",
        "--not-before", "2020-01-02T03:04:05", "--days", "1",
    )  # fmt: skip
    assert status == 0
    certificate = pki.load_certificate(ca_dir / "n.crt")
    assert certificate.not_valid_before_utc == datetime.datetime(
        2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC
    )


def test_encrypted_key_rejected(tmp_path) -> None:
    """
    An encrypted key file is reported as such.
    """
    from cryptography.hazmat.primitives import serialization

    key = pki.generate_private_key()
    path = tmp_path / "enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(pki.PKIError, match=f"private key {path} is encrypted"):
        pki.load_private_key(path)


def test_unknown_key_type() -> None:
    """
    An unknown key type names the supported ones.
    """
    with pytest.raises(pki.PKIError, match="unknown key type 'dsa'; use one of ec, rsa"):
        pki.generate_private_key("dsa")


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (NOW + datetime.timedelta(days=pki.DEFAULT_CA_DAYS + 1), "expired"),
        (NOW - datetime.timedelta(days=1), "not yet valid"),
    ],
)
def test_issue_refuses_ca_outside_validity(ca_dir, capsys, now, state) -> None:
    """
    Issuing with an expired or not yet valid CA fails, naming the file and
    the dates, and succeeds with --force.
    """
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    issue = ("issue", "--ca-dir", str(ca_dir), "--name", "ap1", "--ip", "10.1.0.10")

    assert run_pki(*issue, now=now) == 1
    error = capsys.readouterr().err
    assert f"CA certificate {ca_dir / 'ca.crt'} is {state}" in error
    assert f"{ca.not_valid_after_utc:%Y-%m-%d %H:%M}" in error
    assert f"{ca.not_valid_before_utc:%Y-%m-%d %H:%M}" in error
    assert not (ca_dir / "ap1.crt").exists()
    assert run_pki(*issue, "--force", now=now) == 0
    assert (ca_dir / "ap1.crt").exists()


def test_several_certificates_in_file_refused(ca_dir, tmp_path) -> None:
    """
    A CA file with two certificates is refused with its name and count.
    """
    assert run_pki("create-ca", "--dir", str(tmp_path / "other")) == 0
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(
        (ca_dir / "ca.crt").read_bytes() + (tmp_path / "other" / "ca.crt").read_bytes()
    )

    with pytest.raises(pki.PKIError, match=f"CA certificate {bundle} contains 2 certificates"):
        pki.load_certificate(bundle, "CA certificate")
