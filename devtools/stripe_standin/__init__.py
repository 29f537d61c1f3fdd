"""An offline Stripe for development and tests: localstripe extended in-process.

`python -m devtools.stripe_standin --host 127.0.0.1 --port 8420` serves it; `build_app()` gives
the aiohttp application for in-process use. Our own handlers answer everything the project
calls (customers, payment methods, SetupIntents, PaymentIntents, charges, refunds, Connect
accounts and transfers, events, webhook endpoints) as Stripe's documentation says, with
idempotency keys, signed webhooks with retries, fault injection and a record of requests;
localstripe's app answers the rest. See docs/stripe-standin.md.
"""

from devtools.stripe_standin.server import build_app, main

__all__ = ["build_app", "main"]
