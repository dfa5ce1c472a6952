"""The one signing format: keyrings, purposes, sealed blobs, key rotation."""

from __future__ import annotations

import pytest

from driftline.contract.signing import IntegrityError, Keyring, canonical, key_id, reseal, seal, unseal


def test_a_signature_verifies_only_the_data_and_purpose_it_was_made_for() -> None:
    """Same key: the data and purpose it signed pass; one changed byte or another purpose fail."""
    ring = Keyring(b"k")
    signature = ring.sign(b"payload", "model-version")
    ring.verify(b"payload", signature, "model-version")
    with pytest.raises(IntegrityError, match="does not match"):
        ring.verify(b"payloae", signature, "model-version")
    with pytest.raises(IntegrityError, match="does not match"):
        ring.verify(b"payload", signature, "learner:m")


def test_a_signature_made_with_a_key_outside_the_ring_is_refused_naming_its_key_id() -> None:
    """An attacker's key (or a removed old key) is refused with the key id, never the key, in the message."""
    forged = Keyring(b"attacker").sign(b"payload", "p")
    with pytest.raises(IntegrityError, match=f"not in the keyring \\(key id {key_id(b'attacker')}\\)"):
        Keyring(b"k").verify(b"payload", forged, "p")
    assert "attacker" not in repr(Keyring(b"attacker"))


def test_old_keys_verify_but_only_the_current_key_signs() -> None:
    """During a rotation what the old key signed still verifies; new signatures name the current key."""
    old_signature = Keyring(b"old").sign(b"d", "p")
    ring = Keyring(b"new", old=[b"old"])
    ring.verify(b"d", old_signature, "p")
    assert not ring.signed_by_current(old_signature)
    assert ring.signed_by_current(ring.sign(b"d", "p"))
    with pytest.raises(IntegrityError, match="not in the keyring"):
        Keyring(b"new").verify(b"d", old_signature, "p")


def test_reseal_moves_a_sealed_blob_to_the_current_key_after_verifying_it() -> None:
    """reseal: old-key blob -> current-key blob with the same payload; current-key blob -> None; forged -> error."""
    old_blob = seal(Keyring(b"old"), b"state", "learner:m")
    ring = Keyring(b"new", old=[b"old"])
    fresh = reseal(ring, old_blob, "learner:m")
    assert fresh is not None and unseal(Keyring(b"new"), fresh, "learner:m") == b"state"
    assert reseal(ring, fresh, "learner:m") is None
    with pytest.raises(IntegrityError):
        reseal(ring, seal(Keyring(b"attacker"), b"evil", "learner:m"), "learner:m")
    with pytest.raises(IntegrityError, match="not a signed"):
        unseal(ring, b"evil pickle", "learner:m")


def test_canonical_encoding_does_not_depend_on_key_order() -> None:
    assert canonical({"a": 1, "b": [2, "é"]}) == canonical({"b": [2, "é"], "a": 1})
    assert canonical({"a": 1}) != canonical({"a": 1.5})
