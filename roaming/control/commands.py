# -*- test-case-name: tests.control.test_wire_commands -*-
"""
The AMP commands that carry the control plane's messages.

Each message class of L{roaming.control.messages} has one AMP command here
with the same field names as its arguments, so L{to_arguments} and
L{from_arguments} convert between the two. Every command also declares the
error codes that a receiver may answer with; a receiver that cannot use a
message answers with an AMP error box and keeps the connection open.

One command has no message class: L{Identify}, the first command on every
connection, in which the connecting node names its address and role. The
accepting node checks that name against the certificate that the TLS
handshake verified.

Wire encodings of the custom argument types:

  - a MAC address is its 6 bytes;
  - an IPv4 address is its dotted-quad text (C{10.0.0.1});
  - a subnet is its CIDR text (C{10.0.0.0/24}).

Text forms are used for addresses so that a packet capture of decrypted
traffic reads without a decoder.
"""

from __future__ import annotations

import enum
import functools
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import attrs
from twisted.protocols import amp

from roaming.control import messages
from roaming.control.clientdb import DatabaseFullError
from roaming.control.messages import (
    ControlError,
    InvalidMessageError,
    Message,
    NoHomeAccessPointError,
    NoHomeControllerError,
    UnexpectedMessageError,
)
from roaming.errors import DecodeError

__all__ = [
    "COMMANDS",
    "ERRORS",
    "FATAL_ERRORS",
    "AddTravelerCommand",
    "ApAddTravelerCommand",
    "ApDeleteTravelerCommand",
    "ApRegisterCommand",
    "DeleteTravelerCommand",
    "DeleteVisitorCommand",
    "DiscoveryRoundCommand",
    "IPv4AddressArgument",
    "IPv4NetworkArgument",
    "IappAddCommand",
    "IappMoveCommand",
    "Identify",
    "IdentityMismatchError",
    "KeepaliveCommand",
    "MacAddress",
    "MessageCommand",
    "MscAddTravelerCommand",
    "MscDeleteTravelerCommand",
    "MscDeleteVisitorCommand",
    "NodeRole",
    "NotAllowedError",
    "NotIdentifiedError",
    "RemoteControlError",
    "RemoteInternalError",
    "RemoteInvalidMessageError",
    "RemoteNoHomeAccessPointError",
    "RemoteNoHomeControllerError",
    "RemoteTableFullError",
    "RemoteUnexpectedMessageError",
    "ScAnnounceCommand",
    "ScRegisterCommand",
    "ScWithdrawCommand",
    "arguments_for",
    "command_for",
    "from_arguments",
    "to_arguments",
    "wire_error",
]


class NodeRole(enum.StrEnum):
    """
    The role a node announces in L{Identify}.
    """

    AP = "ap"
    SC = "sc"


# Error classes carried in AMP error boxes.  AMP rebuilds the exception on
# the sending side by calling the class with the error description alone, so
# these take one argument, unlike the core's exceptions.


class RemoteControlError(ControlError):
    """
    Base class of the errors that a peer returns in an AMP error box.

    The argument is the peer's description of the error, as AMP delivers
    it (C{bytes}) or as the receiver raises it (C{str}).
    """

    def __init__(self, description: bytes | str = "") -> None:
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        super().__init__(description)
        self.description = description


class RemoteInvalidMessageError(RemoteControlError):
    """
    The peer could not parse or validate a message (a missing argument, a
    bad encoding or a field out of range).
    """


class RemoteNoHomeAccessPointError(RemoteControlError):
    """
    The home SC controls no AP in the traveler's subnet.
    """


class RemoteNoHomeControllerError(RemoteControlError):
    """
    No SC known to the peer serves the client's subnet.
    """


class RemoteUnexpectedMessageError(RemoteControlError):
    """
    The peer's state machine does not accept the message now, or the sender
    may not send it.
    """


class RemoteTableFullError(RemoteControlError):
    """
    A bounded table on the peer (clients, SCs) is full.
    """


class RemoteInternalError(RemoteControlError):
    """
    The peer failed while processing the message; its log has the details.
    """


