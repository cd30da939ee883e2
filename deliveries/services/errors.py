"""The errors of what operators and partners ask for, shared by the services that raise
them (operations, scope, partner)."""


class DeliveryError(Exception):
    """An operator asked for something the delivery's state does not allow."""


class TooSoon(DeliveryError):
    """A partner asked for a resync or a test event sooner than its interval allows;
    `retry_after` is how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ResyncTooSoon(TooSoon):
    """A resync was asked for sooner than the minimum interval after the last one."""


class TestTooSoon(TooSoon):
    """A test event was asked for sooner than the minimum interval after the last one."""
