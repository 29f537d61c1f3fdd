"""What PaymentIntents and SetupIntents share: payment method types, return_url, 3-D Secure."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from devtools.stripe_standin.errors import invalid
from devtools.stripe_standin.params import Params
from devtools.stripe_standin.state import DEFAULT_API_VERSION, Obj, current_version, new_id

# `payment_method_types` stopped being writable on PaymentIntents and SetupIntents with
# API 2026-08-26 (preview) / 2026-09-30.endive: 400 payment_method_types_no_longer_supported.
_TYPES_REMOVED = "2026-08-26"


def api_version() -> str:
    return current_version.get() or DEFAULT_API_VERSION


def types_removed() -> bool:
    return api_version()[:10] >= _TYPES_REMOVED


def refuse_payment_method_types(p: Params) -> None:
    if p.has("payment_method_types") and types_removed():
        raise invalid(
            "The `payment_method_types` parameter is no longer supported on API version "
            f"{api_version()}. Use dynamic payment methods, or "
            "`allowed_payment_method_types` (for example `allowed_payment_method_types[]=card`) "
            "or `excluded_payment_method_types` to choose them.",
            param="payment_method_types",
            code="payment_method_types_no_longer_supported",
        )


def payment_method_config(p: Params) -> dict[str, Any]:
    """The intent's payment method fields, from what the request asks for.

    - nothing: dynamic payment methods, i.e. `automatic_payment_methods` enabled with
      redirects allowed (Stripe's default since 2023-08-16);
    - `allowed_payment_method_types`: exactly those that fit (the stand-in has cards only),
      no automatic payment methods; exclusive with the other three (2026-07-29.dahlia on);
    - `payment_method_types`: as given, on API versions before 2026-08-26 only.
    """
    refuse_payment_method_types(p)
    types = p.strings("payment_method_types")
    allowed = p.strings("allowed_payment_method_types")
    excluded = p.strings("excluded_payment_method_types")
    apm_params = p.mapping("automatic_payment_methods")
    configuration = p.string("payment_method_configuration")
    config: dict[str, Any] = {
        "allowed_payment_method_types": None,
        "automatic_payment_methods": None,
        "excluded_payment_method_types": excluded,
        "payment_method_types": ["card"],
    }
    if allowed is not None:
        given = [
            name
            for name, value in (
                ("payment_method_types", types),
                ("excluded_payment_method_types", excluded),
                ("automatic_payment_methods", apm_params),
                ("payment_method_configuration", configuration),
            )
            if value is not None
        ]
        if given:
            raise invalid(
                "You may only specify one of these parameters: allowed_payment_method_types, "
                f"{given[0]}.",
                param="allowed_payment_method_types",
            )
        kept = [t for t in allowed if t == "card"]
        if not kept:
            raise invalid(
                "None of the allowed_payment_method_types can be used for this payment (the "
                "Stripe stand-in has cards only).",
                param="allowed_payment_method_types",
            )
        config["allowed_payment_method_types"] = allowed
        config["payment_method_types"] = kept
        return config
    if types is not None and apm_params is not None:
        raise invalid(
            "You may only specify one of these parameters: automatic_payment_methods, "
            "payment_method_types.",
            param="automatic_payment_methods",
        )
    if types is not None:
        unsupported = [t for t in types if t != "card"]
        if unsupported:
            raise invalid(
                f'The payment method type "{unsupported[0]}" is not supported by the Stripe '
                "stand-in (cards only).",
                param="payment_method_types",
            )
        config["payment_method_types"] = types
        return config
    if apm_params is None:
        config["automatic_payment_methods"] = {"allow_redirects": "always", "enabled": True}
        return config
    apm_params.check(["enabled", "allow_redirects"])
    enabled = apm_params.boolean("enabled")
    if enabled is None:
        raise invalid(
            "Missing required param: automatic_payment_methods[enabled].",
            param="automatic_payment_methods[enabled]",
            code="parameter_missing",
        )
    redirects = apm_params.choice("allow_redirects", ["always", "never"]) or "always"
    config["automatic_payment_methods"] = {"allow_redirects": redirects, "enabled": enabled}
    return config


def require_return_url(intent: Obj, return_url: str | None, kind: str) -> None:
    apm = intent.get("automatic_payment_methods") or {}
    if apm.get("enabled") and apm.get("allow_redirects") != "never" and not return_url:
        raise invalid(
            f"A `return_url` must be specified because this {kind} is configured to "
            "automatically accept the payment methods enabled in the Dashboard, some of which "
            "may require a full page redirect to succeed. If you do not want to accept "
            "redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` "
            "and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup "
            "Intents and Payment Intents.",
            param="return_url",
        )


def next_action(intent: Obj, base_url: str, return_url: str | None) -> dict[str, Any]:
    """A 3-D Secure challenge; its URL on the stand-in completes it (`GET /_3ds/{id}`)."""
    url = f"{base_url}/_3ds/{intent['id']}"
    if return_url:
        return {
            "redirect_to_url": {
                "return_url": return_url,
                "url": f"{url}?return_url={quote(return_url, safe='')}",
            },
            "type": "redirect_to_url",
        }
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "source": new_id("src_"),
            "stripe_js": url,
            "type": "three_d_secure_redirect",
        },
    }