class NotIdentifiedError(RemoteControlError):
    """
    A command other than L{Identify} arrived before the connection was
    identified, or L{Identify} arrived twice.
    """


class NotAllowedError(RemoteControlError):
    """
    The sender's role may not send this message to the receiver's role (an
    AP sending an SC-to-SC notice, for example).
    """


class IdentityMismatchError(RemoteControlError):
    """
    The address in L{Identify} is not in the peer's certificate, or is not
    the peer that was dialled. This error closes the connection.
    """


#: Every non-fatal error code, by class; every command declares all of them.
ERRORS: dict[type[Exception], bytes] = {
    RemoteInvalidMessageError: b"INVALID",
    RemoteNoHomeAccessPointError: b"NO_HOME_AP",
    RemoteNoHomeControllerError: b"NO_HOME_SC",
    RemoteUnexpectedMessageError: b"UNEXPECTED",
    RemoteTableFullError: b"FULL",
    RemoteInternalError: b"INTERNAL",
    NotIdentifiedError: b"NOT_IDENTIFIED",
    NotAllowedError: b"NOT_ALLOWED",
}
#: Error codes after which the sender of the error closes the connection.
FATAL_ERRORS: dict[type[Exception], bytes] = {IdentityMismatchError: b"IDENTITY"}

# The core's exceptions and the error each becomes on the wire.  Checked in
# order with isinstance, so subclasses come first.
_WIRE_ERRORS: tuple[tuple[type[Exception], type[RemoteControlError]], ...] = (
    (RemoteControlError, RemoteControlError),
    (InvalidMessageError, RemoteInvalidMessageError),
    (DecodeError, RemoteInvalidMessageError),
    (NoHomeAccessPointError, RemoteNoHomeAccessPointError),
    (NoHomeControllerError, RemoteNoHomeControllerError),
    (UnexpectedMessageError, RemoteUnexpectedMessageError),
    (DatabaseFullError, RemoteTableFullError),
)


def wire_error(error: Exception) -> RemoteControlError | None:
    """
    Return the error to send for a core exception, or C{None} if the
    exception is not one the core raises on purpose (a bug to log).
    """
    for local, remote in _WIRE_ERRORS:
        if isinstance(error, local):
            if isinstance(error, RemoteControlError):
                return error
            return remote(str(error))
    return None


# Argument types.


def _invalid(field: str, message: str) -> InvalidMessageError:
    return InvalidMessageError(field, message)


class MacAddress(amp.Argument):
    """
    A MAC address as its 6 bytes.
    """

    def fromString(self, inString: bytes) -> bytes:
        if len(inString) != 6:
            raise _invalid("mac", f"{len(inString)} bytes, expected 6")
        return inString

    def toString(self, inObject: bytes) -> bytes:
        return bytes(inObject)


class IPv4AddressArgument(amp.Argument):
    """
    An IPv4 address as dotted-quad ASCII text.
    """

    def fromString(self, inString: bytes) -> IPv4Address:
        try:
            return _parse_address(inString)
        except (UnicodeDecodeError, ValueError):
            raise _invalid("address", f"{inString[:40]!r} is not an IPv4 address") from None

    def toString(self, inObject: IPv4Address) -> bytes:
        address = inObject if isinstance(inObject, IPv4Address) else IPv4Address(inObject)
        # inet_ntoa formats the same dotted quad as str(), several times faster.
        return socket.inet_ntoa(address.packed).encode("ascii")


# Most addresses in a message are those of the few APs and SCs, so a small
# cache saves the slow strict parse of ipaddress for them. Invalid input
# raises and is not cached.
@functools.lru_cache(maxsize=4096)
def _parse_address(data: bytes) -> IPv4Address:
    return IPv4Address(data.decode("ascii"))


