# -*- test-case-name: tests.control.test_tls -*-
"""
Tests for L{roaming.control.tls}: mutual TLS in memory, each rejection
reason and its log line, and the credential checks that run before a daemon
starts.
"""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel, globalLogPublisher

from roaming.control import pki
from roaming.control.tls import (
    ClientTLS,
    CredentialsError,
    RejectionReason,
    ServerTLS,
    classify_verify_error,
    load_credentials,
)
from tests.control.test_tls_support import (
    LogCapture,
    TestAuthority,
    connect_in_memory,
    utc_now,
)

SERVER_IP = "10.0.0.1"
CLIENT_IP = "10.0.1.2"


class Recorder(Protocol):
    """
    Send a greeting on connection and keep what arrives.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lost = None

    def connectionMade(self) -> None:
        self.transport.write(b"hello from " + self.factory.name)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost = reason


def recorder_factory(name: bytes) -> Factory:
    factory = Factory.forProtocol(Recorder)
    factory.name = name
    return factory


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


def exchange(server_tls: ServerTLS, client_tls: ClientTLS, **addresses):
    server, client, pump = connect_in_memory(
        recorder_factory(b"server"),
        recorder_factory(b"client"),
        server_tls,
        client_tls,
        flush=False,
        **addresses,
    )
    # The TLS wrappers drop their application protocol once the connection
    # is lost, so keep references before the handshake runs.
    server_application = server.wrappedProtocol
    client_application = client.wrappedProtocol
    pump.flush()
    return server_application, client_application, server, client


def test_mutual_tls_exchanges_data(authority: TestAuthority) -> None:
    """
    Two nodes of one CA, each naming the address the other sees, connect and
    exchange application data.
    """
    server_tls = ServerTLS(authority.node([SERVER_IP]))
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP)
    server, client, server_wrapper, _ = exchange(server_tls, client_tls)
    assert server.received == b"hello from client"
    assert client.received == b"hello from server"
    assert server_tls.counters.verified == 1
    assert client_tls.counters.verified == 1
    assert not server_tls.counters.rejected
    version = server_wrapper._tlsConnection.get_protocol_version_name()
    assert version in ("TLSv1.2", "TLSv1.3")


def test_dns_identity_accepted(authority: TestAuthority) -> None:
    """
    A client that dials a host name accepts a server certificate with that
    DNS subjectAltName.
    """
    server_tls = ServerTLS(authority.node([SERVER_IP], ["sc1.example.net"]))
    client_tls = ClientTLS(authority.node([CLIENT_IP]), "sc1.example.net")
    server, client, _, _ = exchange(server_tls, client_tls)
    assert client.received == b"hello from server"
    assert server.received == b"hello from client"


def assert_rejected(
    capture: LogCapture, tls, reason: RejectionReason, server: Recorder, client: Recorder
) -> None:
    assert capture.reasons() == [reason.value]
    assert tls.counters.rejected[reason] == 1
    assert server.received == b""
    assert client.received == b""
    assert server.lost is not None
    assert client.lost is not None


def test_client_rejects_server_of_other_ca(authority: TestAuthority) -> None:
    """
    A server certificate from another CA is rejected as C{untrusted-ca}.
    """
    other = TestAuthority.create("other CA")
    other_server = other.node([SERVER_IP])
    capture = LogCapture()
    server_tls = ServerTLS(other_server)
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP, log=capture.logger)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert_rejected(capture, client_tls, RejectionReason.UNTRUSTED_CA, server, client)
    assert capture.events[0]["role"] == "client"
    assert capture.events[0]["peer"] == f"{SERVER_IP}:4433"


def test_server_rejects_client_of_other_ca(authority: TestAuthority) -> None:
    """
    A client certificate from another CA is rejected by the server as
    C{untrusted-ca}, even though the client accepted the server.
    """
    other = TestAuthority.create("other CA")
    capture = LogCapture()
    server_tls = ServerTLS(authority.node([SERVER_IP]), log=capture.logger)
    client_tls = ClientTLS(other.node([CLIENT_IP]), SERVER_IP)
    # The other CA's client does not trust our server either; trust both so
    # that only the server's decision is tested.
    client_tls._context.get_cert_store().add_cert(
        crypto.X509.from_cryptography(authority.certificate)
    )
    server, client, _, _ = exchange(server_tls, client_tls)
    assert_rejected(capture, server_tls, RejectionReason.UNTRUSTED_CA, server, client)
    assert capture.events[0]["role"] == "server"
    assert capture.events[0]["peer"] == f"{CLIENT_IP}:40001"


def test_client_rejects_expired_server(authority: TestAuthority) -> None:
    """
    An expired server certificate is rejected as C{expired}.
    """
    expired = authority.node([SERVER_IP], days=1, not_before=utc_now() - datetime.timedelta(days=3))
    capture = LogCapture()
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP, log=capture.logger)
    server, client, _, _ = exchange(ServerTLS(expired), client_tls)
    assert_rejected(capture, client_tls, RejectionReason.EXPIRED, server, client)


def test_server_rejects_expired_client(authority: TestAuthority) -> None:
    """
    An expired client certificate is rejected by the server as C{expired}.
    """
    expired = authority.node([CLIENT_IP], days=1, not_before=utc_now() - datetime.timedelta(days=3))
    capture = LogCapture()
    server_tls = ServerTLS(authority.node([SERVER_IP]), log=capture.logger)
    server, client, _, _ = exchange(server_tls, ClientTLS(expired, SERVER_IP))
    assert_rejected(capture, server_tls, RejectionReason.EXPIRED, server, client)


def test_client_rejects_not_yet_valid_server(authority: TestAuthority) -> None:
    """
    A server certificate whose validity starts tomorrow is rejected as
    C{not-yet-valid}.
    """
    future = authority.node([SERVER_IP], not_before=utc_now() + datetime.timedelta(days=1))
    capture = LogCapture()
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP, log=capture.logger)
    server, client, _, _ = exchange(ServerTLS(future), client_tls)
    assert_rejected(capture, client_tls, RejectionReason.NOT_YET_VALID, server, client)


def test_client_rejects_wrong_server_identity(authority: TestAuthority) -> None:
    """
    A valid server certificate for another address is rejected as
    C{wrong-identity}, and the log names both.
    """
    capture = LogCapture()
    server_tls = ServerTLS(authority.node(["10.0.0.9"]))
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP, log=capture.logger)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert_rejected(capture, client_tls, RejectionReason.WRONG_IDENTITY, server, client)
    assert capture.events[0]["detail"] == f"certificate names 10.0.0.9, expected {SERVER_IP}"


def test_client_rejects_wrong_dns_identity(authority: TestAuthority) -> None:
    """
    A server certificate whose DNS name differs from the dialled name is
    rejected as C{wrong-identity}.
    """
    capture = LogCapture()
    server_tls = ServerTLS(authority.node([SERVER_IP], ["sc2.example.net"]))
    client_tls = ClientTLS(authority.node([CLIENT_IP]), "sc1.example.net", log=capture.logger)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert_rejected(capture, client_tls, RejectionReason.WRONG_IDENTITY, server, client)


def test_server_rejects_client_source_mismatch(authority: TestAuthority) -> None:
    """
    A client whose certificate does not name its source address is rejected
    by the server as C{wrong-identity}.
    """
    capture = LogCapture()
    server_tls = ServerTLS(authority.node([SERVER_IP]), log=capture.logger)
    client_tls = ClientTLS(authority.node(["10.0.1.99"]), SERVER_IP)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert_rejected(capture, server_tls, RejectionReason.WRONG_IDENTITY, server, client)


def test_server_source_check_can_be_disabled(authority: TestAuthority) -> None:
    """
    With C{check_client_address=False} the server checks only the chain and
    validity of the client certificate.
    """
    server_tls = ServerTLS(authority.node([SERVER_IP]), check_client_address=False)
    client_tls = ClientTLS(authority.node(["10.0.1.99"]), SERVER_IP)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert server.received == b"hello from client"
    assert client.received == b"hello from server"


def test_tls_below_1_2_rejected(authority: TestAuthority) -> None:
    """
    A client that offers at most TLS 1.1 cannot connect.
    """
    server_tls = ServerTLS(authority.node([SERVER_IP]))
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP)
    client_tls._context = SSL.Context(SSL.TLS_METHOD)
    client_tls._context.set_max_proto_version(SSL.TLS1_1_VERSION)
    server, client, _, _ = exchange(server_tls, client_tls)
    assert server.received == b""
    assert client.received == b""
    assert isinstance(server.lost.value, SSL.Error)


def test_rejection_log_is_rate_limited(authority: TestAuthority) -> None:
    """
    After the first ten rejections of one reason, only every hundredth is
    logged, but all are counted.
    """
    capture = LogCapture()
    client_tls = ClientTLS(authority.node([CLIENT_IP]), SERVER_IP, log=capture.logger)
    server_tls = ServerTLS(authority.node(["10.0.0.9"]))
    for _ in range(12):
        exchange(server_tls, client_tls)
    assert client_tls.counters.rejected[RejectionReason.WRONG_IDENTITY] == 12
    assert len(capture.events) == 10


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (10, RejectionReason.EXPIRED),
        (9, RejectionReason.NOT_YET_VALID),
        (20, RejectionReason.UNTRUSTED_CA),
        (18, RejectionReason.UNTRUSTED_CA),
        (50, RejectionReason.INVALID_CERTIFICATE),
    ],
)
def test_classify_verify_error(code: int, reason: RejectionReason) -> None:
    """
    OpenSSL verify error codes map to the rejection reasons.
    """
    assert classify_verify_error(code)[0] is reason


# Credential checks before a daemon starts.


def write_node(tmp_path, authority: TestAuthority, credentials, prefix: str = "node"):
    certificate = tmp_path / f"{prefix}.crt"
    key = tmp_path / f"{prefix}.key"
    ca = tmp_path / "ca.crt"
    pki.write_certificate(certificate, credentials.certificate, force=True)
    pki.write_private_key(key, credentials.private_key, force=True)
    pki.write_certificate(ca, authority.certificate, force=True)
    return certificate, key, ca


def test_load_credentials_accepts_valid_files(tmp_path, authority: TestAuthority) -> None:
    """
    Matching, valid files load.
    """
    credentials = authority.node([SERVER_IP])
    certificate, key, ca = write_node(tmp_path, authority, credentials)
    loaded = load_credentials(certificate, key, ca, now=utc_now())
    assert loaded.certificate == credentials.certificate
    assert loaded.ip_addresses() == [SERVER_IP]


def test_load_credentials_missing_file(tmp_path, authority: TestAuthority) -> None:
    """
    A missing key file is named in the error.
    """
    certificate, key, ca = write_node(tmp_path, authority, authority.node([SERVER_IP]))
    key.unlink()
    with pytest.raises(CredentialsError, match=f"private key {key} not found"):
        load_credentials(certificate, key, ca, now=utc_now())


def test_load_credentials_not_pem(tmp_path, authority: TestAuthority) -> None:
    """
    A CA file that is not PEM is named in the error.
    """
    certificate, key, ca = write_node(tmp_path, authority, authority.node([SERVER_IP]))
    ca.write_text("not a certificate\n")
    with pytest.raises(CredentialsError, match=f"CA certificate {ca} is not a PEM certificate"):
        load_credentials(certificate, key, ca, now=utc_now())


def test_load_credentials_key_mismatch(tmp_path, authority: TestAuthority) -> None:
    """
    A key of another node is rejected.
    """
    certificate, _, ca = write_node(tmp_path, authority, authority.node([SERVER_IP]))
    _, other_key, _ = write_node(tmp_path, authority, authority.node([CLIENT_IP]), "other")
    with pytest.raises(CredentialsError, match="does not match certificate"):
        load_credentials(certificate, other_key, ca, now=utc_now())


def test_load_credentials_other_ca(tmp_path, authority: TestAuthority) -> None:
    """
    A certificate from another CA is rejected, naming both files.
    """
    other = TestAuthority.create("other CA")
    certificate, key, ca = write_node(tmp_path, authority, other.node([SERVER_IP]))
    with pytest.raises(CredentialsError, match=f"not signed by CA certificate {ca}"):
        load_credentials(certificate, key, ca, now=utc_now())


def test_load_credentials_expired(tmp_path, authority: TestAuthority) -> None:
    """
    An expired certificate is rejected with its expiry date.
    """
    credentials = authority.node([SERVER_IP], days=1)
    certificate, key, ca = write_node(tmp_path, authority, credentials)
    later = utc_now() + datetime.timedelta(days=2)
    with pytest.raises(CredentialsError, match=f"certificate {certificate} expired on"):
        load_credentials(certificate, key, ca, now=later)


def test_load_credentials_not_yet_valid(tmp_path, authority: TestAuthority) -> None:
    """
    A certificate whose validity has not started is rejected.
    """
    credentials = authority.node([SERVER_IP])
    certificate, key, ca = write_node(tmp_path, authority, credentials)
    earlier = utc_now() - datetime.timedelta(days=5)
    with pytest.raises(CredentialsError, match="is not valid before"):
        load_credentials(certificate, key, ca, now=earlier)


def test_load_credentials_ca_not_ca(tmp_path, authority: TestAuthority) -> None:
    """
    A node certificate given as the CA certificate is rejected.
    """
    credentials = authority.node([SERVER_IP])
    certificate, key, _ = write_node(tmp_path, authority, credentials)
    with pytest.raises(CredentialsError, match=f"CA certificate {certificate} is not a CA"):
        load_credentials(certificate, key, certificate, now=utc_now())


def test_load_credentials_without_alt_names(tmp_path, authority: TestAuthority) -> None:
    """
    A certificate without subjectAltName is rejected, because no peer could
    verify it.
    """
    key = pki.generate_private_key()
    now = utc_now()
    bare = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(authority.key, hashes.SHA256())
    )
    certificate, key_path, ca = tmp_path / "bare.crt", tmp_path / "bare.key", tmp_path / "ca.crt"
    pki.write_certificate(certificate, bare)
    pki.write_private_key(key_path, key)
    pki.write_certificate(ca, authority.certificate)
    with pytest.raises(CredentialsError, match="has no IP or DNS subjectAltName"):
        load_credentials(certificate, key_path, ca, now=now)


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o640, True), (0o644, True)])
def test_exposed_private_key_warned(tmp_path, authority: TestAuthority, mode, warned) -> None:
    """
    A private key readable by group or others loads with a warning that
    names the file and its mode.
    """
    credentials = authority.node([SERVER_IP])
    certificate, key, ca = write_node(tmp_path, authority, credentials)
    os.chmod(key, mode)
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        load_credentials(certificate, key, ca, now=utc_now())
    finally:
        globalLogPublisher.removeObserver(events.append)

    warnings = [event for event in events if event.get("path") == str(key)]
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert warnings[0]["mode"] == f"{mode:04o}"
        assert warnings[0]["log_level"] is LogLevel.warn
