"""Signed checkpoints: Merkle roots by the RFC 6962 definition, keys outside the database, and a rewrite
of the log with a recomputed hash chain caught by `audit_verify`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import stat
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.backends.utils import CursorWrapper
from pytest_django.fixtures import Settings as SettingsWrapper

import audit.checkpoints
from audit.chain import GENESIS_HASH, HASHED_FIELDS, event_hash, verify_chain
from audit.checkpoints import (
    CheckpointError,
    CheckpointKeyError,
    CheckpointsOff,
    NewSigningKey,
    checkpoint_create,
    checkpoint_message,
    key_id,
    load_signing_key,
    merkle_root,
    signing_key_create,
    verify_checkpoints,
)
from audit.models import AuditEvent, Checkpoint

pytestmark = pytest.mark.django_db

GuardsLifted = Callable[[], AbstractContextManager[CursorWrapper]]
NOW = dt.datetime(2026, 11, 25, 12, 30, 0, 123456, tzinfo=dt.UTC)


# ---------------------------------------------------------------------------------------------------
# Merkle tree: by the definition in RFC 6962 section 2.1, written out by hand.


def _leaf(hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


A, B, C, D, E = ("00" * 32, "11" * 32, "22" * 32, "ab" * 32, "ff" * 32)


def test_the_merkle_root_of_nothing_is_the_hash_of_the_empty_string() -> None:
    assert merkle_root([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_merkle_roots_of_one_two_three_and_five_leaves_follow_the_definition() -> None:
    assert merkle_root([A]) == _leaf(A).hex()
    assert merkle_root([A, B]) == _node(_leaf(A), _leaf(B)).hex()
    # n = 3 splits at 2: the left subtree is complete, the right one is the single leaf.
    assert merkle_root([A, B, C]) == _node(_node(_leaf(A), _leaf(B)), _leaf(C)).hex()
    # n = 5 splits at 4.
    four = _node(_node(_leaf(A), _leaf(B)), _node(_leaf(C), _leaf(D)))
    assert merkle_root([A, B, C, D, E]) == _node(four, _leaf(E)).hex()
    # Pinned (computed with openssl dgst, not Python), so that a change to the tree cannot pass unnoticed.
    assert merkle_root([A, B, C]) == "cfdd57c49cf0b23df41b9ff2fce70eed9d15fd0242a185dbdb5b918f8b140cce"


def _by_definition(leaves: list[str]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 writes it: recursive, split at the largest power of two below n."""
    if len(leaves) == 1:
        return _leaf(leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return _node(_by_definition(leaves[:split]), _by_definition(leaves[split:]))


def test_merkle_roots_agree_with_the_recursive_definition_for_every_size_up_to_70() -> None:
    hashes = [hashlib.sha256(str(index).encode()).hexdigest() for index in range(70)]
    for size in range(1, 71):
        assert merkle_root(hashes[:size]) == _by_definition(hashes[:size]).hex(), size


def test_leaf_order_and_the_leaf_and_node_prefixes_matter() -> None:
    assert merkle_root([A, B]) != merkle_root([B, A])
    # Without the 0x00 / 0x01 prefixes a node could pass for a leaf (second-preimage).
    assert merkle_root([_node(_leaf(A), _leaf(B)).hex()]) != merkle_root([A, B])


def test_a_leaf_that_is_not_a_sha256_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a SHA-256 digest"):
        merkle_root(["abcd"])
    with pytest.raises(ValueError, match="non-hexadecimal number"):
        merkle_root(["zz" * 32])


def test_the_signed_message_is_fixed_and_versioned() -> None:
    message = checkpoint_message(seq_from=1, seq_to=5, root=B, prev_root=GENESIS_HASH, created_at=NOW)
    assert message == (
        f"hisplatform-audit-checkpoint-v1\n1\n5\n{B}\n{GENESIS_HASH}\n2026-11-25T12:30:00.123456Z"
    ).encode("ascii")
    with pytest.raises(ValueError, match="1 <= seq_from <= seq_to"):
        checkpoint_message(seq_from=6, seq_to=5, root=B, prev_root=GENESIS_HASH, created_at=NOW)
    with pytest.raises(ValueError, match="root is not 64 lower-case hex"):
        checkpoint_message(seq_from=1, seq_to=5, root=D.upper(), prev_root=GENESIS_HASH, created_at=NOW)


# ---------------------------------------------------------------------------------------------------
# Fixtures: a signing key in a temporary directory, and the commands.


@pytest.fixture
def signing_key(settings: SettingsWrapper, tmp_path: Path) -> NewSigningKey:
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "keys" / "audit-signing-key.pem")
    settings.AUDIT_VERIFY_KEY_FILE = ""
    settings.AUDIT_CHECKPOINT_LOG = str(tmp_path / "log" / "audit-checkpoints.log")
    return signing_key_create()


