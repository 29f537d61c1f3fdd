"""The published contract (`docs/openapi.json`, `docs/asyncapi.json`) is what the service
serves, and the breaking-change check sees what would break an app."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devtools import contract


@pytest.fixture(scope="module")
def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    return contract.served()


def test_the_snapshot_is_the_served_contract(documents: tuple[dict[str, Any], ...]) -> None:
    openapi, streams = documents
    # a change to the API shows in review as a change to these files: regenerate with
    # `python -m devtools.contract --write` (refused if it breaks apps)
    assert contract.OPENAPI.read_text() == contract.dump(openapi)
    assert contract.ASYNCAPI.read_text() == contract.dump(streams)


def test_the_reference_pages_show_the_served_codes_and_events(
    documents: tuple[dict[str, Any], ...],
) -> None:
    openapi, streams = documents
    for (page, name), body in contract.generated_parts(openapi, streams).items():
        assert contract.part_of(page, name) == body, f"{page.name}: {name} is out of date"
    events = contract.render_events(streams)
    assert "| `/api/v1/drivers/me/events` | `offer_withdrawn` | OfferWithdrawnEvent:" in events
    assert "`live`" in events
    operations = contract.render_operations(openapi)
    assert "| `accept_offer` | `POST /api/v1/rides/{ride_id}/accept` | driver |" in operations
    assert operations.count("\n") == 59 + 2


def test_nothing_served_breaks_an_app_written_against_the_snapshot(
    documents: tuple[dict[str, Any], ...],
) -> None:
    openapi, streams = documents
    assert contract.breaking_changes(json.loads(contract.OPENAPI.read_text()), openapi) == []
    old_streams = json.loads(contract.ASYNCAPI.read_text())
    assert contract.breaking_stream_changes(old_streams, streams) == []


def test_the_check_sees_each_kind_of_break(documents: tuple[dict[str, Any], ...]) -> None:
    old, old_streams = documents
    assert contract.breaking_changes(old, old) == []
    new = copy.deepcopy(old)
    schemas = new["components"]["schemas"]
    del new["paths"]["/api/v1/ratings/tags"]["get"]
    del schemas["RidePublic"]["properties"]["fare"]
    schemas["RidePublic"]["required"].remove("status")
    schemas["EstimateIn"].setdefault("required", []).append("promo")
    schemas["EstimateIn"].setdefault("properties", {})["promo"] = {"type": "string"}
    schemas["EstimateOut"]["properties"]["amount"] = {"type": "string"}
    schemas["RatingIn"]["properties"]["stars"] = {"type": "string"}
    schemas["Preferences"]["properties"]["promotions"] = {"type": "string"}
    schemas["CancelIn"]["properties"]["reason"] = {"type": "string", "enum": ["late"]}
    del new["paths"]["/api/v1/rides"]["post"]["responses"]["201"]
    found = "\n".join(contract.breaking_changes(old, new))
    for expected in (
        "GET /api/v1/ratings/tags: gone",
        ".fare: gone",
        ".status: no longer always sent",
        "POST /api/v1/rides/estimate body.promo: newly required",
        "POST /api/v1/rides/estimate 200.amount: now also ['string']",
        "POST /api/v1/ratings body.stars: no longer takes ['integer']",
        "PUT /api/v1/notifications/preferences body.promotions: no longer takes ['boolean']",
        "POST /api/v1/rides 201: no longer answered",
        "POST /api/v1/rides/{ride_id}/cancel body.reason: now only takes ['late']",
    ):
        assert expected in found, (expected, found)
    # an addition breaks nothing
    added = copy.deepcopy(old)
    added["components"]["schemas"]["RidePublic"]["properties"]["surge"] = {"type": "number"}
    assert contract.breaking_changes(old, added) == []
    streams = copy.deepcopy(old_streams)
    del streams["channels"]["ride_events"]["messages"]["eta"]
    del streams["components"]["schemas"]["OfferEvent"]["properties"]["expires_at"]
    assert contract.breaking_stream_changes(old_streams, streams) == [
        "channel ride_events event eta: gone",
        "driver_events.offer.expires_at: gone",
    ]
