# -*- test-case-name: tests.control.test_tls -*-
"""
Mutual TLS for control connections.

Every control connection is TLS 1.2 or newer from its first byte (there is no
StartTLS), and both sides present a certificate issued by the network's CA
(see L{roaming.control.pki}). A side rejects the handshake when the peer's
certificate:

  - does not chain to our CA (C{untrusted-ca}),
  - is expired or not yet valid (C{expired}, C{not-yet-valid}), or
  - does not name the expected peer (C{wrong-identity}). The client checks the
    address or host name that it dialled. The server checks the client's
    source IP address unless configured not to. Both compare against the
    certificate's subjectAltNames with service-identity (RFC 6125 section 6).

Each rejection is logged with the reason as the C{reason} field and counted
in L{TLSCounters}. L{load_credentials} checks a node's files before a daemon
starts, so that a daemon never runs with credentials that every peer would
reject.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from zope.interface import implementer

from roaming.control.pki import PKIError, PrivateKey, load_certificate, load_private_key
from roaming.errors import RoamingError

__all__ = [
    "ClientTLS",
    "CredentialsError",
    "NodeCredentials",
    "RejectionReason",
    "ServerTLS",
    "TLSCounters",
    "classify_handshake_error",
    "classify_verify_error",
    "client_endpoint",
    "load_credentials",
    "peer_certificate_names",
    "server_endpoint",
    "should_log",
]

# TLS 1.2 suites with forward secrecy and AEAD only (RFC 7525 section 4.2);
# TLS 1.3 suites are configured separately by OpenSSL and are all acceptable.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"

# The first rejections of each reason are all logged, then one in this many.
_LOG_FIRST = 10
_LOG_EVERY = 100


class CredentialsError(RoamingError):
    """
    A node's certificate, key or CA certificate is missing or unusable; the
    message names the file and what is wrong with it.
    """


class RejectionReason(enum.StrEnum):
    """
    The reason a TLS peer was rejected. The value is the C{reason} field of
    the log event and the counter label.
    """

    UNTRUSTED_CA = "untrusted-ca"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    WRONG_IDENTITY = "wrong-identity"
    INVALID_CERTIFICATE = "invalid-certificate"
    NO_CERTIFICATE = "no-certificate"
    NOT_TLS = "not-tls"
    HANDSHAKE_FAILED = "handshake-failed"


# X509_V_ERR_* codes from OpenSSL's include/openssl/x509_vfy.h.
_VERIFY_ERRORS: dict[int, tuple[RejectionReason, str]] = {
    2: (RejectionReason.UNTRUSTED_CA, "unable to get issuer certificate"),
    7: (RejectionReason.UNTRUSTED_CA, "certificate signature failure"),
    9: (RejectionReason.NOT_YET_VALID, "certificate is not yet valid"),
    10: (RejectionReason.EXPIRED, "certificate has expired"),
    18: (RejectionReason.UNTRUSTED_CA, "self-signed certificate"),
    19: (RejectionReason.UNTRUSTED_CA, "self-signed certificate in chain"),
    20: (RejectionReason.UNTRUSTED_CA, "unable to get local issuer certificate"),
    21: (RejectionReason.UNTRUSTED_CA, "unable to verify the first certificate"),
}


def classify_verify_error(code: int) -> tuple[RejectionReason, str]:
    """
    Map an OpenSSL X509_V_ERR code to a rejection reason and a description.
    """
    return _VERIFY_ERRORS.get(
        code, (RejectionReason.INVALID_CERTIFICATE, f"X509 verify error {code}")
    )


# OpenSSL reason strings (ssl/ssl_err.c) of a handshake that fails before
# the verify callback runs.
_NO_CERTIFICATE_REASONS = frozenset({"peer did not return a certificate"})
_NOT_TLS_REASONS = frozenset(
    {
        "http request",
        "https proxy request",
        "wrong version number",
        "unknown protocol",
        "packet length too long",
        "record layer failure",
    }
)
# The verify callback has already logged and counted these.
_VERIFIED_REASONS = frozenset({"certificate verify failed"})


def classify_handshake_error(error: SSL.Error) -> tuple[RejectionReason, str] | None:
    """
    Map a failed handshake's OpenSSL error to a rejection reason and the
    OpenSSL reason strings, or return C{None} when the verify callback
    already logged the rejection.
    """
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(entry, tuple) and len(entry) == 3:
            reasons.append(str(entry[2]))
    detail = "; ".join(reasons) or str(error) or type(error).__name__
    if any(reason in _VERIFIED_REASONS for reason in reasons):
        return None
    if any(reason in _NO_CERTIFICATE_REASONS for reason in reasons):
        return RejectionReason.NO_CERTIFICATE, detail
    if any(reason in _NOT_TLS_REASONS for reason in reasons):
        return RejectionReason.NOT_TLS, detail
    return RejectionReason.HANDSHAKE_FAILED, detail


def should_log(count: int) -> bool:
    """
    Return whether the C{count}th repeat of one event is logged: the first
    ten, then every hundredth.
    """
    return count <= _LOG_FIRST or count % _LOG_EVERY == 0


@attrs.define
class TLSCounters:
    """
    Rejected peers by reason, and handshakes that passed verification.
    """

    rejected: Counter[RejectionReason] = attrs.field(factory=Counter)
    verified: int = 0


@attrs.frozen
class NodeCredentials:
    """
    A node's certificate and key and the CA certificate that its peers must
    chain to, checked by L{load_credentials}.
    """

    certificate: x509.Certificate
    private_key: PrivateKey
    ca_certificate: x509.Certificate

    def ip_addresses(self) -> list[str]:
        """
        Return the IP subjectAltNames of our certificate, as strings.
        """
        return peer_certificate_names(self.certificate)[0]


def peer_certificate_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """
    Return the IP addresses and the DNS names in C{certificate}'s
    subjectAltName, as strings.
    """
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [], []
    ips = [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)]
    return ips, list(names.value.get_values_for_type(x509.DNSName))


def _load(loader: Callable, path: Path | str, what: str):
    try:
        return loader(path, what)
    except PKIError as error:
        raise CredentialsError(str(error)) from None


_log = Logger(namespace="roaming.control.tls")


def _warn_if_key_exposed(key_path: Path | str) -> None:
    mode = stat.S_IMODE(os.stat(key_path).st_mode)
    if mode & 0o077:
        _log.warn(
            "Private key {path} has mode {mode}, so other local users may read it;"
            " run chmod 600 {path}",
            path=str(key_path),
            mode=f"{mode:04o}",
        )


def _check_validity(
    certificate: x509.Certificate, path: Path | str, what: str, now: datetime.datetime
) -> None:
    if now < certificate.not_valid_before_utc:
        raise CredentialsError(
            f"{what} {path} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC; check the clock or issue a new certificate"
        )
    if now > certificate.not_valid_after_utc:
        raise CredentialsError(
            f"{what} {path} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "issue a new one with roaming-pki"
        )


def load_credentials(
    certificate_path: Path | str,
    key_path: Path | str,
    ca_path: Path | str,
    *,
    now: datetime.datetime,
) -> NodeCredentials:
    """
    Load and check a node's certificate, private key and CA certificate.

    @param now: the current time (timezone-aware), for the validity checks.
    @raise CredentialsError: naming the file, if a file is missing or not
        PEM, or the CA certificate is not a CA. Also if the key does not match
        the certificate, or the certificate is not signed by the CA or has no
        subjectAltName. Also if either certificate is outside its validity
        period.
    """
    ca = _load(load_certificate, ca_path, "CA certificate")
    certificate = _load(load_certificate, certificate_path, "certificate")
    key = _load(load_private_key, key_path, "private key")
    _warn_if_key_exposed(key_path)

    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CredentialsError(f"CA certificate {ca_path} is not a CA certificate")
    _check_validity(ca, ca_path, "CA certificate", now)
    _check_validity(certificate, certificate_path, "certificate", now)

    public_der = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if certificate.public_key().public_bytes(encoding, public_der) != key.public_key().public_bytes(
        encoding, public_der
    ):
        raise CredentialsError(
            f"private key {key_path} does not match certificate {certificate_path}"
        )
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CredentialsError(
            f"certificate {certificate_path} is not signed by CA certificate {ca_path}"
        ) from None
    ips, dns = peer_certificate_names(certificate)
    if not ips and not dns:
        raise CredentialsError(
            f"certificate {certificate_path} has no IP or DNS subjectAltName, so no peer can "
            "verify it; issue a new one with roaming-pki"
        )
    return NodeCredentials(certificate, key, ca)


def _make_context(credentials: NodeCredentials) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
    context.set_cipher_list(_TLS12_CIPHERS)
    context.use_certificate(credentials.certificate)
    context.use_privatekey(credentials.private_key)
    context.check_privatekey()
    context.get_cert_store().add_cert(crypto.X509.from_cryptography(credentials.ca_certificate))
    # Session resumption would skip the peer verification that follows.
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return context


def _peer_text(tls_protocol) -> str:
    transport = getattr(tls_protocol, "transport", None)
    if transport is None:
        return "unknown peer"
    peer = transport.getPeer()
    if isinstance(peer, IPv4Address | IPv6Address):
        return f"{peer.host}:{peer.port}"
    return str(peer)


class _PeerVerifier:
    """
    The OpenSSL verify callback of one connection: it records the first
    rejection, logs it and checks the peer's identity on the leaf certificate.
    """

    def __init__(
        self,
        creator: _MutualTLS,
        tls_protocol,
        role: str,
        expected: Callable[[], str | None] | None,
    ) -> None:
        self._creator = creator
        self._tls_protocol = tls_protocol
        self._role = role
        self._expected = expected
        self.rejection: RejectionReason | None = None

    def __call__(
        self, connection: SSL.Connection, certificate: crypto.X509, code: int, depth: int, ok: int
    ) -> bool:
        if self.rejection is not None:
            return False
        try:
            if not ok:
                reason, detail = classify_verify_error(code)
                self._reject(reason, detail, depth)
                return False
            if depth != 0:
                return True
            return self._verify_identity(certificate.to_cryptography())
        except Exception:
            # An exception escaping an OpenSSL callback is lost; log it here.
            self._creator.log.failure("TLS peer verification failed with an exception")
            self.rejection = RejectionReason.INVALID_CERTIFICATE
            return False

    def _verify_identity(self, certificate: x509.Certificate) -> bool:
        if self._expected is None:
            self._creator.counters.verified += 1
            return True
        identity = self._expected()
        if identity is None:
            self._reject(
                RejectionReason.WRONG_IDENTITY, "peer has no IP address to verify", depth=0
            )
            return False
        try:
            ipaddress.ip_address(identity)
        except ValueError:
            verify = verify_certificate_hostname
        else:
            verify = verify_certificate_ip_address
        try:
            verify(certificate, identity)
        except VerificationError:
            ips, dns = peer_certificate_names(certificate)
            names = ", ".join(ips + dns) or "no subjectAltName"
            self._reject(
                RejectionReason.WRONG_IDENTITY,
                f"certificate names {names}, expected {identity}",
                depth=0,
            )
            return False
        self._creator.counters.verified += 1
        return True

    def _reject(self, reason: RejectionReason, detail: str, depth: int) -> None:
        self.rejection = reason
        counters = self._creator.counters.rejected
        counters[reason] += 1
        count = counters[reason]
        if should_log(count):
            self._creator.log.warn(
                "TLS {role} rejected peer {peer}: {reason} ({detail}, depth {depth}); "
                "{count} rejected for this reason so far",
                role=self._role,
                peer=_peer_text(self._tls_protocol),
                reason=reason.value,
                detail=detail,
                depth=depth,
                count=count,
            )


class _MutualTLS:
    log = Logger(namespace="roaming.control.tls")

    def __init__(
        self,
        credentials: NodeCredentials,
        *,
        log: Logger | None = None,
        counters: TLSCounters | None = None,
    ) -> None:
        self.credentials = credentials
        self.counters = counters if counters is not None else TLSCounters()
        if log is not None:
            self.log = log
        self._context = _make_context(credentials)

    def _connection(
        self, tls_protocol, role: str, expected: Callable[[], str | None] | None
    ) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tls_protocol)
        verifier = _PeerVerifier(self, tls_protocol, role, expected)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verifier)
        return connection


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS(_MutualTLS):
    """
    TLS for connections that we open: present our certificate and require the
    server's certificate to chain to our CA and to name C{peer_name}.

    @param peer_name: the IP literal or DNS name that the server's
        certificate must carry as a subjectAltName (usually the address we
        dial).
    @param counters: where rejections are counted; by default a new
        L{TLSCounters}, so pass one to share it between connection creators.
    """

    def __init__(
        self,
        credentials: NodeCredentials,
        peer_name: str,
        *,
        log: Logger | None = None,
        counters: TLSCounters | None = None,
    ) -> None:
        super().__init__(credentials, log=log, counters=counters)
        self.peer_name = peer_name
        try:
            ipaddress.ip_address(peer_name)
        except ValueError:
            self._server_name: bytes | None = peer_name.encode("ascii")
        else:
            # RFC 6066 section 3: literal addresses are not sent as SNI.
            self._server_name = None

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = self._connection(tlsProtocol, "client", lambda: self.peer_name)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        connection.set_connect_state()
        return connection


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS(_MutualTLS):
    """
    TLS for connections that we accept: present our certificate and require a
    client certificate that chains to our CA.

    @param check_client_address: if true, the client's certificate must also
        carry the connection's source IP address as an IP subjectAltName.
    @param counters: where rejections are counted; by default a new
        L{TLSCounters}.
    """

    def __init__(
        self,
        credentials: NodeCredentials,
        *,
        check_client_address: bool = True,
        log: Logger | None = None,
        counters: TLSCounters | None = None,
    ) -> None:
        super().__init__(credentials, log=log, counters=counters)
        self.check_client_address = check_client_address

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        def source_address() -> str | None:
            peer = tlsProtocol.transport.getPeer()
            if isinstance(peer, IPv4Address | IPv6Address):
                return peer.host
            return None

        expected = source_address if self.check_client_address else None
        connection = self._connection(tlsProtocol, "server", expected)
        connection.set_accept_state()
        return connection


def server_endpoint(
    reactor, server_tls: ServerTLS, port: int, interface: str = "", *, backlog: int = 128
) -> SSL4ServerEndpoint:
    """
    Return a TLS server endpoint on C{interface}:C{port}.

    @param backlog: the listen queue length; an SC that many APs reach at
        once (after its restart) needs room for all their connections.
    """
    return SSL4ServerEndpoint(reactor, port, server_tls, backlog=backlog, interface=interface)


def client_endpoint(
    reactor,
    client_tls: ClientTLS,
    host: str,
    port: int,
    *,
    timeout: float = 10,
    bind_address: str | None = None,
):
    """
    Return a TLS client endpoint to C{host}:C{port}, verifying the server as
    C{client_tls.peer_name}.

    @param timeout: TCP connect timeout in seconds.
    @param bind_address: local address to connect from, which must be one
        that our certificate names when the server checks client addresses.
    """
    bind = (bind_address, 0) if bind_address is not None else None
    tcp = TCP4ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)
    return wrapClientTLS(client_tls, tcp)
