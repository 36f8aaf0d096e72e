"""Signed checkpoints of the audit chain: Merkle roots of event hashes, signed by a key outside the database.

The hash chain proves the events agree with each other, not that they are the ones recorded: someone
who owns the database can lift the triggers, rewrite an event and recompute every later hash and the
chain head. A checkpoint pins the hashes of a range of events under an Ed25519 signature whose private
key never enters the database, so such a rewrite no longer verifies. Checkpoints chain to each other
(`prev_root`) and tile the events from 1 without gaps or overlaps, so a deleted checkpoint shows too.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_timestamp, event_hash
from audit.models import AuditChainHead, AuditEvent, Checkpoint

# Names the checkpoint lock among PostgreSQL advisory locks of this database ("chkpt" in ASCII);
# distinct from the append lock, so making a checkpoint never holds up recording events.
PG_CHECKPOINT_LOCK = 0x63686B7074
# Prefix of every signed message: a signature made for anything else (or a later format) never
# verifies as a checkpoint of this format.
MESSAGE_VERSION = "hisplatform-audit-checkpoint-v1"
# A lost race (another creator committed first) is retried this often; more would mean creators
# are started far more often than the 15-minute beat does.
_ATTEMPTS = 3
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Group and other permission bits: a private key anyone else can read lets them sign forgeries.
_LOOSE_BITS = stat.S_IRWXG | stat.S_IRWXO


logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint could not be made; nothing was written. The message is one sentence for an operator."""


class CheckpointKeyError(CheckpointError):
    """The signing or verification key is not configured, missing, unreadable or of the wrong kind."""


class CheckpointsOff(CheckpointKeyError):
    """No signing key is configured (AUDIT_SIGNING_KEY_FILE empty): checkpoints are switched off."""


# ---------------------------------------------------------------------------------------------------
# Merkle tree (RFC 6962, section 2.1)


