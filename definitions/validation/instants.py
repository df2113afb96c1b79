"""Reading an ISO-8601 date-time that users send: a sleep's ``until``, a list's time filters.

One home for what counts as a usable instant, so validation, the engine (a
templated ``until``) and the API refuse the same values with the same words.
"""

from datetime import UTC, datetime


class InstantError(ValueError):
    """Why a value is not a usable instant; the message reads after the field's name ("until must ...")."""


def parse_instant(text: str, naive_is_utc: bool = False) -> datetime:
    """``text`` as an aware datetime in UTC, or InstantError.

    The value must hold once converted to UTC: ``9999-12-31T23:59:59-23:59``
    is a valid ISO-8601 string but past the last instant Python and the
    database driver can represent, and would overflow wherever it is used.
    A value without a time zone is refused unless ``naive_is_utc``.
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InstantError("must be an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise InstantError("must include a timezone (e.g. 'Z' or '+00:00')")
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InstantError("is out of range: it must fall within the years 1 to 9999 in UTC") from None
