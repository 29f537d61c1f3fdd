"""Every machine `code` an error answer can carry, each with what it means.

A closed set: `tests/unit/test_error_codes.py` reads every code the source can raise and
fails on one missing here. A code from the payment provider that is not ours (Stripe's
own error codes) is answered with its error's own code (`api.errors`), never passed on.
"""

from __future__ import annotations

from enum import StrEnum

MEANINGS: dict[str, str] = {
    # the request itself
    "bad_request": "The request is malformed (a header, a cursor, an id).",
    "client_disconnected": "The client hung up before its body arrived; nothing was done.",
    "invalid_json": "The body is not valid JSON.",
    "validation_error": "A field is missing or out of range; `detail` lists each one.",
    "invalid_cursor": "The `cursor` is not one this list gave.",
    "invalid_text": "A text holds characters that cannot be stored (a NUL byte).",
    "payload_too_large": "The body (or a batch) is over the limit.",
    "unsupported_media_type": "The body is not JSON (or, on OsmAnd, a form).",
    "method_not_allowed": "The path exists, not with this method.",
    "not_found": "No such path, or no such object.",
    "error": "Another HTTP error; `detail` says which.",
    # who calls
    "not_authenticated": "No credentials were sent.",
    "invalid_token": "The token is invalid, expired, already used (refresh) or of another kind.",
    "invalid_credentials": "Wrong email or password.",
    "invalid_device_key": "The OsmAnd device key is missing or unknown.",
    "forbidden": "Known, but not for this caller.",
    "role_forbidden": "This operation needs another role.",
    "role_not_allowed": "Accounts are made for passengers and drivers only.",
    "email_taken": "An account with this email exists.",
    "user_not_found": "No such user.",
    # limits
    "rate_limited": "Too many requests; wait for `Retry-After` seconds.",
    "too_many_rides": "Too many ride requests in the last hour.",
    "too_many_cards": "Too many cards saved in the last hour.",
    "too_many_failed_payments": "Too many failed card payments lately: pay with cash.",
    # idempotency
    "invalid_idempotency_key": "The `Idempotency-Key` header is empty or too long.",
    "idempotency_key_reused": "This `Idempotency-Key` was used for another request.",
    "idempotency_key_in_use": "A request with this `Idempotency-Key` is still running.",
    "idempotency_error": "The payment provider saw an idempotency key reused.",
    # rides
    "ride_not_found": "No such ride, or not yours.",
    "ride_already_open": "The passenger already has a ride under way.",
    "outstanding_balance": "A failed card payment must be settled first.",
    "no_card": "A card ride needs a saved card.",
    "amount_over_cap": "The estimate is over the fare cap for card rides.",
    "route_too_long": "Pickup and dropoff are too far apart.",
    "route_too_short": "Pickup and dropoff are too close.",
    "illegal_transition": "The ride's status does not allow this step.",
    "not_your_ride": "The ride is another driver's.",
    "no_show_too_early": "The wait after arriving is not over yet.",
    "conflict": "The state does not allow this (a race lost, a duplicate).",
    "driver_busy": "The driver already has a ride under way.",
    "driver_on_ride": "A driver on a ride cannot go offline.",
    "ride_taken": "Another driver took the ride.",
    "ride_gone": "The ride is no longer waiting for a driver.",
    "no_offer": "You hold no offer for this ride.",
    "offer_accepted": "You already accepted this offer.",
    "offer_declined": "You already declined this offer.",
    "offer_expired": "The offer expired.",
    "offer_withdrawn": "The offer was withdrawn (taken, or the ride cancelled).",
    "no_position": "The ride's driver has no position to show (yet, or any more).",
    # live location
    "not_an_object": "A fix must be a JSON object.",
    "missing_field": "A fix lacks a required field.",
    "invalid_number": "A number is not a number.",
    "not_finite": "A number is infinite or NaN.",
    "invalid_time": "The fix's time cannot be read.",
    "timestamp_too_old": "The fix is older than the server keeps.",
    "timestamp_in_future": "The fix is from the future (beyond clock skew).",
    "lat_out_of_range": "The latitude is beyond the map's limit (±85.05°).",
    "lng_out_of_range": "The longitude is beyond ±180°.",
    "invalid_heading": "The heading is outside 0 to 360.",
    "negative_speed": "The speed is below 0.",
    "negative_accuracy": "The accuracy is below 0.",
    "impossible_jump": "The fix moved faster than a car can go.",
    "invalid_fix": "The device marked the fix invalid: recorded, not shown.",
    # payments
    "payment_not_found": "No such payment, or not yours.",
    "payment_method_not_found": "No such card, or not yours.",
    "card_declined": "The card was declined (or needs the passenger: 3-D Secure).",
    "no_intent": "The payment has no PaymentIntent to act on.",
    "nothing_to_refund": "Everything captured was refunded already.",
    "refund_exceeds_captured": "More than what is left to refund.",
    "not_a_cash_ride": "Cash can only be recorded for a cash ride.",
    "cash_already_recorded": "A different cash amount was recorded for this ride.",
    "implausible_amount": "The cash amount is far from the fare.",
    "payment_provider_error": "The payment provider failed; try again.",
    "payment_provider_unavailable": "The payment provider is out of reach; try again.",
    "payment_provider_rejected": "The payment provider refused the request as it stands.",
    "webhooks_disabled": "No webhook secret is configured here.",
    "invalid_signature": "The `Stripe-Signature` does not verify.",
    "invalid_payload": "The webhook body is not a Stripe event.",
    # ratings, notifications
    "already_rated": "You rated this ride already.",
    "ride_not_completed": "Only a completed ride can be rated.",
    "rating_window_closed": "Ratings close 7 days after the ride.",
    "invalid_stars": "Stars are 1 to 5.",
    "invalid_tag": "A tag is not one of the side's tags.",
    "tag_needed": "A rating of 3 stars or fewer needs a tag.",
    "too_many_tags": "More tags than a rating may carry.",
    "comment_too_long": "The comment is too long.",
    "device_not_found": "No such device, or not yours.",
    "broadcast_not_found": "No such broadcast.",
    # the service
    "unprocessable": "Well-formed, but not something the service can do.",
    "unavailable": "A service we depend on is briefly out of reach; retry after `Retry-After`.",
    "internal_error": "A fault of ours; it is logged with the request id.",
}

ErrorCode = StrEnum("ErrorCode", {code.upper(): code for code in MEANINGS})  # type: ignore[misc]
ErrorCode.__doc__ = "What went wrong, for programs: " + " ".join(
    f"`{code}`: {meaning}" for code, meaning in MEANINGS.items()
)

KNOWN = frozenset(MEANINGS)
