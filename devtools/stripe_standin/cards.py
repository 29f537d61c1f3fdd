"""Stripe's test payment methods (`pm_card_visa`, ...) and how each one behaves.

Source: Stripe's testing documentation (docs.stripe.com/testing). Every use of a test
id creates a new PaymentMethod, as Stripe does. Cards that decline are declined when
they are charged and also when they are saved (attach, SetupIntent), because Stripe
checks a card when it is attached; `pm_card_chargeCustomerFail` is the documented
card that attaches fine and declines when charged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str
    param: str | None = None
    # charge.outcome
    outcome_type: str = "issuer_declined"
    network_status: str = "declined_by_network"
    seller_message: str = "The bank did not return any further details with this decline."
    risk_level: str = "normal"


@dataclass(frozen=True)
class Card:
    number: str
    brand: str
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None  # when charged
    decline_on_attach: bool = True  # a declining card also fails when it is saved
    # 3-D Secure: "none"; "always" (every payment, on or off session); "unless_setup"
    # (off-session payments pass once the card was set up for them); "on_session"
    # (the card counts as set up for off-session use already)
    auth: str = "none"
    auth_on_setup: bool = False
    risk_level: str = "normal"
    refund_fails: bool = False

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.number.encode()).hexdigest()[:16]

    @property
    def risk_score(self) -> int:
        base = {"normal": 5, "elevated": 65, "highest": 85}.get(self.risk_level, 5)
        return base + int(self.fingerprint[:4], 16) % 10


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT = Decline(
    "card_declined",
    "insufficient_funds",
    "Your card has insufficient funds.",
    seller_message="The bank returned the decline code `insufficient_funds`.",
)
LOST = Decline(
    "card_declined",
    "lost_card",
    "Your card was declined.",
    seller_message="The bank returned the decline code `lost_card`.",
)
STOLEN = Decline(
    "card_declined",
    "stolen_card",
    "Your card was declined.",
    seller_message="The bank returned the decline code `stolen_card`.",
)
EXPIRED = Decline(
    "expired_card",
    "expired_card",
    "Your card has expired.",
    param="exp_month",
    seller_message="The bank returned the decline code `expired_card`.",
)
INCORRECT_CVC = Decline(
    "incorrect_cvc",
    "incorrect_cvc",
    "Your card's security code is incorrect.",
    param="cvc",
    seller_message="The bank returned the decline code `incorrect_cvc`.",
)
PROCESSING = Decline(
    "processing_error",
    "processing_error",
    "An error occurred while processing your card. Try again in a little bit.",
    seller_message="The bank returned the decline code `processing_error`.",
)
FRAUDULENT = Decline(
    "card_declined",
    "fraudulent",
    "Your card was declined.",
    outcome_type="blocked",
    network_status="not_sent_to_network",
    seller_message="Stripe blocked this payment as too risky.",
    risk_level="highest",
)
AUTH_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
    seller_message="The bank returned the decline code `authentication_required`.",
)

_VISA = "4242424242424242"

CARDS: dict[str, Card] = {
    "visa": Card(_VISA, "visa"),
    "visa_debit": Card("4000056655665556", "visa", funding="debit"),
    "mastercard": Card("5555555555554444", "mastercard"),
    "mastercard_debit": Card("5200828282828210", "mastercard", funding="debit"),
    "mastercard_prepaid": Card("5105105105105100", "mastercard", funding="prepaid"),
    "amex": Card("378282246310005", "amex"),
    "discover": Card("6011111111111117", "discover"),
    "diners": Card("3056930009020004", "diners"),
    "jcb": Card("3566002020360505", "jcb", country="JP"),
    "unionpay": Card("6200000000000005", "unionpay", country="CN"),
    "bypassPending": Card("4000000000000077", "visa"),
    "chargeDeclined": Card("4000000000000002", "visa", decline=GENERIC),
    "chargeDeclinedInsufficientFunds": Card("4000000000009995", "visa", decline=INSUFFICIENT),
    "chargeDeclinedLostCard": Card("4000000000009987", "visa", decline=LOST),
    "chargeDeclinedStolenCard": Card("4000000000009979", "visa", decline=STOLEN),
    "chargeDeclinedExpiredCard": Card("4000000000000069", "visa", decline=EXPIRED),
    "chargeDeclinedIncorrectCvc": Card("4000000000000127", "visa", decline=INCORRECT_CVC),
    "chargeDeclinedProcessingError": Card("4000000000000119", "visa", decline=PROCESSING),
    "chargeDeclinedFraudulent": Card(
        "4100000000000019", "visa", decline=FRAUDULENT, decline_on_attach=False
    ),
    "chargeCustomerFail": Card(
        "4000000000000341", "visa", decline=GENERIC, decline_on_attach=False
    ),
    "riskLevelElevated": Card("4000000000009235", "visa", risk_level="elevated"),
    "riskLevelHighest": Card(
        "4000000000004954", "visa", decline=FRAUDULENT, decline_on_attach=False
    ),
    "refundFail": Card("4000000000005126", "visa", refund_fails=True),
    "authenticationRequired": Card("4000002760003184", "visa", auth="always", auth_on_setup=True),
    "authenticationRequiredOnSetup": Card(
        "4000002500003155", "visa", auth="unless_setup", auth_on_setup=True
    ),
    "authenticationRequiredSetupForOffSession": Card("4000003800000446", "visa", auth="on_session"),
    "authenticationRequiredChargeDeclinedInsufficientFunds": Card(
        "4000008260003178",
        "visa",
        auth="always",
        auth_on_setup=True,
        decline=INSUFFICIENT,
        decline_on_attach=False,
    ),
    "threeDSecureRequired": Card("4000000000003063", "visa", auth="always", auth_on_setup=True),
    "threeDSecure2Required": Card("4000000000003220", "visa", auth="always", auth_on_setup=True),
    "threeDSecureRequiredChargeDeclined": Card(
        "4000008400001629",
        "visa",
        auth="always",
        auth_on_setup=True,
        decline=GENERIC,
        decline_on_attach=False,
    ),
    "threeDSecureOptional": Card("4000000000003055", "visa"),
}

# Stripe's aliases: `pm_card_visa_chargeDeclined...` are the same Visa decline cards;
# `pm_card_radarBlock` is the Radar-blocked card.
_ALIASES = {
    "visa_chargeDeclined": "chargeDeclined",
    "visa_chargeDeclinedInsufficientFunds": "chargeDeclinedInsufficientFunds",
    "visa_chargeDeclinedLostCard": "chargeDeclinedLostCard",
    "visa_chargeDeclinedStolenCard": "chargeDeclinedStolenCard",
    "visa_chargeDeclinedExpiredCard": "chargeDeclinedExpiredCard",
    "visa_chargeDeclinedIncorrectCvc": "chargeDeclinedIncorrectCvc",
    "visa_chargeDeclinedProcessingError": "chargeDeclinedProcessingError",
    "visa_chargeDeclinedFraudulent": "chargeDeclinedFraudulent",
    "radarBlock": "chargeDeclinedFraudulent",
}

_BY_NUMBER = {card.number: card for card in CARDS.values()}


def card_for_test_id(ident: str) -> Card | None:
    """The card behind `pm_card_<name>` or `tok_<name>`, else None."""
    for prefix in ("pm_card_", "tok_"):
        if ident.startswith(prefix):
            name = ident[len(prefix) :]
            return CARDS.get(_ALIASES.get(name, name))
    return None


def card_for_number(number: str) -> Card:
    return _BY_NUMBER.get(number, Card(number, "visa"))
