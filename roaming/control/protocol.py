# -*- test-case-name: tests.control.test_wire_protocol -*-
"""
The AMP protocol of one control connection.

A L{ControlProtocol} runs on top of a mutually authenticated TLS connection
(L{roaming.control.tls}). Its life:

  1. The connecting side sends L{Identify} with its address and role. The
     accepting side checks the address against the client certificate's IP
     subjectAltNames, answers with its own address and role, and tells its
     node. The connecting side checks that the answer names the peer it
     dialled. Until this exchange completes, every other command is answered
     with C{NOT_IDENTIFIED}; if it does not complete within
     C{identify_timeout} seconds of the TCP connection, the connection is
     aborted.
  2. Each received message command is parsed, validated by its message class
     and checked against the roles of the two ends, then passed to the
     node (L{ControlNode}). A message that fails any step is answered with
     an AMP error box naming the reason; the connection stays open.
  3. Either side sends a L{Keepalive} every C{keepalive_interval} seconds.
     A peer from which nothing has arrived for C{idle_timeout} seconds is
     aborted, so a peer that completed the handshake and then went silent is
     noticed and, for outgoing connections, reconnected by the service.

Flow control: the protocol registers itself as a producer on its transport.
When the transport's send buffer fills (the peer stops reading), the
protocol stops sending new commands and queues outgoing messages. At most
C{max_outstanding} commands await an answer at once and at most
C{max_queued} messages wait in the queue. The protocol keeps reading while
paused, so two nodes that both send never wait for each other, but it counts the
answers it writes while paused. Past C{max_queued} of either, the peer is
disconnected and the event counted, so a stuck peer costs a bounded amount
of memory.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any, Protocol

import attrs
from OpenSSL import SSL
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from roaming.control import messages
from roaming.control.commands import (
    COMMANDS,
    ERRORS,
    FATAL_ERRORS,
    Identify,
    IdentityMismatchError,
    MessageCommand,
    NodeRole,
    NotAllowedError,
    NotIdentifiedError,
    RemoteControlError,
    RemoteInternalError,
    RemoteInvalidMessageError,
    from_arguments,
    to_arguments,
    wire_error,
)
from roaming.control.messages import Message
from roaming.control.tls import classify_handshake_error, peer_certificate_names, should_log

__all__ = [
    "ALLOWED_MESSAGES",
    "ConnectionCounters",
    "ConnectionSettings",
    "ControlNode",
    "ControlProtocol",
]

_M = messages

#: The messages a node of one role accepts from a peer of another role:
#: (receiver role, sender role) -> message classes.
ALLOWED_MESSAGES: dict[tuple[NodeRole, NodeRole], frozenset[type[Message]]] = {
    (NodeRole.SC, NodeRole.AP): frozenset(
        {_M.ApRegister, _M.IappAdd, _M.ApAddTraveler, _M.ApDeleteTraveler, _M.Keepalive}
    ),
    (NodeRole.AP, NodeRole.SC): frozenset(
        {
            _M.IappAdd,
            _M.IappMove,
            _M.AddTraveler,
            _M.DeleteTraveler,
            _M.DeleteVisitor,
            _M.Keepalive,
        }
    ),
    (NodeRole.SC, NodeRole.SC): frozenset(
        {
            _M.ScRegister,
            _M.ScAnnounce,
            _M.ScWithdraw,
            _M.DiscoveryRound,
            _M.IappAdd,
            _M.MscAddTraveler,
            _M.MscDeleteTraveler,
            _M.MscDeleteVisitor,
            _M.Keepalive,
        }
    ),
    (NodeRole.AP, NodeRole.AP): frozenset({_M.Keepalive}),
}

#: Maximum number of keys in one AMP box. The largest command has 7
#: arguments plus the 2 or 3 keys of AMP's own, so a box with more keys is
#: hostile.
MAX_BOX_KEYS = 32


@attrs.frozen
class ConnectionSettings:
    """
    Timers and bounds of a control connection. Times are in seconds.
    """

    #: Time allowed from the TCP connection to a completed L{Identify}
    #: exchange, TLS handshake included.
    identify_timeout: float = 10.0
    #: Time between keepalives that this side sends.
    keepalive_interval: float = 10.0
    #: Time without any received data after which the peer is aborted.
    idle_timeout: float = 35.0
    #: Commands sent that may await an answer at once.
    max_outstanding: int = 512
    #: Messages that may wait to be sent; one more disconnects the peer.
    max_queued: int = 20_000


@attrs.define
class ConnectionCounters:
    """
    Event counts over every connection of a node.
    """

    sent: int = 0
    received: int = 0
    #: Error answers received from peers, by AMP error code.
    remote_errors: collections.Counter[bytes] = attrs.field(factory=collections.Counter)
    #: Error answers sent to peers, by AMP error code.
    errors_sent: collections.Counter[bytes] = attrs.field(factory=collections.Counter)
    identify_timeouts: int = 0
    idle_timeouts: int = 0
    queue_overflows: int = 0
    oversized_boxes: int = 0
    identity_mismatches: int = 0
    pauses: int = 0
    #: TLS handshakes that failed before the verify callback ran (no client
    #: certificate, not TLS at all), by L{RejectionReason} value.
    tls_rejected: collections.Counter[str] = attrs.field(factory=collections.Counter)
    #: Connections that broke the AMP framing, and answers to unknown
    #: commands, by reason: C{malformed-box}, C{box-without-command},
    #: C{unknown-answer}.
    protocol_errors: collections.Counter[str] = attrs.field(factory=collections.Counter)


class ControlNode(Protocol):
    """
    The interface of the node that owns a L{ControlProtocol}.
    """

    address: IPv4Address
    role: NodeRole
    clock: Any
    settings: ConnectionSettings
    counters: ConnectionCounters

    def connection_identified(self, connection: ControlProtocol) -> None:
        """
        Note a connection whose peer is now known; raise a
        L{RemoteControlError} to reject it.
        """

    def message_received(self, connection: ControlProtocol, message: Message) -> Any:
        """
        Process a message from the connection's peer. Returning a value or
        a Deferred is allowed; raising a core exception sends an error
        answer.
        """

    def connection_lost(self, connection: ControlProtocol, reason: Failure) -> None:
        """
        Note a connection that has closed.
        """

    def commit_barrier(self) -> Deferred | None:
        """
        Return a Deferred that fires once the changes made so far are
        stored durably, or C{None} if nothing waits. The answer to a message
        waits for it, so a peer sees an answer only for a stored change.
        """


class _Phase(enum.Enum):
    CONNECTING = "connecting"
    IDENTIFIED = "identified"
    CLOSED = "closed"


@implementer(IPushProducer, IHandshakeListener)
class ControlProtocol(amp.AMP):
    """
    One control connection, from either end.

    @param node: the node that owns this connection.
    @param expected_peer: for an outgoing connection, the address of the
        peer that was dialled; C{None} for an accepted connection.
    """

    log = Logger(namespace="roaming.control.protocol")

    def __init__(self, node: ControlNode, expected_peer: IPv4Address | None = None) -> None:
        amp.AMP.__init__(self)
        self.node = node
        self.expected_peer = expected_peer
        self.peer: IPv4Address | None = None
        self.peer_role: NodeRole | None = None
        self._phase = _Phase.CONNECTING
        self._queue: collections.deque[tuple[Message, Deferred]] = collections.deque()
        self._outstanding = 0
        self._paused = False
        self._handshake_done = False
        self._writes_while_paused = 0
        self._overflowed = False
        self._last_received = 0.0
        self._keepalive_sequence = 0
        self._keepalive_pending = False
        self._identify_call = None
        self._keepalive_call = None
        self._remote_address = "unknown address"

    @property
    def outgoing(self) -> bool:
        """
        Whether this side opened the connection.
        """
        return self.expected_peer is not None

    @property
    def identified(self) -> bool:
        """
        Whether the L{Identify} exchange has completed.
        """
        return self._phase is _Phase.IDENTIFIED

    def __repr__(self) -> str:
        return f"<ControlProtocol {self.peer or self.expected_peer or '?'} {self._phase.value}>"

    # Responder lookup.

    def locateResponder(self, name: bytes) -> Callable | None:
        # AMP answers an argument that fails to parse by closing the
        # connection; answer INVALID instead and keep it open.
        command = _COMMANDS_BY_NAME.get(name)
        if command is not None:
            return self._message_responder(command)
        responder = super().locateResponder(name)
        if responder is None:
            return None

        def guarded(box: amp.AmpBox):
            try:
                return responder(box)
            except Exception as error:
                return self._answer_invalid(name, error)

        return guarded

    def _message_responder(self, command: type[MessageCommand]) -> Callable:
        def respond(box: amp.AmpBox) -> Deferred:
            try:
                arguments = command.parseArguments(box, self)
            except Exception as error:
                return self._answer_invalid(command.commandName, error)
            deferred = self._dispatch(command, arguments)
            deferred.addCallback(command.makeResponse, self)
            return deferred.addErrback(_to_amp_error, command)

        return respond

    # Connection events.

    def connectionMade(self) -> None:
        amp.AMP.connectionMade(self)
        clock = self.node.clock
        peer = self.transport.getPeer()
        self._remote_address = str(getattr(peer, "host", peer))
        self._last_received = clock.seconds()
        self._register_producer()
        self._identify_call = clock.callLater(
            self.node.settings.identify_timeout, self._identify_timed_out
        )
        if self.outgoing:
            deferred = self.callRemote(Identify, node=self.node.address, role=self.node.role.value)
            deferred.addCallbacks(self._identify_answered, self._identify_failed)

    def _register_producer(self) -> None:
        # Register with the TCP transport below the TLS layer: a producer
        # registered with TLSMemoryBIOProtocol makes it delay every close until
        # the producer unregisters, and ClientService closes the connection
        # itself. TLS writes through to TCP once the handshake is done, so TCP
        # pauses us exactly when the peer stops reading.
        lower = getattr(self.transport, "transport", None)
        target = lower if hasattr(lower, "registerProducer") else self.transport
        target.registerProducer(self, True)

    def connectionLost(self, reason: Failure) -> None:
        was_identified = self.identified
        self._phase = _Phase.CLOSED
        for call in (self._identify_call, self._keepalive_call):
            if call is not None and call.active():
                call.cancel()
        queued, self._queue = self._queue, collections.deque()
        amp.AMP.connectionLost(self, reason)
        for _, deferred in queued:
            deferred.errback(reason)
        if not self._handshake_done and reason.check(SSL.Error):
            self._handshake_failed(reason.value)
        if was_identified:
            self.node.connection_lost(self, reason)
        else:
            self.log.info(
                "Control connection to {peer} closed before identification: {error}",
                peer=self._transport_peer(),
                error=reason.getErrorMessage(),
            )

    def _handshake_failed(self, error: SSL.Error) -> None:
        classified = classify_handshake_error(error)
        if classified is None:
            return
        reason, detail = classified
        counters = self.node.counters.tls_rejected
        counters[reason.value] += 1
        count = counters[reason.value]
        if should_log(count):
            self.log.warn(
                "Rejected control peer {peer}: {reason} ({detail}); {count} rejected for"
                " this reason so far",
                peer=self._transport_peer(),
                reason=reason.value,
                detail=detail,
                count=count,
            )

    def _protocol_error(self, reason: str, detail: str) -> None:
        """
        Count and log a peer that broke the AMP framing (rate-limited per
        reason).
        """
        counters = self.node.counters.protocol_errors
        counters[reason] += 1
        count = counters[reason]
        if should_log(count):
            self.log.warn(
                "Control peer {peer} sent invalid data: {reason} ({detail}); {count} so far",
                peer=self._peer_text(),
                reason=reason,
                detail=detail,
                count=count,
            )

    def handshakeCompleted(self) -> None:
        # IHandshakeListener: until now, pauses only mean that TLS buffers
        # our first writes during the handshake.
        self._handshake_done = True

    def close(self) -> None:
        """
        Close the connection cleanly (TLS close_notify, then TCP FIN).
        """
        if self.transport is not None:
            self.transport.loseConnection()

    def sendBox(self, box: amp.AmpBox) -> None:
        if self._overflowed:
            # Aborting takes effect later; write nothing more until then.
            return
        if self._paused and self._handshake_done:
            self._writes_while_paused += 1
            if self._writes_while_paused > self.node.settings.max_queued:
                self._overflow()
                return
        amp.AMP.sendBox(self, box)

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        self._last_received = self.node.clock.seconds()
        for key in (amp.ANSWER, amp.ERROR):
            if key in box:
                if box[key] not in self._outstandingRequests:
                    # AMP itself raises KeyError and logs a traceback.
                    self._protocol_error(
                        "unknown-answer",
                        f"{key.decode()} {box[key][:20]!r} matches no command sent",
                    )
                    return
                break
        else:
            if amp.COMMAND not in box:
                self._protocol_error(
                    "box-without-command",
                    f"a box with keys {sorted(box)[:5]!r} has no _command, _answer or _error",
                )
                self.transport.abortConnection()
                return
        amp.AMP.ampBoxReceived(self, box)

    def lengthLimitExceeded(self, length: int) -> None:
        # AMP closes the connection cleanly for a key over 255 bytes, which
        # would log nothing but "Connection done".
        self._protocol_error("malformed-box", f"a key of {length} bytes, more than 255")
        amp.AMP.lengthLimitExceeded(self, length)

    def proto_value(self, string: bytes) -> str:
        # AMP's parser accepts any number of keys per box; bound it.
        state = amp.AMP.proto_value(self, string)
        if len(self._currentBox) > MAX_BOX_KEYS:
            # Stop the length-prefix parser's loop over the rest of the data.
            self.paused = True
            self._currentBox = amp.AmpBox()
            self.node.counters.oversized_boxes += 1
            self.log.warn(
                "Control peer {peer} sent a box with more than {limit} keys; disconnecting",
                peer=self._peer_text(),
                limit=MAX_BOX_KEYS,
            )
            self.transport.abortConnection()
            return "init"
        return state

    def _transport_peer(self) -> str:
        # Kept from connectionMade, because the transport is gone by the time
        # connectionLost logs.
        return self._remote_address

    def _peer_text(self) -> str:
        if self.peer is not None:
            return f"{self.peer} ({self.peer_role})"
        return self._transport_peer()

    # Identification.

    def _certificate_addresses(self) -> list[str]:
        get_certificate = getattr(self.transport, "getPeerCertificate", None)
        certificate = get_certificate() if get_certificate is not None else None
        if certificate is None:
            return []
        return peer_certificate_names(certificate.to_cryptography())[0]

    @Identify.responder
    def _identify(self, node: IPv4Address, role: str) -> dict:
        if self.outgoing:
            raise NotIdentifiedError("Identify is sent only by the connecting side")
        if self._phase is not _Phase.CONNECTING:
            raise NotIdentifiedError(f"the connection is already identified as {self.peer}")
        peer_role = self._parse_role(role)
        addresses = self._certificate_addresses()
        if str(node) not in addresses:
            names = ", ".join(addresses) or "no IP address"
            self._identity_mismatch(f"peer says it is {node}, but its certificate names {names}")
        self._set_identified(node, peer_role)
        return {"node": self.node.address, "role": self.node.role.value}

    def _parse_role(self, role: str) -> NodeRole:
        try:
            peer_role = NodeRole(role)
        except ValueError:
            raise RemoteInvalidMessageError(f"unknown role {role!r}; expected ap or sc") from None
        if (self.node.role, peer_role) not in ALLOWED_MESSAGES:
            raise NotAllowedError(f"a {peer_role} may not connect to a {self.node.role}")
        return peer_role

    def _identity_mismatch(self, detail: str) -> None:
        self.node.counters.identity_mismatches += 1
        self.log.warn(
            "Rejected control peer {peer}: wrong-identity ({detail})",
            peer=self._transport_peer(),
            reason="wrong-identity",
            detail=detail,
        )
        raise IdentityMismatchError(detail)

    def _identify_answered(self, answer: dict) -> None:
        if self._phase is not _Phase.CONNECTING:
            return
        node, role = answer["node"], answer["role"]
        try:
            peer_role = self._parse_role(role)
            if node != self.expected_peer:
                self._identity_mismatch(f"dialled {self.expected_peer}, but the peer says {node}")
            self._set_identified(node, peer_role)
        except RemoteControlError as error:
            self.log.warn(
                "Closing control connection to {peer}: {error}",
                peer=self._transport_peer(),
                error=error,
            )
            self.close()

    def _identify_failed(self, failure: Failure) -> None:
        if self._phase is _Phase.CLOSED:
            return
        self.log.warn(
            "Control peer {peer} rejected identification: {error}",
            peer=self._transport_peer(),
            error=failure.getErrorMessage(),
        )
        self.close()

    def _set_identified(self, peer: IPv4Address, role: NodeRole) -> None:
        self.peer = peer
        self.peer_role = role
        self.node.connection_identified(self)
        self._phase = _Phase.IDENTIFIED
        if self._identify_call is not None and self._identify_call.active():
            self._identify_call.cancel()
        self._schedule_keepalive()
        self._drain()

    def _identify_timed_out(self) -> None:
        self._identify_call = None
        if self._phase is not _Phase.CONNECTING:
            return
        counters = self.node.counters
        counters.identify_timeouts += 1
        if should_log(counters.identify_timeouts):
            self.log.warn(
                "Control peer {peer} did not identify within {timeout} s; aborting"
                " ({count} such peers so far)",
                peer=self._transport_peer(),
                timeout=self.node.settings.identify_timeout,
                count=counters.identify_timeouts,
            )
        self.transport.abortConnection()

    # Receiving messages.

    def _answer_invalid(self, command_name: bytes, error: Exception) -> Deferred:
        command = command_name.decode("ascii", "replace")
        self.node.counters.errors_sent[b"INVALID"] += 1
        self.log.info(
            "Invalid {command} from control peer {peer}: {error}",
            command=command,
            peer=self._peer_text(),
            error=error,
        )
        failure = fail(RemoteInvalidMessageError(f"{command}: {error}"))
        return failure.addErrback(_to_amp_error, _COMMANDS_BY_NAME.get(command_name, Identify))

    def _dispatch(self, command: type[MessageCommand], arguments: dict) -> Deferred:
        if self._phase is not _Phase.IDENTIFIED:
            self.node.counters.errors_sent[b"NOT_IDENTIFIED"] += 1
            return fail(NotIdentifiedError("send Identify first"))
        try:
            message = from_arguments(command, arguments)
        except Exception as error:
            return self._answer_invalid(command.commandName, error)
        allowed = ALLOWED_MESSAGES[self.node.role, self.peer_role]
        if type(message) not in allowed:
            self.node.counters.errors_sent[b"NOT_ALLOWED"] += 1
            return fail(
                NotAllowedError(
                    f"a {self.peer_role} may not send {type(message).__name__} to a"
                    f" {self.node.role}"
                )
            )
        self.node.counters.received += 1
        if isinstance(message, messages.Keepalive):
            return succeed({"sequence": message.sequence})
        try:
            result = self.node.message_received(self, message)
        except Exception as error:
            return self._answer_error(message, error)
        if not isinstance(result, Deferred):
            result = self.node.commit_barrier()
            if result is None:
                return succeed({})
        return result.addCallbacks(lambda _: {}, lambda f: self._answer_error(message, f.value))

    def _answer_error(self, message: Message, error: BaseException) -> Deferred:
        remote = wire_error(error) if isinstance(error, Exception) else None
        if remote is None:
            self.log.failure(
                "Processing {message} from {peer} failed",
                Failure(error),
                message=type(message).__name__,
                peer=self._peer_text(),
            )
            remote = RemoteInternalError(f"{type(message).__name__} failed on {self.node.address}")
        code = _error_code(remote)
        self.node.counters.errors_sent[code] += 1
        self.log.info(
            "Answering {message} from {peer} with {code}: {error}",
            message=type(message).__name__,
            peer=self._peer_text(),
            code=code.decode("ascii"),
            error=remote,
        )
        return fail(remote)

    # Sending messages.

    def send(self, message: Message) -> Deferred:
        """
        Send C{message} to the peer, queueing it while the connection is
        not identified, is paused or has C{max_outstanding} commands in
        progress.

        @return: a Deferred that fires with the answer's arguments, or fails
            with the peer's L{RemoteControlError} or the connection's loss
            reason. Errors are already logged and counted.
        """
        if self._phase is _Phase.CLOSED:
            return fail(RuntimeError(f"control connection to {self.peer} is closed"))
        settings = self.node.settings
        if len(self._queue) >= settings.max_queued:
            self._overflow()
            return fail(RuntimeError(f"control connection to {self.peer} overflowed"))
        if not self._queue and self._can_send():
            return self._call(message)
        deferred: Deferred = Deferred()
        self._queue.append((message, deferred))
        self._drain()
        return deferred

    def post(self, message: Message) -> None:
        """
        Send C{message} without waiting for the answer; errors are logged
        and counted by L{send}.
        """
        self.send(message).addErrback(lambda _: None)

    @property
    def queued(self) -> int:
        """
        The number of messages waiting to be sent.
        """
        return len(self._queue)

    @property
    def outstanding(self) -> int:
        """
        The number of commands sent and not answered yet.
        """
        return self._outstanding

    def _can_send(self) -> bool:
        return (
            self._phase is _Phase.IDENTIFIED
            and not self._paused
            and self._outstanding < self.node.settings.max_outstanding
        )

    def _drain(self) -> None:
        while self._queue and self._can_send():
            message, deferred = self._queue.popleft()
            self._call(message).chainDeferred(deferred)

    def _call(self, message: Message) -> Deferred:
        command = COMMANDS[type(message)]
        self._outstanding += 1
        self.node.counters.sent += 1
        deferred = self.callRemote(command, **to_arguments(message))
        return deferred.addBoth(self._answered, message)

    def _answered(self, result: Any, message: Message) -> Any:
        self._outstanding -= 1
        if isinstance(result, Failure):
            self._log_send_failure(message, result)
        if self._phase is _Phase.IDENTIFIED:
            self._drain()
        return result

    def _log_send_failure(self, message: Message, failure: Failure) -> None:
        if failure.check(RemoteControlError):
            code = _error_code(failure.value)
            self.node.counters.remote_errors[code] += 1
            self.log.warn(
                "Control peer {peer} answered {message} with {code}: {error}",
                peer=self._peer_text(),
                message=type(message).__name__,
                code=code.decode("ascii"),
                error=failure.value,
            )

    def _overflow(self) -> None:
        if self._overflowed:
            return
        self._overflowed = True
        counters = self.node.counters
        counters.queue_overflows += 1
        if should_log(counters.queue_overflows):
            self.log.warn(
                "Control peer {peer} is not reading: {queued} messages queued and {written}"
                " boxes written since the transport paused (limit {limit} each); disconnecting"
                " ({count} such peers so far)",
                peer=self._peer_text(),
                queued=len(self._queue),
                written=self._writes_while_paused,
                limit=self.node.settings.max_queued,
                count=counters.queue_overflows,
            )
        self.transport.abortConnection()

    # IPushProducer: the transport pauses us when its send buffer is full.
    # These replace the methods of the same names that AMP's string parser
    # inherits, which would stop reading from the peer.

    def pauseProducing(self) -> None:
        if self._paused:
            return
        self._paused = True
        self._writes_while_paused = 0
        if self._handshake_done:
            self.node.counters.pauses += 1

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._drain()

    def stopProducing(self) -> None:
        self._paused = True

    # Keepalives.

    def _schedule_keepalive(self) -> None:
        interval = self.node.settings.keepalive_interval
        self._keepalive_call = self.node.clock.callLater(interval, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        self._keepalive_call = None
        if self._phase is not _Phase.IDENTIFIED:
            return
        settings = self.node.settings
        silent = self.node.clock.seconds() - self._last_received
        if silent >= settings.idle_timeout:
            self.node.counters.idle_timeouts += 1
            self.log.warn(
                "Control peer {peer} silent for {silent:.1f} s (limit {limit} s); aborting",
                peer=self._peer_text(),
                silent=silent,
                limit=settings.idle_timeout,
            )
            self.transport.abortConnection()
            return
        if not self._keepalive_pending:
            # Bypasses the queue: a paused connection still proves that we
            # are alive, and at most one keepalive is in flight.
            self._keepalive_pending = True
            self._keepalive_sequence = (self._keepalive_sequence + 1) & 0xFFFFFFFF
            deferred = self.callRemote(
                COMMANDS[messages.Keepalive], sequence=self._keepalive_sequence
            )
            deferred.addBoth(self._keepalive_answered)
        self._schedule_keepalive()

    def _keepalive_answered(self, result: Any) -> None:
        self._keepalive_pending = False


def _error_code(error: RemoteControlError) -> bytes:
    code = ERRORS.get(type(error))
    if code is None:
        code = FATAL_ERRORS.get(type(error), b"UNKNOWN")
    return code


def _to_amp_error(failure: Failure, command: type[amp.Command]) -> Failure:
    """
    Turn a declared error into the RemoteAmpError that AMP sends as an error
    box, as AMP's own responder wrapper does; anything else becomes
    C{INTERNAL}, because AMP would close the connection for it.
    """
    if failure.check(amp.RemoteAmpError):
        return failure
    error = failure.value
    code = command.allErrors.get(type(error))
    if code is None:
        error = RemoteInternalError(str(error))
        code = command.allErrors[RemoteInternalError]
    fatal = type(error) in command.fatalErrors
    return Failure(amp.RemoteAmpError(code, str(error), fatal, local=failure))


_COMMANDS_BY_NAME: dict[bytes, type[MessageCommand]] = {
    command.commandName: command for command in COMMANDS.values()
}