class IPv4NetworkArgument(amp.Argument):
    """
    An IPv4 subnet as CIDR ASCII text; host bits must be zero.
    """

    def fromString(self, inString: bytes) -> IPv4Network:
        try:
            return IPv4Network(inString.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise _invalid("subnet", f"{inString[:40]!r} is not an IPv4 subnet") from None

    def toString(self, inObject: IPv4Network) -> bytes:
        return str(IPv4Network(inObject)).encode("ascii")


class MessageCommand(amp.Command):
    """
    Base class of the commands that carry a message class.

    @cvar message_type: the message class this command carries.
    """

    message_type: type[Message]
    errors = ERRORS
    fatalErrors = FATAL_ERRORS
    response: list = []

    # AMP's generic argument code converts every name between bytes and str
    # on each call. These methods do the same work from a table built once
    # per command.

    def __init__(self, **kw: Any) -> None:
        # amp.Command.__init__ converts every name to find missing arguments.
        missing = [
            name
            for _, name, argument in self._wire_arguments()
            if not argument.optional and kw.get(name) is None
        ]
        if missing:
            raise amp.InvalidSignature(f"forgot {', '.join(missing)} for {self.commandName!r}")
        self.structured = kw

    @classmethod
    def makeArguments(cls, objects: dict[str, Any], proto: Any) -> amp.AmpBox:
        box = amp.AmpBox()
        for wire_name, name, argument in cls._wire_arguments():
            value = objects.get(name)
            if value is None:
                if argument.optional:
                    continue
                raise KeyError(f"{cls.__name__} needs argument {name!r}")
            box[wire_name] = argument.toString(value)
        return box

    @classmethod
    def parseArguments(cls, box: amp.AmpBox, proto: Any) -> dict[str, Any]:
        objects: dict[str, Any] = {}
        for wire_name, name, argument in cls._wire_arguments():
            value = box.get(wire_name)
            if value is None:
                if not argument.optional:
                    raise _invalid(name, "missing")
                objects[name] = None
            else:
                objects[name] = argument.fromString(value)
        return objects

    @classmethod
    def _wire_arguments(cls) -> list[tuple[bytes, str, amp.Argument]]:
        table = cls.__dict__.get("_wire_table")
        if table is None:
            table = [(wire, wire.decode("ascii"), argument) for wire, argument in cls.arguments]
            cls._wire_table = table
        return table


# Wire argument for each field annotation of the message classes.  A field
# with a default is optional on the wire, so a newer sender may omit it.
_ARGUMENT_TYPES: dict[str, Callable[[bool], amp.Argument]] = {
    "IPv4Address": lambda optional: IPv4AddressArgument(optional=optional),
    "IPv4Address | None": lambda optional: IPv4AddressArgument(optional=True),
    "int": lambda optional: amp.Integer(optional=optional),
    "int | None": lambda optional: amp.Integer(optional=True),
    "bytes": lambda optional: amp.String(optional=optional),
    "tuple[IPv4Network, ...]": lambda optional: amp.ListOf(IPv4NetworkArgument(), optional),
    "tuple[int, ...]": lambda optional: amp.ListOf(amp.Integer(), optional),
}


def arguments_for(message_type: type[Message]) -> list[tuple[bytes, amp.Argument]]:
    """
    Return the AMP argument list for C{message_type}: one argument per attrs
    field, with the field's name.

    @raise TypeError: for a field whose annotation has no wire encoding here.
    """
    arguments = []
    for field in attrs.fields(message_type):
        optional = field.default is not attrs.NOTHING
        if field.name == "mac":
            argument: amp.Argument = MacAddress(optional=optional)
        elif field.type in _ARGUMENT_TYPES:
            argument = _ARGUMENT_TYPES[field.type](optional)
        else:
            raise TypeError(
                f"{message_type.__name__}.{field.name} has type {field.type!r}, which has no"
                " AMP encoding; add one to roaming.control.commands"
            )
        arguments.append((field.name.encode("ascii"), argument))
    return arguments


def _command(message_type: type[Message], response: list | None = None) -> type[MessageCommand]:
    name = message_type.__name__
    namespace = {
        "commandName": name.encode("ascii"),
        "message_type": message_type,
        "arguments": arguments_for(message_type),
        "response": response if response is not None else [],
        "errors": ERRORS,
        "fatalErrors": FATAL_ERRORS,
        "__doc__": f"The AMP command that carries L{{roaming.control.messages.{name}}}.",
        "__module__": __name__,
    }
    return type(f"{name}Command", (MessageCommand,), namespace)


# Discovery.
ScRegisterCommand = _command(messages.ScRegister)
ScAnnounceCommand = _command(messages.ScAnnounce)
ScWithdrawCommand = _command(messages.ScWithdraw)
DiscoveryRoundCommand = _command(messages.DiscoveryRound)
ApRegisterCommand = _command(messages.ApRegister)
KeepaliveCommand = _command(messages.Keepalive, response=[(b"sequence", amp.Integer())])

# Client details.
IappAddCommand = _command(messages.IappAdd)
IappMoveCommand = _command(messages.IappMove)

# Traveler and visitor notices.
ApAddTravelerCommand = _command(messages.ApAddTraveler)
ApDeleteTravelerCommand = _command(messages.ApDeleteTraveler)
MscAddTravelerCommand = _command(messages.MscAddTraveler)
MscDeleteTravelerCommand = _command(messages.MscDeleteTraveler)
MscDeleteVisitorCommand = _command(messages.MscDeleteVisitor)
AddTravelerCommand = _command(messages.AddTraveler)
DeleteTravelerCommand = _command(messages.DeleteTraveler)
DeleteVisitorCommand = _command(messages.DeleteVisitor)

#: The command for each message class.
COMMANDS: dict[type[Message], type[MessageCommand]] = {
    command.message_type: command
    for command in (
        ScRegisterCommand,
        ScAnnounceCommand,
        ScWithdrawCommand,
        DiscoveryRoundCommand,
        ApRegisterCommand,
        KeepaliveCommand,
        IappAddCommand,
        IappMoveCommand,
        ApAddTravelerCommand,
        ApDeleteTravelerCommand,
        MscAddTravelerCommand,
        MscDeleteTravelerCommand,
        MscDeleteVisitorCommand,
        AddTravelerCommand,
        DeleteTravelerCommand,
        DeleteVisitorCommand,
    )
}


class Identify(amp.Command):
    """
    Name the connecting node: the first command on every connection.

    The connecting node sends its address and role; the accepting node
    answers with its own. The accepting node rejects the connection with
    C{IDENTITY} unless C{node} is an IP subjectAltName of the client's
    certificate.
    """

    commandName = b"Identify"
    arguments = [(b"node", IPv4AddressArgument()), (b"role", amp.Unicode())]
    response = [(b"node", IPv4AddressArgument()), (b"role", amp.Unicode())]
    errors = ERRORS
    fatalErrors = FATAL_ERRORS


def command_for(message_type: type[Message]) -> type[MessageCommand]:
    """
    Return the command that carries C{message_type}.

    @raise KeyError: for a class that is not a control message.
    """
    return COMMANDS[message_type]


def to_arguments(message: Message) -> dict[str, Any]:
    """
    Return C{message}'s fields as the keyword arguments of its command's
    C{callRemote}.
    """
    # ListOf encodes any iterable, so the message's tuples go as they are.
    return {name: getattr(message, name) for name in _field_names(type(message))}


def _field_names(message_type: type[Message]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(message_type)
    if names is None:
        names = _FIELD_NAMES[message_type] = tuple(f.name for f in attrs.fields(message_type))
    return names


_FIELD_NAMES: dict[type[Message], tuple[str, ...]] = {}


def from_arguments(command: type[MessageCommand], arguments: dict[str, Any]) -> Message:
    """
    Build the message that C{command}'s parsed C{arguments} describe; an
    omitted optional argument takes the field's default.

    @raise InvalidMessageError: if a field fails the message's validation.
    """
    present = {name: value for name, value in arguments.items() if value is not None}
    for field in attrs.fields(command.message_type):
        if field.name in arguments and field.name not in present and field.default is None:
            present[field.name] = None
    try:
        return command.message_type(**present)
    except InvalidMessageError:
        raise
    except (TypeError, ValueError) as error:
        raise InvalidMessageError(command.message_type.__name__, str(error)) from None
