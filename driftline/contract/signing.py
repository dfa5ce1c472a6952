"""The one signing format of driftline: HMAC-SHA256 under a keyring, over canonical bytes, verified in constant time.

Everything that decides what is served or resumed is signed here: a model version's metadata (blob digest,
schema, task, parent, version number, name, reference profile digest, see :mod:`driftline.models.registry`),
learner, challenger and monitor checkpoints (:func:`seal` / :func:`unseal`), offline manifests and alerts.
A signature names the key that made it (``KEYID:HEX``, the key id a digest of the key, never the key), so a
:class:`Keyring` can hold the current key, which signs, and old keys, which still verify: keys are rotated without
refusing what the old key signed (``driftline models resign`` re-signs it with the current key).

Every signature also covers a *purpose* (``model-version``, ``learner:fraud``, ...): a valid signature made for
one thing never verifies another. Pickles are verified *before* they are loaded (loading a pickle runs code):
a failure raises :class:`IntegrityError` and nothing is unpickled.

Examples
--------
>>> ring = Keyring(b"new key", old=[b"old key"])
>>> signature = ring.sign(b"payload", purpose="demo")
>>> ring.verify(b"payload", signature, purpose="demo")
>>> ring.verify(b"payload", signature, purpose="other")
Traceback (most recent call last):
...
driftline.contract.signing.IntegrityError: other signature does not match (forged or altered)
>>> Keyring(b"old key").verify(b"payload", Keyring(b"old key").sign(b"payload", "demo"), "demo")
>>> Keyring(b"third key").verify(b"payload", signature, purpose="demo")
Traceback (most recent call last):
...
driftline.contract.signing.IntegrityError: demo signed with a key not in the keyring (key id ...)
>>> unseal(ring, seal(ring, b"state", "learner:m"), "learner:m")
b'state'
>>> canonical({"b": 1, "a": [1.5, None]})
b'{"a":[1.5,null],"b":1}'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

#: First bytes of a sealed (signed) blob: checkpoints of learners, challengers and monitors.
SEAL_MAGIC = b"DLSIG1\n"
_KEY_ID_LENGTH = 12


class IntegrityError(Exception):
    """Signed data failed verification (forged, altered, or signed with an unknown key); it was not loaded."""


def sha256_hex(blob: bytes) -> str:
    """Hex SHA-256 of ``blob``."""
    return hashlib.sha256(blob).hexdigest()


def canonical(document: Any) -> bytes:
    """The canonical JSON encoding of ``document`` (sorted keys, no spaces, UTF-8): what a signature covers."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def key_id(key: bytes) -> str:
    """A short public id of ``key`` (a digest; it does not reveal the key).

    >>> key_id(b"k") == key_id(b"k") != key_id(b"j")
    True
    """
    return hashlib.sha256(b"driftline-key-id\0" + key).hexdigest()[:_KEY_ID_LENGTH]