def _leaf(hash_hex: str) -> bytes:
    digest = bytes.fromhex(hash_hex)
    if len(digest) != 32:
        raise ValueError(f"{hash_hex[:70]!r} is not a SHA-256 digest in hex.")
    return hashlib.sha256(b"\x00" + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """An RFC 6962 Merkle tree fed one leaf at a time, holding only O(log n) digests.

    Only the roots of the complete subtrees so far are kept (one per set bit of the leaf count);
    folding them from the right gives the root RFC 6962 defines by splitting at the largest power
    of two below n. No recursion, so a million leaves cost 32 bytes times about twenty.
    """

    __slots__ = ("_subtrees", "size")

    def __init__(self) -> None:
        self._subtrees: list[tuple[int, bytes]] = []  # (leaves, digest), larger subtrees first
        self.size = 0

    def add(self, hash_hex: str) -> None:
        """Append one leaf: an event hash in hex. ValueError when it is not 32 bytes of hex."""
        digest, leaves = _leaf(hash_hex), 1
        while self._subtrees and self._subtrees[-1][0] == leaves:
            _, left = self._subtrees.pop()
            digest, leaves = _node(left, digest), leaves * 2
        self._subtrees.append((leaves, digest))
        self.size += 1

    def root(self) -> str:
        if not self._subtrees:
            return hashlib.sha256(b"").hexdigest()  # MTH({}) in RFC 6962
        digest = self._subtrees[-1][1]
        for _, left in reversed(self._subtrees[:-1]):
            digest = _node(left, digest)
        return digest.hex()


def merkle_root(hashes: Iterable[str]) -> str:
    """The RFC 6962 Merkle tree hash of event hashes (hex) in seq order, as hex."""
    tree = MerkleTree()
    for hash_hex in hashes:
        tree.add(hash_hex)
    return tree.root()


# ---------------------------------------------------------------------------------------------------
# What is signed


def checkpoint_message(
    *, seq_from: int, seq_to: int, root: str, prev_root: str, created_at: dt.datetime
) -> bytes:
    """The exact bytes a checkpoint's signature covers: a version line, then one field per line.

    Every field has a fixed alphabet without newlines (decimal, lower-case hex, an ISO timestamp in
    UTC with microseconds), so no two checkpoints share a message. ValueError for a malformed field.
    """
    if not (1 <= seq_from <= seq_to):
        raise ValueError(f"a checkpoint must cover 1 <= seq_from <= seq_to, not {seq_from}-{seq_to}.")
    for name, value in (("root", root), ("prev_root", prev_root)):
        if not _HEX64.fullmatch(value):
            raise ValueError(f"the checkpoint's {name} is not 64 lower-case hex digits.")
    lines = (MESSAGE_VERSION, str(seq_from), str(seq_to), root, prev_root, canonical_timestamp(created_at))
    return "\n".join(lines).encode("ascii")


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: names the key in each checkpoint row."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# ---------------------------------------------------------------------------------------------------
# Keys


def _loose(mode: int) -> int | None:
    """The permission bits when group or others have any access, else None."""
    bits = stat.S_IMODE(mode)
    return bits if os.name == "posix" and bits & _LOOSE_BITS else None


class _KeyFileMissing(CheckpointKeyError):
    """The file does not exist: with DEBUG a signing key is then made; before any checkpoint, no news."""


def _read_key_file(path: Path, what: str) -> tuple[bytes, int]:
    """The file's bytes and st_mode, or CheckpointKeyError saying in one sentence what is wrong."""
    try:
        with path.open("rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise _KeyFileMissing(f"The {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise CheckpointKeyError(f"The {what} file {path} is a directory, not a PEM file.") from None
    except OSError as error:
        raise CheckpointKeyError(
            f"The {what} file {path} cannot be read ({error.strerror or error})."
        ) from None


def _parse_private_key(data: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CheckpointKeyError(
            f"The audit signing key file {path} is encrypted; it must hold an unencrypted PEM key, "
            "protected by its file mode instead."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CheckpointKeyError(
            f"The audit signing key file {path} does not hold a PEM private key."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(
            f"The audit signing key file {path} holds a key of type {type(key).__name__}, not an Ed25519 key."
        )
    return key


def _signing_key_path() -> Path:
    configured: str = settings.AUDIT_SIGNING_KEY_FILE
    if not configured:
        raise CheckpointsOff(
            "Signed checkpoints are off: AUDIT_SIGNING_KEY_FILE is not set (set it to the path of the "
            "Ed25519 private key, made by `manage.py audit_checkpoint --init-key`)."
        )
    return Path(configured)


def load_signing_key() -> Ed25519PrivateKey:
    """The private key of AUDIT_SIGNING_KEY_FILE, ready to sign; CheckpointKeyError otherwise.

    With DEBUG a missing file is created (mode 0600) so that the demo signs from the start; without
    DEBUG it is an error, since a new key nobody has the public half of proves nothing. A file that
    group or others may access is refused: whoever can read it can sign forged checkpoints.
    """
    path = _signing_key_path()
    try:
        data, mode = _read_key_file(path, "audit signing key")
    except _KeyFileMissing:
        if not settings.DEBUG:
            raise CheckpointKeyError(
                f"The audit signing key file {path} does not exist; create it with "
                "`manage.py audit_checkpoint --init-key`."
            ) from None
        try:
            _write_exclusive(path, _private_pem(Ed25519PrivateKey.generate()), mode=0o600)
        except FileExistsError:
            pass  # another process made it just now: use theirs
        except OSError as error:
            raise CheckpointKeyError(
                f"Cannot create the audit signing key file {path} ({error.strerror or error})."
            ) from None
        data, mode = _read_key_file(path, "audit signing key")
    loose = _loose(mode)
    if loose is not None:
        raise CheckpointKeyError(
            f"The audit signing key file {path} is open to other users (mode {loose:04o}); "
            f"`chmod 600 {path}` so that only this service can sign."
        )
    return _parse_private_key(data, path)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_exclusive(path: Path, data: bytes, *, mode: int, directory_mode: int = 0o700) -> None:
    """Write a complete file at `path` with `mode`, or raise FileExistsError and leave what is there.

    Written to a temporary file beside it and hard-linked into place: the link fails if the path
    exists, so nothing is ever overwritten, and no reader sees a half-written key.
    """
    path.parent.mkdir(mode=directory_mode, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


@dataclasses.dataclass(frozen=True, slots=True)
class NewSigningKey:
    path: Path
    key_id: str
    public_pem: str
    # AUDIT_VERIFY_KEY_FILE, when configured and absent, receives the public key; None otherwise.
    verify_path: Path | None


def signing_key_create() -> NewSigningKey:
    """Write a new Ed25519 key pair to AUDIT_SIGNING_KEY_FILE (0600); never replaces an existing file.

    The public key also goes to AUDIT_VERIFY_KEY_FILE when that is configured and does not exist yet.
    """
    path = _signing_key_path()
    key = Ed25519PrivateKey.generate()
    try:
        _write_exclusive(path, _private_pem(key), mode=0o600)
    except FileExistsError:
        raise CheckpointKeyError(
            f"The audit signing key file {path} already exists; it is not replaced (checkpoints signed "
            "with it would stop verifying). Move it away first to start a new key."
        ) from None
    except OSError as error:
        raise CheckpointKeyError(f"Cannot write {path} ({error.strerror or error}).") from None
    public_key = key.public_key()
    pem = public_key_pem(public_key)
    verify_path: Path | None = None
    configured: str = settings.AUDIT_VERIFY_KEY_FILE
    if configured:
        try:
            _write_exclusive(Path(configured), pem.encode("ascii"), mode=0o644, directory_mode=0o755)
            verify_path = Path(configured)
        except OSError:
            pass  # it exists (or cannot be written): the operator adds the printed PEM to it
    return NewSigningKey(path=path, key_id=key_id(public_key), public_pem=pem, verify_path=verify_path)


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyKeys:
    """Public keys by key id, where they came from, and what an operator should know about them."""

    keys: Mapping[str, Ed25519PublicKey]
    source: str
    warnings: tuple[str, ...] = ()


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def load_verify_keys() -> VerifyKeys | None:
    """The keys checkpoints are verified with; None when neither key setting is configured.

    AUDIT_VERIFY_KEY_FILE, when set, is used alone: one or more PEM public keys (several after a key
    was replaced, so that older checkpoints still verify), and no private key is needed. Otherwise
    the public half of AUDIT_SIGNING_KEY_FILE. CheckpointKeyError for a configured file that is
    missing, unreadable or holds something else.
    """
    verify_file: str = settings.AUDIT_VERIFY_KEY_FILE
    if verify_file:
        return _load_public_keys(Path(verify_file))
    signing_file: str = settings.AUDIT_SIGNING_KEY_FILE
    if not signing_file:
        return None
    path = Path(signing_file)
    data, mode = _read_key_file(path, "audit signing key")
    private_key = _parse_private_key(data, path)
    warnings: tuple[str, ...] = ()
    loose = _loose(mode)
    if loose is not None:
        warnings = (
            f"the audit signing key file {path} is open to other users (mode {loose:04o}): anyone who "
            "can read it can sign forged checkpoints; `chmod 600` it and consider a new key.",
        )
    public_key = private_key.public_key()
    return VerifyKeys(keys={key_id(public_key): public_key}, source=str(path), warnings=warnings)


def _load_public_keys(path: Path) -> VerifyKeys:
    data, _ = _read_key_file(path, "audit verification key")
    blocks = list(_PEM_BLOCK.finditer(data))
    if any(block.group(1).endswith(b"PRIVATE KEY") for block in blocks):
        raise CheckpointKeyError(
            f"The audit verification key file {path} holds a private key; it must hold only the public "
            "key (printed by `manage.py audit_checkpoint --init-key`), so that verifiers cannot sign."
        )
    keys: dict[str, Ed25519PublicKey] = {}
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block.group(0))
        except (ValueError, UnsupportedAlgorithm):
            raise CheckpointKeyError(
                f"The audit verification key file {path} holds a malformed PEM key."
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointKeyError(
                f"The audit verification key file {path} holds a key of type {type(key).__name__}, "
                "not an Ed25519 key."
            )
        keys[key_id(key)] = key
    if not keys:
        raise CheckpointKeyError(f"The audit verification key file {path} holds no PEM public key.")
    return VerifyKeys(keys=keys, source=str(path))


# ---------------------------------------------------------------------------------------------------
# Making a checkpoint


def _iter_events(
    using: str, columns: tuple[str, ...], after: int, upto: int, chunk_size: int
) -> Iterator[tuple[Any, ...]]:
    """Events with after < seq <= upto by seq, as tuples of `columns` (seq first), in keyset chunks."""
    events = AuditEvent.objects.using(using).filter(seq__lte=upto).order_by("seq")
    last = after
    while last < upto:
        chunk = list(events.filter(seq__gt=last).values_list(*columns)[:chunk_size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][0]


def _latest(using: str) -> tuple[int, str] | None:
    """The newest checkpoint's (seq_to, root)."""
    return Checkpoint.objects.using(using).order_by("-seq_to").values_list("seq_to", "root").first()


_COLUMNS = (*HASHED_FIELDS, "hash")


def _covered_range_root(using: str, seq_from: int, seq_to: int, chunk_size: int) -> str:
    """The Merkle root of events seq_from..seq_to, after checking that they are an unbroken chain.

    Each event's hash must match its contents and link to the one before, the first to the event
    the previous checkpoint ended at (or genesis): a chain already broken is never signed over.
    """
    if seq_from == 1:
        prev_hash = GENESIS_HASH
    else:
        found = (
            AuditEvent.objects.using(using).filter(seq=seq_from - 1).values_list("hash", flat=True).first()
        )
        if found is None:
            raise CheckpointError(
                f"Event {seq_from - 1}, where the previous checkpoint ends, is missing: the chain is "
                "broken; run `manage.py audit_verify`. Nothing was signed."
            )
        prev_hash = found
    tree = MerkleTree()
    expected = seq_from
    for row in _iter_events(using, _COLUMNS, seq_from - 1, seq_to, chunk_size):
        values = dict(zip(_COLUMNS, row, strict=True))
        seq: int = values["seq"]
        if seq != expected:
            problem = f"event {expected} is missing"
        elif values["prev_hash"] != prev_hash:
            problem = f"event {seq} does not link to the event before it"
        elif event_hash(values) != values["hash"]:
            problem = f"event {seq}'s contents do not match its hash"
        else:
            problem = ""
        if problem:
            raise CheckpointError(
                f"The audit chain is broken ({problem}); run `manage.py audit_verify`. Nothing was signed."
            )
        tree.add(values["hash"])
        prev_hash = values["hash"]
        expected += 1
    if expected != seq_to + 1:
        raise CheckpointError(
            f"The audit chain is broken (events {expected}-{seq_to} are missing below the chain head); "
            "run `manage.py audit_verify`. Nothing was signed."
        )
    return tree.root()


def checkpoint_create(
    *, now: dt.datetime | None = None, chunk_size: int = 5_000, using: str = DEFAULT_DB_ALIAS
) -> Checkpoint | None:
    """Sign the events since the last checkpoint, up to the chain head; None when there are none.

    The events are read and checked without any lock (appends go on meanwhile; the head read first
    bounds the range). Then, in a short transaction under the checkpoint lock, the last checkpoint is
    read again: if another creator got there first, the work is redone from its end, so checkpoints
    never overlap (UNIQUE(seq_to) is the backstop). Raises CheckpointKeyError for key trouble
    (CheckpointsOff when no key is configured) and CheckpointError for a broken chain.
    """
    key = load_signing_key()
    signer_id = key_id(key.public_key())
    for _ in range(_ATTEMPTS):
        latest = _latest(using)
        head = AuditChainHead.objects.using(using).filter(pk=1).values_list("seq", "hash").first()
        seq_from = (latest[0] if latest else 0) + 1
        head_seq = head[0] if head is not None else 0
        if head_seq < seq_from - 1:
            raise CheckpointError(
                f"The audit chain head (event {head_seq}) is behind the last checkpoint (event "
                f"{seq_from - 1}): signed events were removed; run `manage.py audit_verify`."
            )
        if head is None or head_seq < seq_from:
            return None
        seq_to = head[0]
        root = _covered_range_root(using, seq_from, seq_to, chunk_size)
        prev_root = latest[1] if latest else GENESIS_HASH
        created_at = now if now is not None else timezone.now()
        try:
            message = checkpoint_message(
                seq_from=seq_from, seq_to=seq_to, root=root, prev_root=prev_root, created_at=created_at
            )
        except ValueError as error:  # only a tampered last checkpoint row gets here
            raise CheckpointError(
                f"The last checkpoint cannot be built on ({error}); run `manage.py audit_verify`."
            ) from None
        checkpoint = Checkpoint(
            seq_from=seq_from,
            seq_to=seq_to,
            root=root,
            prev_root=prev_root,
            created_at=created_at,
            key_id=signer_id,
            signature=base64.b64encode(key.sign(message)).decode("ascii"),
        )
        try:
            with transaction.atomic(using=using):
                _lock(using)
                if _latest(using) != latest:
                    continue  # another creator committed first; start again from its end
                checkpoint.save(using=using, force_insert=True)
        except IntegrityError:
            continue  # the same range, inserted by a creator the lock did not see
        _anchor(checkpoint)
        return checkpoint
    return None


def _anchor_path() -> Path | None:
    configured = str(getattr(settings, "AUDIT_CHECKPOINT_LOG", "") or "")
    return Path(configured) if configured else None


def _anchor(checkpoint: Checkpoint) -> None:
    """Append the checkpoint to a log outside the database: deleting checkpoint rows, which the database
    alone cannot show, then fails `audit_verify`. A failure to write it leaves the checkpoint standing."""
    path = _anchor_path()
    if path is None:
        return
    line = json.dumps(
        {"seq_from": checkpoint.seq_from, "seq_to": checkpoint.seq_to, "root": checkpoint.root,
         "key_id": checkpoint.key_id, "created_at": checkpoint.created_at.isoformat()},
        sort_keys=True,
    )  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())
    except OSError:
        logger.exception(
            "Checkpoint %s-%s could not be written to %s.", checkpoint.seq_from, checkpoint.seq_to, path
        )


def anchor_problem(*, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The first checkpoint logged outside the database that the database no longer holds as logged."""
    path = _anchor_path()
    if path is None or not path.exists():
        return None
    held = {
        seq_to: (seq_from, root)
        for seq_from, seq_to, root in Checkpoint.objects.using(using).values_list(
            "seq_from", "seq_to", "root"
        )
    }
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        return f"the checkpoint log {path} cannot be read ({error.strerror or error})."
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            logged = json.loads(line)
            seq_from, seq_to, root = int(logged["seq_from"]), int(logged["seq_to"]), str(logged["root"])
        except (ValueError, KeyError, TypeError):
            return f"line {number} of the checkpoint log {path} is not a checkpoint."
        found = held.get(seq_to)
        if found is None:
            return (
                f"checkpoint #{seq_from}-#{seq_to}, logged outside the database, is missing from it "
                "(deleted): the events it covered may have been rewritten."
            )
        if found != (seq_from, root):
            return f"checkpoint #{seq_from}-#{seq_to} differs from the one logged outside the database (rewritten)."  # noqa: E501
    return None


def _lock(using: str) -> None:
    """Serialise creators for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the transaction is BEGIN IMMEDIATE
    (required by the audit store, see audit.services), which already holds the write lock.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_CHECKPOINT_LOCK])


# ---------------------------------------------------------------------------------------------------
# Verifying checkpoints

CheckpointProblemKind = Literal[
    "no_key", "key_error", "gap", "overlap", "prev_root", "unknown_key", "bad_signature", "rewritten",
    "beyond_chain",
]  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointProblem:
    """The first thing wrong: which checkpoint (by its event range), what kind, in words."""

    kind: CheckpointProblemKind
    detail: str
    checkpoint_id: int | None = None
    seq_from: int | None = None
    seq_to: int | None = None

    @property
    def checkpoint(self) -> str:
        if self.checkpoint_id is None:
            return "the checkpoints"
        return f"checkpoint #{self.seq_from}-#{self.seq_to}"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointReport:
    """How many checkpoints there are and verified, the events they cover, and the first problem."""

    total: int
    verified: int
    # Every event up to this seq is under a verified signature (0: none).
    covered_to: int
    problem: CheckpointProblem | None
    warnings: tuple[str, ...] = ()
    # When the first event after covered_to happened: a long wait suggests checkpoints have stopped
    # (or the newest ones were deleted, which no check on the database alone can tell).
    first_unsigned_at: dt.datetime | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclasses.dataclass(frozen=True, slots=True)
class _Row:
    id: int
    seq_from: int
    seq_to: int
    root: str
    prev_root: str
    created_at: dt.datetime
    key_id: str
    signature: str


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _events(first: int, last: int) -> str:
    return f"event {first}" if first == last else f"events {first}-{last}"


def _structure_problem(row: _Row, previous: _Row | None) -> CheckpointProblem | None:
    """Gaps, overlaps and a broken prev_root link: what deleting or inserting a checkpoint leaves."""
    where = {"checkpoint_id": row.id, "seq_from": row.seq_from, "seq_to": row.seq_to}
    expected_from = previous.seq_to + 1 if previous is not None else 1
    before = f"checkpoint #{previous.seq_from}-#{previous.seq_to}" if previous is not None else None
    if row.seq_from > expected_from:
        return CheckpointProblem(
            "gap",
            f"{_events(expected_from, row.seq_from - 1)} before it "
            f"{'(after ' + before + ') ' if before else ''}are covered by no checkpoint: a checkpoint was "
            "deleted.",
            **where,
        )
    if row.seq_from < expected_from or row.seq_from > row.seq_to:
        return CheckpointProblem(
            "overlap",
            f"it claims events {row.seq_from}-{row.seq_to}, but the checkpoints before it already end at "
            f"event {expected_from - 1}: a checkpoint was inserted or altered.",
            **where,
        )
    expected_root = previous.root if previous is not None else GENESIS_HASH
    if row.prev_root != expected_root:
        return CheckpointProblem(
            "prev_root",
            f"its prev_root does not match {'the root of ' + before if before else 'the genesis value'}: "
            "the chain of checkpoints was broken.",
            **where,
        )
    return None


def _signature_problem(row: _Row, keys: VerifyKeys) -> CheckpointProblem | None:
    where = {"checkpoint_id": row.id, "seq_from": row.seq_from, "seq_to": row.seq_to}
    public_key = keys.keys.get(row.key_id)
    if public_key is None:
        return CheckpointProblem(
            "unknown_key",
            f"it names key id {row.key_id[:16]}, which is not among the verification keys ({keys.source}): "
            "forged, or signed with a key whose public half was not kept.",
            **where,
        )
    try:
        message = checkpoint_message(
            seq_from=row.seq_from,
            seq_to=row.seq_to,
            root=row.root,
            prev_root=row.prev_root,
            created_at=row.created_at,
        )
        public_key.verify(base64.b64decode(row.signature, validate=True), message)
    except (ValueError, binascii.Error, InvalidSignature):
        return CheckpointProblem(
            "bad_signature",
            f"its signature does not verify for events {row.seq_from}-{row.seq_to}: the checkpoint row "
            "was forged or altered.",
            **where,
        )
    return None


def verify_checkpoints(
    *, keys: VerifyKeys | None = None, chunk_size: int = 5_000, using: str = DEFAULT_DB_ALIAS
) -> CheckpointReport:
    """Check every checkpoint in order: it tiles the events, chains, is signed, and its root still holds.

    The events are streamed once, by seq, reading only their stored hashes (whether each hash matches
    its event's contents is `verify_chain`'s part). `keys` defaults to `load_verify_keys()`; with
    checkpoints present and no usable key the report fails ("no_key" or "key_error"): fail closed.
    """
    rows = [
        _Row(*values)
        for values in Checkpoint.objects.using(using)
        .order_by("seq_to")
        .values_list("id", "seq_from", "seq_to", "root", "prev_root", "created_at", "key_id", "signature")
    ]
    warnings: tuple[str, ...] = ()
    if keys is None:
        try:
            keys = load_verify_keys()
        except CheckpointKeyError as error:
            if rows:
                return CheckpointReport(len(rows), 0, 0, CheckpointProblem("key_error", str(error)))
            if not (isinstance(error, _KeyFileMissing) and not settings.AUDIT_VERIFY_KEY_FILE):
                warnings = (str(error),)  # a signing key not made yet is no news before the first checkpoint
    if keys is not None:
        warnings = keys.warnings
    if not rows:
        return CheckpointReport(0, 0, 0, None, warnings, _occurred_at(using, 1))
    if keys is None:
        detail = (
            "no key is configured (AUDIT_VERIFY_KEY_FILE, or AUDIT_SIGNING_KEY_FILE to derive it from), "
            f"so the {_count(len(rows), 'signed checkpoint')} in the database cannot be trusted."
        )
        return CheckpointReport(len(rows), 0, 0, CheckpointProblem("no_key", detail))
    events = _iter_events(using, ("seq", "hash"), 0, rows[-1].seq_to, chunk_size)
    previous: _Row | None = None
    for verified, row in enumerate(rows):
        problem = _structure_problem(row, previous) or _signature_problem(row, keys)
        if problem is None:
            problem = _root_problem(row, events)
        if problem is not None:
            covered = previous.seq_to if previous is not None else 0
            return CheckpointReport(len(rows), verified, covered, problem, warnings)
        previous = row
    covered = rows[-1].seq_to
    return CheckpointReport(len(rows), len(rows), covered, None, warnings, _occurred_at(using, covered + 1))


def _root_problem(row: _Row, events: Iterator[tuple[Any, ...]]) -> CheckpointProblem | None:
    """Feed this checkpoint's events from the shared stream into a tree and compare with its root."""
    where = {"checkpoint_id": row.id, "seq_from": row.seq_from, "seq_to": row.seq_to}
    rewritten = CheckpointProblem(
        "rewritten",
        f"events {row.seq_from}-{row.seq_to} no longer have the Merkle root it signed: events in this "
        "range were rewritten, removed or renumbered after it was signed (the hash chain recomputed to "
        "hide it).",
        **where,
    )
    tree = MerkleTree()
    for expected in range(row.seq_from, row.seq_to + 1):
        found = next(events, None)
        if found is None:
            return CheckpointProblem(
                "beyond_chain",
                f"it covers events up to {row.seq_to}, but the chain ends at event {expected - 1}: "
                f"{_events(expected, row.seq_to)} it signed are gone.",
                **where,
            )
        seq, hash_hex = found
        if seq != expected:
            return rewritten
        try:
            tree.add(hash_hex)
        except ValueError:
            return rewritten
    return rewritten if tree.root() != row.root else None


def _occurred_at(using: str, seq: int) -> dt.datetime | None:
    return AuditEvent.objects.using(using).filter(seq=seq).values_list("occurred_at", flat=True).first()