def _verify(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def _verify_fails(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        _verify(*args)
    assert failure.value.returncode == 1
    return str(failure.value)


def _checkpoint(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_checkpoint", *args, stdout=out)
    return out.getvalue().strip()


def _checkpoint_fails(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        _checkpoint(*args)
    assert failure.value.returncode == 1
    return str(failure.value)


def _hashes(first: int, last: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__range=(first, last)).order_by("seq").values_list("hash", flat=True)
    )


# ---------------------------------------------------------------------------------------------------
# Making and verifying checkpoints


def test_a_checkpoint_signs_the_events_since_the_last_one(
    signing_key: NewSigningKey, record_questions
) -> None:
    record_questions(5)
    first = checkpoint_create(now=NOW)
    record_questions(3)
    second = checkpoint_create(now=NOW + dt.timedelta(minutes=15))

    assert first is not None
    assert second is not None
    assert (first.seq_from, first.seq_to, first.prev_root) == (1, 5, GENESIS_HASH)
    assert first.root == merkle_root(_hashes(1, 5))
    assert (second.seq_from, second.seq_to, second.prev_root) == (6, 8, first.root)
    assert second.root == merkle_root(_hashes(6, 8))
    assert first.key_id == second.key_id == signing_key.key_id
    public_key = load_signing_key().public_key()
    assert key_id(public_key) == signing_key.key_id
    stored = Checkpoint.objects.get(seq_to=5)
    public_key.verify(  # raises InvalidSignature if not
        base64.b64decode(stored.signature),
        checkpoint_message(seq_from=1, seq_to=5, root=stored.root, prev_root=GENESIS_HASH, created_at=NOW),
    )

    report = verify_checkpoints(chunk_size=2)
    assert (report.intact, report.total, report.verified, report.covered_to) == (True, 2, 2, 8)


def test_nothing_new_makes_no_checkpoint(signing_key: NewSigningKey, record_questions) -> None:
    assert checkpoint_create() is None  # empty store
    record_questions(2)
    assert checkpoint_create() is not None
    assert checkpoint_create() is None
    assert Checkpoint.objects.count() == 1


def test_audit_verify_reports_what_the_checkpoints_cover(
    signing_key: NewSigningKey, record_questions
) -> None:
    events = record_questions(5)
    checkpoint_create()
    assert _verify() == [
        f"Audit chain intact: 5 events, head {events[-1].hash[:16]} (seq 5).",
        "Checkpoints: 1 signed checkpoint verifies, covering events 1-5.",
    ]
    record_questions(1)
    checkpoint_create()
    record_questions(2)
    assert _verify("--chunk-size", "3")[1] == (
        "Checkpoints: 2 signed checkpoints verify, covering events 1-6; 2 newer events are covered by the "
        "hash chain only."
    )


def test_without_checkpoints_audit_verify_passes_and_says_so(
    settings: SettingsWrapper, record_questions
) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = settings.AUDIT_VERIFY_KEY_FILE = ""
    assert _verify() == [
        "Audit chain intact: 0 events (the store is empty).",
        "Checkpoints: no signed checkpoints yet.",
    ]
    record_questions(2)
    assert (
        _verify()[1]
        == "Checkpoints: no signed checkpoints yet; the events are covered by the hash chain only."
    )


def _rewrite_and_rechain(guards_lifted: GuardsLifted, seq: int, question: str) -> None:
    """What a database owner can do: edit an event, then recompute its hash, every later prev_hash and
    hash, and the chain head, so that the hash chain alone verifies again."""
    events = list(AuditEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev_hash = events[0].prev_hash
    with guards_lifted() as cursor:
        for event in events:
            if event.seq == seq:
                event.question = question
            event.prev_hash = prev_hash
            event.hash = event_hash({name: getattr(event, name) for name in HASHED_FIELDS})
            cursor.execute(
                "UPDATE audit_event SET question = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [event.question, event.prev_hash, event.hash, event.seq],
            )
            prev_hash = event.hash
        cursor.execute("UPDATE audit_chain_head SET hash = %s WHERE id = 1", [prev_hash])


def test_a_rewritten_log_with_a_recomputed_chain_fails_at_its_checkpoint(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(5)
    checkpoint_create()
    record_questions(3)
    checkpoint_create()
    record_questions(2)

    _rewrite_and_rechain(guards_lifted, 7, "How many patients are in oncology today?")

    assert AuditEvent.objects.get(seq=7).question == "How many patients are in oncology today?"
    assert verify_chain().intact  # the hash chain alone is fooled
    report = verify_checkpoints()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq_from, report.problem.seq_to) == ("rewritten", 6, 8)
    assert _verify_fails() == (
        "Audit checkpoints FAIL at checkpoint #6-#8 (rewritten): events 6-8 no longer have the Merkle root "
        "it signed: events in this range were rewritten, removed or renumbered after it was signed (the hash "
        "chain recomputed to hide it). 1 signed checkpoint verified before it (events 1-5)."
    )


def test_a_rewrite_in_the_first_checkpoint_is_named_too(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(4)
    checkpoint_create()
    record_questions(4)
    checkpoint_create()
    _rewrite_and_rechain(guards_lifted, 1, "nothing to see")
    assert verify_chain().intact
    message = _verify_fails("--chunk-size", "1")
    assert message.startswith("Audit checkpoints FAIL at checkpoint #1-#4 (rewritten): events 1-4 no longer")
    assert message.endswith("No checkpoint verified before it.")


def test_a_checkpoint_re_rooted_over_the_rewrite_has_a_bad_signature(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(3)
    checkpoint_create()
    _rewrite_and_rechain(guards_lifted, 2, "forged")
    Checkpoint.objects.filter(seq_to=3).update(root=merkle_root(_hashes(1, 3)))  # no trigger guards it

    assert _verify_fails() == (
        "Audit checkpoints FAIL at checkpoint #1-#3 (bad_signature): its signature does not verify for "
        "events 1-3: the checkpoint row was forged or altered. No checkpoint verified before it."
    )


def _forge(seq_from: int, seq_to: int, prev_root: str, key: Ed25519PrivateKey, claimed_key_id: str) -> None:
    root = merkle_root(_hashes(seq_from, seq_to))
    message = checkpoint_message(
        seq_from=seq_from, seq_to=seq_to, root=root, prev_root=prev_root, created_at=NOW
    )
    Checkpoint.objects.create(
        seq_from=seq_from,
        seq_to=seq_to,
        root=root,
        prev_root=prev_root,
        created_at=NOW,
        key_id=claimed_key_id,
        signature=base64.b64encode(key.sign(message)).decode(),
    )


def test_a_checkpoint_signed_by_another_key_fails(signing_key: NewSigningKey, record_questions) -> None:
    record_questions(4)
    first = checkpoint_create()
    assert first is not None
    record_questions(2)
    intruder = Ed25519PrivateKey.generate()

    _forge(5, 6, first.root, intruder, key_id(intruder.public_key()))
    assert _verify_fails() == (
        "Audit checkpoints FAIL at checkpoint #5-#6 (unknown_key): it names key id "
        f"{key_id(intruder.public_key())[:16]}, which is not among the verification keys "
        f"({signing_key.path}): forged, or signed with a key whose public half was not kept. "
        "1 signed checkpoint verified before it (events 1-4)."
    )

    Checkpoint.objects.filter(seq_to=6).delete()
    _forge(5, 6, first.root, intruder, signing_key.key_id)  # claims to be ours
    assert "at checkpoint #5-#6 (bad_signature): its signature does not verify" in _verify_fails()


def test_a_deleted_checkpoint_leaves_a_gap(signing_key: NewSigningKey, record_questions) -> None:
    for _ in range(3):
        record_questions(3)
        checkpoint_create()
    Checkpoint.objects.filter(seq_to=6).delete()
    assert _verify_fails() == (
        "Audit checkpoints FAIL at checkpoint #7-#9 (gap): events 4-6 before it (after checkpoint #1-#3) are "
        "covered by no checkpoint: a checkpoint was deleted. 1 signed checkpoint verified before it "
        "(events 1-3)."
    )
    Checkpoint.objects.filter(seq_to=3).delete()
    assert "at checkpoint #7-#9 (gap): events 1-6 before it are covered by no checkpoint" in _verify_fails()


def test_an_overlapping_or_unchained_checkpoint_fails(signing_key: NewSigningKey, record_questions) -> None:
    record_questions(4)
    first = checkpoint_create()
    assert first is not None
    record_questions(2)
    key = load_signing_key()
    _forge(4, 6, first.root, key, signing_key.key_id)  # even with the real key
    assert (
        "at checkpoint #4-#6 (overlap): it claims events 4-6, but the checkpoints before it already end "
        "at event 4: a checkpoint was inserted or altered." in _verify_fails()
    )
    Checkpoint.objects.filter(seq_to=6).delete()
    _forge(5, 6, GENESIS_HASH, key, signing_key.key_id)
    assert "at checkpoint #5-#6 (prev_root): its prev_root does not match the root of checkpoint #1-#4" in (
        _verify_fails()
    )


def test_a_checkpoint_beyond_the_chain_fails(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(3)
    checkpoint_create()
    with guards_lifted() as cursor:  # the whole store emptied, head and all: the chain alone sees nothing
        cursor.execute("DELETE FROM audit_event")
        cursor.execute("DELETE FROM audit_chain_head")
    assert verify_chain().intact
    assert _verify_fails() == (
        "Audit checkpoints FAIL at checkpoint #1-#3 (beyond_chain): it covers events up to 3, but the chain "
        "ends at event 0: events 1-3 it signed are gone. No checkpoint verified before it."
    )


def test_without_a_key_existing_checkpoints_fail_closed(
    settings: SettingsWrapper, signing_key: NewSigningKey, record_questions
) -> None:
    record_questions(2)
    checkpoint_create()
    settings.AUDIT_SIGNING_KEY_FILE = ""
    assert _verify_fails() == (
        "Cannot verify checkpoints: no key is configured (AUDIT_VERIFY_KEY_FILE, or AUDIT_SIGNING_KEY_FILE "
        "to derive it from), so the 1 signed checkpoint in the database cannot be trusted."
    )
    missing = signing_key.path.with_name("missing.pub")
    settings.AUDIT_VERIFY_KEY_FILE = str(missing)
    assert (
        _verify_fails()
        == f"Cannot verify checkpoints: The audit verification key file {missing} does not exist."
    )


def test_a_verifier_needs_only_the_public_key(
    settings: SettingsWrapper, signing_key: NewSigningKey, record_questions, tmp_path: Path
) -> None:
    record_questions(2)
    checkpoint_create()
    public = tmp_path / "verify.pem"
    old_key = Ed25519PrivateKey.generate()  # a key replaced earlier: several public keys may be listed
    old_pem = old_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public.write_bytes(old_pem + signing_key.public_pem.encode())
    settings.AUDIT_VERIFY_KEY_FILE = str(public)
    settings.AUDIT_SIGNING_KEY_FILE = ""
    assert _verify()[1] == "Checkpoints: 1 signed checkpoint verifies, covering events 1-2."

    public.write_bytes(signing_key.path.read_bytes())
    assert "holds a private key; it must hold only the public key" in _verify_fails()


def test_a_stale_tail_fails_verification_once_checkpoints_are_made(
    signing_key: NewSigningKey, record_questions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the newest checkpoints and rewriting what they covered leaves an unsigned tail that is too
    old: the same as a stopped task, and as much a reason to fail."""
    from audit import services

    record_questions(2)
    checkpoint_create()
    record_questions(1)
    assert len(_verify()) == 2  # the newer event is seconds old
    monkeypatch.setattr(services, "STALE_AFTER", dt.timedelta(0))
    failure = _verify_fails()
    assert failure.startswith("Audit checkpoints STALE: event 3 and later (since ")
    assert "the newest checkpoints were deleted" in failure


# ---------------------------------------------------------------------------------------------------
# A broken chain is never signed over


def test_an_edited_event_is_not_signed_over(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(3)
    checkpoint_create()
    record_questions(3)
    with guards_lifted() as cursor:
        cursor.execute("UPDATE audit_event SET question = 'nothing to see' WHERE seq = 5")
    with pytest.raises(CheckpointError) as refused:
        checkpoint_create()
    assert str(refused.value) == (
        "The audit chain is broken (event 5's contents do not match its hash); run `manage.py audit_verify`. "
        "Nothing was signed."
    )
    assert Checkpoint.objects.count() == 1


def test_a_broken_link_is_not_signed_over(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    record_questions(3)
    checkpoint_create()
    record_questions(2)
    # Event 3, the last one signed, rewritten with a recomputed hash: event 4 no longer links to it.
    event = AuditEvent.objects.get(seq=3)
    event.row_count = 0
    with guards_lifted() as cursor:
        cursor.execute(
            "UPDATE audit_event SET row_count = 0, hash = %s WHERE seq = 3",
            [event_hash({name: getattr(event, name) for name in HASHED_FIELDS})],
        )
    assert "The audit chain is broken (event 4 does not link to the event before it)" in _checkpoint_fails()


def test_a_head_behind_the_last_checkpoint_is_an_error(
    signing_key: NewSigningKey, record_questions, guards_lifted: GuardsLifted
) -> None:
    events = record_questions(3)
    checkpoint_create()
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE seq = 3")
        cursor.execute("UPDATE audit_chain_head SET seq = 2, hash = %s", [events[1].hash])
    assert _checkpoint_fails() == (
        "The audit chain head (event 2) is behind the last checkpoint (event 3): signed events were removed; "
        "run `manage.py audit_verify`."
    )


def test_a_tampered_last_checkpoint_is_not_built_on(signing_key: NewSigningKey, record_questions) -> None:
    record_questions(2)
    checkpoint_create()
    record_questions(1)
    Checkpoint.objects.filter(seq_to=2).update(root="not a root")
    assert _checkpoint_fails() == (
        "The last checkpoint cannot be built on (the checkpoint's prev_root is not 64 lower-case hex "
        "digits.); run `manage.py audit_verify`."
    )
    assert "at checkpoint #1-#2 (bad_signature)" in _verify_fails()


# ---------------------------------------------------------------------------------------------------
# Keys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_is_private_to_its_owner_and_never_replaced(signing_key: NewSigningKey) -> None:
    assert _mode(signing_key.path) == 0o600
    assert _mode(signing_key.path.parent) == 0o700
    before = signing_key.path.read_bytes()
    with pytest.raises(CheckpointKeyError, match="already exists; it is not replaced"):
        signing_key_create()
    assert signing_key.path.read_bytes() == before
    assert sorted(os.listdir(signing_key.path.parent)) == ["audit-signing-key.pem"]  # no temporary left


def test_init_key_prints_the_public_key_and_its_id(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.AUDIT_VERIFY_KEY_FILE = str(tmp_path / "public" / "verify.pem")
    lines = _checkpoint("--init-key").splitlines()

    public_key = load_signing_key().public_key()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert lines == [
        f"Wrote a new Ed25519 signing key to {tmp_path / 'signing.pem'} (mode 0600).",
        f"Key id: {key_id(public_key)}",
        f"Wrote its public key to {tmp_path / 'public' / 'verify.pem'} (AUDIT_VERIFY_KEY_FILE).",
        "Public key (keep a copy away from the database; verifiers need only this):",
        *pem.decode().strip().splitlines(),
    ]
    assert (tmp_path / "public" / "verify.pem").read_bytes() == pem
    assert _mode(tmp_path / "signing.pem") == 0o600
    assert _checkpoint_fails("--init-key") == (
        f"The audit signing key file {tmp_path / 'signing.pem'} already exists; it is not replaced "
        "(checkpoints signed with it would stop verifying). Move it away first to start a new key."
    )


def test_with_debug_the_key_is_made_on_first_use(
    settings: SettingsWrapper, tmp_path: Path, record_questions
) -> None:
    path = tmp_path / "var" / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_FILE = str(path)
    settings.DEBUG = True
    record_questions(1)
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    assert _mode(path) == 0o600
    assert checkpoint.key_id == key_id(load_signing_key().public_key())


def test_without_debug_a_missing_key_is_an_error_not_a_new_key(
    settings: SettingsWrapper, tmp_path: Path, record_questions
) -> None:
    path = tmp_path / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_FILE = str(path)
    record_questions(1)
    assert _checkpoint_fails() == (
        f"The audit signing key file {path} does not exist; create it with "
        "`manage.py audit_checkpoint --init-key`."
    )
    assert not path.exists()


def test_no_signing_key_configured_means_checkpoints_are_off(
    settings: SettingsWrapper, record_questions
) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = ""
    record_questions(1)
    with pytest.raises(CheckpointsOff):
        checkpoint_create()
    assert _checkpoint_fails().startswith("Signed checkpoints are off: AUDIT_SIGNING_KEY_FILE is not set")


def test_a_key_others_can_read_is_refused_for_signing_and_warned_about_in_verify(
    signing_key: NewSigningKey, record_questions
) -> None:
    record_questions(1)
    checkpoint_create()
    record_questions(1)
    signing_key.path.chmod(0o644)
    assert _checkpoint_fails() == (
        f"The audit signing key file {signing_key.path} is open to other users (mode 0644); "
        f"`chmod 600 {signing_key.path}` so that only this service can sign."
    )
    lines = _verify()
    assert lines[1] == (
        "Checkpoints: 1 signed checkpoint verifies, covering event 1; 1 newer event is covered by the hash "
        "chain only."
    )
    assert lines[2] == (
        f"Warning: the audit signing key file {signing_key.path} is open to other users (mode 0644): anyone "
        "who can read it can sign forged checkpoints; `chmod 600` it and consider a new key."
    )


def _pem_of_an_ec_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "does not hold a PEM private key."),
        (_pem_of_an_ec_key(), "holds a key of type ECPrivateKey, not an Ed25519 key."),
        (
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ),
            "is encrypted; it must hold an unencrypted PEM key, protected by its file mode instead.",
        ),
    ],
)
def test_a_bad_key_file_is_one_clear_sentence(
    settings: SettingsWrapper, tmp_path: Path, record_questions, content: bytes, message: str
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    settings.AUDIT_SIGNING_KEY_FILE = str(path)
    record_questions(1)
    assert _checkpoint_fails() == f"The audit signing key file {path} {message}"


def test_an_unreadable_key_file_is_one_clear_sentence(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path)  # a directory
    assert _checkpoint_fails() == f"The audit signing key file {tmp_path} is a directory, not a PEM file."


# ---------------------------------------------------------------------------------------------------
# The command, and creators racing


def test_the_command_says_what_it_signed(signing_key: NewSigningKey, record_questions) -> None:
    assert _checkpoint() == "Nothing to checkpoint: the audit store is empty."
    record_questions(3)
    line = _checkpoint()
    checkpoint = Checkpoint.objects.get()
    assert line == (
        f"Signed checkpoint of events 1-3 (3 events): root {checkpoint.root}, key id {signing_key.key_id}."
    )
    assert _checkpoint() == "Nothing new to checkpoint: events 1-3 are already signed (checkpoint #1-#3)."


def test_a_creator_that_loses_the_race_starts_again_and_finds_nothing_new(
    signing_key: NewSigningKey, record_questions, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_questions(4)
    real_lock = audit.checkpoints._lock
    rivals: list[Checkpoint | None] = []

    def rival_first(using: str) -> None:
        if not rivals:  # another creator commits between our reading and our lock
            monkeypatch.setattr(audit.checkpoints, "_lock", real_lock)
            rivals.append(checkpoint_create())
        real_lock(using)

    monkeypatch.setattr(audit.checkpoints, "_lock", rival_first)
    assert checkpoint_create() is None
    assert rivals[0] is not None
    assert list(Checkpoint.objects.values_list("seq_from", "seq_to")) == [(1, 4)]


needs_file_database = pytest.mark.skipif(
    "connection.vendor == 'sqlite' and connection.is_in_memory_db()",
    reason="threads need a file database (an in-memory one refuses a second writer at once)",
)


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_creators_at_once_make_one_checkpoint(signing_key: NewSigningKey, record_questions) -> None:
    record_questions(20)
    start = threading.Barrier(4)
    made: list[Any] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            start.wait()
            result: Any = checkpoint_create()
        except BaseException as error:  # collected and asserted on below
            result = error
        finally:
            connection.close()
        with lock:
            made.append(result)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(type(result).__name__ for result in made) == [
        "Checkpoint",
        "NoneType",
        "NoneType",
        "NoneType",
    ]
    assert list(Checkpoint.objects.values_list("seq_from", "seq_to")) == [(1, 20)]
    assert verify_checkpoints().intact


def test_deleting_every_checkpoint_fails_against_the_log_kept_outside_the_database(
    signing_key: NewSigningKey, record_questions, settings: SettingsWrapper
) -> None:
    record_questions(3)
    checkpoint_create()
    record_questions(2)
    checkpoint_create()
    logged = Path(settings.AUDIT_CHECKPOINT_LOG).read_text().splitlines()
    assert [json.loads(line)["seq_to"] for line in logged] == [3, 5]
    assert len(_verify()) == 2
    Checkpoint.objects.all().delete()  # an owner of the database: no trigger guards checkpoint rows
    assert _verify_fails() == (
        "Audit checkpoints FAIL against the log kept outside the database: checkpoint #1-#3, logged outside "
        "the database, is missing from it (deleted): the events it covered may have been rewritten."
    )