class Keyring:
    """The current key, which signs, and old keys, which still verify (key rotation).

    Parameters
    ----------
    current
        The key every new signature is made with.
    old
        Keys whose signatures are still accepted (until ``driftline models resign`` re-signed everything).
    """

    def __init__(self, current: bytes, old: Iterable[bytes] = ()):
        if not current:
            raise ValueError("a signing key must not be empty")
        self.current = bytes(current)
        self._keys = {key_id(k): bytes(k) for k in old if k}
        self._keys[key_id(self.current)] = self.current
        self.current_id = key_id(self.current)

    def __repr__(self) -> str:  # never show a key
        return f"Keyring(current={self.current_id}, old={sorted(set(self._keys) - {self.current_id})})"

    @staticmethod
    def _mac(key: bytes, data: bytes, purpose: str) -> str:
        return hmac.new(key, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def sign(self, data: bytes, purpose: str) -> str:
        """``KEYID:HEX``, the HMAC-SHA256 of ``purpose`` and ``data`` under the current key."""
        return f"{self.current_id}:{self._mac(self.current, data, purpose)}"

    def verify(self, data: bytes, signature: str, purpose: str) -> None:
        """Raise :class:`IntegrityError` unless ``signature`` is ``sign(data, purpose)`` under a key of the ring."""
        kid, _, mac = str(signature).partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise IntegrityError(f"{purpose} signed with a key not in the keyring (key id {kid or '-'})")
        if not hmac.compare_digest(self._mac(key, data, purpose), mac):
            raise IntegrityError(f"{purpose} signature does not match (forged or altered)")

    def derive(self, label: str) -> Keyring:
        """A keyring of keys derived from these for one use (HMAC of ``label`` under each key): who holds a
        derived key (a webhook receiver verifying alerts) can never sign anything under the original keys.

        >>> ring = Keyring(b"k", old=[b"o"])
        >>> ring.derive("alerts").current != ring.current, len(ring.derive("alerts")._keys)
        (True, 2)
        """
        derived = [
            hmac.new(k, b"driftline-derive\0" + label.encode(), hashlib.sha256).digest() for k in self._keys.values()
        ]
        current = hmac.new(self.current, b"driftline-derive\0" + label.encode(), hashlib.sha256).digest()
        return Keyring(current, derived)

    def signed_by_current(self, signature: str) -> bool:
        """True when ``signature`` names the current key (``models resign`` skips those)."""
        return str(signature).partition(":")[0] == self.current_id


def as_keyring(key: Keyring | bytes | str) -> Keyring:
    """``key`` as a :class:`Keyring` (a bare key is a ring of one).

    >>> as_keyring("k").current_id == key_id(b"k")
    True
    """
    if isinstance(key, Keyring):
        return key
    return Keyring(key.encode() if isinstance(key, str) else key)


def seal(keyring: Keyring, payload: bytes, purpose: str) -> bytes:
    """``payload`` with its signature in front (checkpoints are stored this way)."""
    return SEAL_MAGIC + keyring.sign(payload, purpose).encode() + b"\n" + payload


def unseal(keyring: Keyring, blob: bytes, purpose: str) -> bytes:
    """The payload of a :func:`seal` ed ``blob``, only once its signature checked out."""
    if not blob.startswith(SEAL_MAGIC):
        raise IntegrityError(f"{purpose}: not a signed driftline blob")
    signature, sep, payload = blob[len(SEAL_MAGIC) :].partition(b"\n")
    if not sep:
        raise IntegrityError(f"{purpose}: truncated signed blob")
    keyring.verify(payload, signature.decode("ascii", "replace"), purpose)
    return payload


def reseal(keyring: Keyring, blob: bytes, purpose: str) -> bytes | None:
    """``blob`` signed again with the current key, None when it already is (verified first either way)."""
    payload = unseal(keyring, blob, purpose)
    signature = blob[len(SEAL_MAGIC) :].partition(b"\n")[0].decode("ascii", "replace")
    return None if keyring.signed_by_current(signature) else seal(keyring, payload, purpose)


#: Kafka header (and, as ``X-Driftline-Signature``, HTTP header) carrying an alert's signature.
ALERT_SIGNATURE_HEADER = "x-driftline-signature"
ALERT_PURPOSE = "alert"


def alert_keyring(keyring: Keyring) -> Keyring:
    """The keys alerts are signed with, derived from the deployment's (``driftline alerts key`` prints the current
    one for receivers: it verifies alerts and signs nothing else)."""
    return keyring.derive("alerts")


def sign_alert(alert_keys: Keyring, body: bytes) -> str:
    """The signature header value of an alert's bytes (the Kafka value or the webhook body): ``KEYID:HEX``, HEX
    the HMAC-SHA256 of ``b"alert\\0" + body`` under the alert key.

    >>> ring = alert_keyring(Keyring(b"k"))
    >>> verify_alert(ring, b'{"kind":"data_drift"}', sign_alert(ring, b'{"kind":"data_drift"}'))
    """
    return alert_keys.sign(body, ALERT_PURPOSE)


def verify_alert(alert_keys: Keyring, body: bytes, signature: str | None) -> None:
    """Raise :class:`IntegrityError` unless ``signature`` (the header value) signs ``body``."""
    if not signature:
        raise IntegrityError("alert has no signature header (not published by a driftline worker)")
    alert_keys.verify(body, signature, ALERT_PURPOSE)
