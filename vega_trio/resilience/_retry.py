"""Retrying a failed LLM call (SPEC §3.2).

:class:`RetryPolicy` calls an attempt function again after a classified, retryable
:class:`~vega_trio.LLMError`, waiting the policy's backoff or the server's
``retry-after`` (whichever is longer) in between. What is retried:

* an ``LLMError`` whose class is in ``retry_on`` (the four retryable classes by
  default) and that came before any streamed output (``output_started`` is False);
* never ``BUDGET_EXCEEDED``, ``AUTHENTICATION`` or ``INVALID_REQUEST``, even when
  listed in ``retry_on``: another attempt cannot cure them and would only spend money
  or hammer a server that already said no;
* never a local refusal (``refused_locally``: an open circuit breaker, a ``reject``
  rate limiter, a budget): those are meant to fail fast;
* never anything that is not an ``LLMError`` (a bug, a tool failure, ``Cancelled``):
  it propagates at once.

There is no sleep after the last attempt: an exhausted policy raises as soon as the
last attempt has failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import attrs
import trio

from .._errors import ErrorClass, LLMError
from ..runtime._restart import Backoff

__all__ = ["DEFAULT_RETRY_ON", "NEVER_RETRIED", "RetryPolicy"]

T = TypeVar("T")

#: The classes a default policy retries: the retryable ones of SPEC §3.1.
DEFAULT_RETRY_ON: Final = frozenset(
    error_class for error_class in ErrorClass if error_class.retryable
)

#: Classes no policy retries, whatever its ``retry_on`` says.
NEVER_RETRIED: Final = frozenset(
    {ErrorClass.BUDGET_EXCEEDED, ErrorClass.AUTHENTICATION, ErrorClass.INVALID_REQUEST}
)

_DEFAULT_BACKOFF: Final = Backoff(kind="exponential", initial=0.5, multiplier=2, max=30, jitter=0)


def _positive_int(_instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"RetryPolicy {attribute.name} must be a whole number of at least 1 "
            f"(1 means no retries), got {value!r}"
        )


def _to_error_classes(value: Iterable[ErrorClass | str]) -> frozenset[ErrorClass]:
    if isinstance(value, str):
        # A bare string is iterable too; "rate_limit" must not become {"r", "a", ...}.
        raise TypeError(
            f"RetryPolicy retry_on must be a collection of error classes, got {value!r}"
        )
    classes = set()
    for item in value:
        try:
            classes.add(ErrorClass(item))
        except ValueError:
            known = ", ".join(error_class.value for error_class in ErrorClass)
            raise ValueError(
                f"RetryPolicy retry_on has unknown error class {item!r}; known classes: {known}"
            ) from None
    return frozenset(classes)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often, and after how long, a failed LLM call is tried again.

    Attributes:
        max_attempts: attempts in all, the first included (``1`` never retries).
        backoff: the wait before attempt ``n + 1`` is ``backoff.delay(n)``, or the
            server's ``retry_after`` when that is longer.
        retry_on: the error classes that may be retried (names or
            :class:`~vega_trio.ErrorClass` members). Classes in :data:`NEVER_RETRIED`
            are ignored here: they are never retried.
    """

    max_attempts: int = attrs.field(default=3, validator=_positive_int)
    backoff: Backoff = attrs.field(
        default=_DEFAULT_BACKOFF, validator=attrs.validators.instance_of(Backoff)
    )
    retry_on: frozenset[ErrorClass] = attrs.field(
        default=DEFAULT_RETRY_ON, converter=_to_error_classes
    )

    def retries(self, exc: LLMError) -> bool:
        """Whether this policy would retry ``exc`` (attempts left aside).

        Args:
            exc: a failed attempt's error.

        Returns:
            ``True`` when its class is in ``retry_on``, is not one of
            :data:`NEVER_RETRIED`, it is not a local refusal, and the failure came
            before any streamed output.
        """
        return (
            exc.error_class in self.retry_on
            and exc.error_class not in NEVER_RETRIED
            and not exc.output_started
            and not exc.refused_locally
        )

    def delay_after(self, attempt: int, exc: LLMError) -> float | None:
        """Seconds to wait after attempt number ``attempt`` failed with ``exc``.

        Args:
            attempt: the number of the attempt that failed (1 for the first).
            exc: its error.

        Returns:
            ``max(backoff.delay(attempt), exc.retry_after or 0)``, or ``None`` when
            there will be no further attempt (not retryable, or it was the last).
        """
        if attempt >= self.max_attempts or not self.retries(exc):
            return None
        return max(self.backoff.delay(attempt), exc.retry_after or 0.0)

    async def run(
        self,
        attempt: Callable[[int], Awaitable[T]],
        *,
        on_failure: Callable[[int, LLMError, float | None], None] | None = None,
    ) -> T:
        """Call ``attempt(n)`` for ``n = 1, 2, …`` until one succeeds or the policy gives up.

        The waits are ``trio.sleep`` calls: they follow the Trio clock (virtual time
        in tests) and are cancelled with the surrounding scope, like the attempts.

        Args:
            attempt: makes one attempt; receives its number, counted from 1. It must
                raise failures of the model call as :class:`~vega_trio.LLMError`
                (see ``vega_trio.llm._classify.to_llm_error``); an exception group is
                not looked into and propagates like any other non-``LLMError``.
            on_failure: called synchronously after each failed attempt with its
                number, its error and the delay before the next attempt (``None``
                when there will be none). An exception it raises propagates.

        Returns:
            The first successful attempt's result.

        Raises:
            LLMError: the last attempt's error, unchanged, with ``attempts`` set to
                the number of attempts made.
            Exception: anything other than an ``LLMError``, at once and untouched.
        """
        number = 1
        while True:
            try:
                return await attempt(number)
            except LLMError as exc:
                exc.attempts = number
                delay = self.delay_after(number, exc)
                if on_failure is not None:
                    on_failure(number, exc, delay)
                if delay is None:
                    raise
            # Sleep outside the ``except`` block so the wait does not carry the
            # handled error as the context of anything raised while waiting.
            await trio.sleep(delay)
            number += 1
