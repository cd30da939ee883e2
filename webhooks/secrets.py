import base64
import hashlib
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def secret_generate() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_fingerprint(secret: str) -> str:
    """What tells two secrets apart without revealing either: `sha256:` + the first 12 hex
    digits of the SHA-256 of the whole secret text (`whsec_…`). A partner computes the same
    from the secret it stores to see whether it is the one that signs now."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]
