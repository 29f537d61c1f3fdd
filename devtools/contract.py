"""The published contract: `docs/openapi.json` and `docs/asyncapi.json`, as the service
serves them (with the parts of `docs/api.md` and `docs/realtime.md` made from them: the
error codes, the streams' events), and the check that a change to them breaks no app
already written.

    .venv/bin/python -m devtools.contract            # is the snapshot the served one?
    .venv/bin/python -m devtools.contract --write    # write it (refused if it breaks apps)
    .venv/bin/python -m devtools.contract --write --breaking "why"   # write it anyway

A change is breaking when an app generated from the snapshot could fail against the new
document: an operation or a success status gone, a parameter or body field newly
required, a request value no longer allowed, a response field gone, no longer always
sent, or of another type, an enum of a request narrowed. Additions are not breaking. The
test suite runs the check (`tests/unit/test_contract.py`), so a breaking change cannot
land unnoticed; one made on purpose is written with `--breaking` and its reason goes in
`docs/api-changes.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "docs" / "openapi.json"
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
CHANGES = ROOT / "docs" / "api-changes.md"
#: the URL the snapshot is written with, whatever this machine's setting
PUBLIC_URL = "http://127.0.0.1:8000"
METHODS = ("get", "put", "post", "delete", "patch")


def served() -> tuple[dict[str, Any], dict[str, Any]]:
    """Both documents as the app builds them, with the snapshot's public URL."""
    from api import asyncapi
    from api.main import create_app
    from infra.settings import get_settings

    here = get_settings().public_url
    openapi = json.loads(json.dumps(create_app().openapi()).replace(here, PUBLIC_URL))
    return openapi, asyncapi.build(PUBLIC_URL)


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- the reference pages' generated parts ------------------------------------------------
def render_error_codes() -> str:
    from api.error_codes import MEANINGS

    rows = "".join(f"| `{code}` | {meaning} |\n" for code, meaning in MEANINGS.items())
    return "| code | meaning |\n|---|---|\n" + rows


def render_events(streams: dict[str, Any]) -> str:
    schemas = streams["components"]["schemas"]
    messages = streams["components"]["messages"]
    out = "| stream | event | data |\n|---|---|---|\n"
    for channel in streams["channels"].values():
        for event, ref in channel["messages"].items():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            name = message["payload"]["$ref"].rsplit("/", 1)[1]
            schema = schemas[name]
            required = set(schema.get("required", []))
            fields = ", ".join(
                f"`{f}`" if f in required else f"`{f}`?" for f in schema.get("properties", {})
            )
            out += f"| `{channel['address']}` | `{event}` | {name}: {fields} |\n"
    return out


def render_operations(openapi: dict[str, Any]) -> str:
    out = "| operation | route | who may call | what |\n|---|---|---|---|\n"
    for path, methods in openapi["paths"].items():
        for method, op in methods.items():
            who = ", ".join(op.get("x-roles") or []) or "anyone"
            if op.get("operationId") == "receive_stripe_webhook":
                who = "Stripe (signed)"
            out += (
                f"| `{op['operationId']}` | `{method.upper()} {path}` | {who} | {op['summary']} |\n"
            )
    return out


def generated_parts(
    openapi: dict[str, Any], streams: dict[str, Any]
) -> dict[tuple[Path, str], str]:
    return {
        (ROOT / "docs" / "api.md", "operations"): render_operations(openapi),
        (ROOT / "docs" / "api.md", "error-codes"): render_error_codes(),
        (ROOT / "docs" / "realtime.md", "events"): render_events(streams),
    }


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated:{name} (python -m devtools.contract --write) -->\n",
        f"<!-- /generated:{name} -->",
    )


def part_of(page: Path, name: str) -> str | None:
    start, end = _markers(name)
    text = page.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0]


def fill(page: Path, name: str, body: str) -> None:
    start, end = _markers(name)
    text = page.read_text(encoding="utf-8")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    page.write_text(before + start + body + end + after, encoding="utf-8")


# --- what breaks an app ------------------------------------------------------------------
class _Doc:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 20:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                key = part.replace("~1", "/").replace("~0", "~")
                target = target.get(key, {}) if isinstance(target, dict) else {}
            node, seen = target, seen + 1
        return node


_JSON_TYPE = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
}


def _types(schema: dict[str, Any], doc: _Doc) -> set[str]:
    """The JSON types a schema admits (of its branches, for a union)."""
    schema = doc.resolve(schema)
    if "type" in schema:
        t = schema["type"]
        return set(t) if isinstance(t, list) else {t}
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            found |= _types(branch, doc)
    if "const" in schema or "enum" in schema:
        values = schema.get("enum", [schema.get("const")])
        found |= {
            "null" if v is None else type(v).__name__.replace("str", "string") for v in values
        }
    return found or {"any"}


def _props(schema: dict[str, Any], doc: _Doc) -> tuple[dict[str, Any], set[str]]:
    schema = doc.resolve(schema)
    props = dict(schema.get("properties", {}))
    required = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        more, req = _props(part, doc)
        props.update(more)
        required |= req
    # an optional object (`X | None`): its fields are compared as the object's
    branches = [b for b in schema.get("anyOf", []) if doc.resolve(b).get("type") != "null"]
    if len(branches) == 1 and not props:
        return _props(branches[0], doc)
    return props, required


def _compare(
    old: Any, new: Any, a: _Doc, b: _Doc, where: str, reading: bool, out: list[str], depth: int
) -> None:
    """`reading`: the app reads this (a response) rather than writes it (a request)."""
    if depth > 12 or not isinstance(old, dict) or not isinstance(new, dict):
        return
    old, new = a.resolve(old), b.resolve(new)
    old_types, new_types = _types(old, a), _types(new, b)
    if "any" not in old_types and "any" not in new_types:
        if reading:  # the app reads only what it knew (an integer is a number)
            extra = new_types - old_types - ({"integer"} if "number" in old_types else set())
            if extra:
                out.append(f"{where}: now also {sorted(extra)}")
        else:  # the app still sends what it sent
            gone = old_types - new_types - ({"integer"} if "number" in new_types else set())
            if gone:
                out.append(f"{where}: no longer takes {sorted(gone)}")
    old_enum, new_enum = old.get("enum"), new.get("enum")
    if not reading and old_enum is not None:
        gone = set(old_enum) - set(new_enum or old_enum)
        if gone:
            out.append(f"{where}: no longer takes {sorted(map(str, gone))}")
    elif not reading and new_enum is not None and "string" in old_types:
        out.append(f"{where}: now only takes {sorted(map(str, new_enum))}")
    old_props, old_req = _props(old, a)
    new_props, new_req = _props(new, b)
    for name, schema in old_props.items():
        here = f"{where}.{name}"
        if name not in new_props:
            if reading:
                out.append(f"{here}: gone")
            continue
        if reading and name in old_req and name not in new_req:
            out.append(f"{here}: no longer always sent")
        _compare(schema, new_props[name], a, b, here, reading, out, depth + 1)
    if not reading:
        for name in new_req - old_req:
            out.append(f"{where}.{name}: newly required")
    if "items" in old and "items" in new:
        _compare(old["items"], new["items"], a, b, f"{where}[]", reading, out, depth + 1)


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What an app written against `old` would meet in `new`, one line each."""
    a, b = _Doc(old), _Doc(new)
    out: list[str] = []
    for path, methods in old.get("paths", {}).items():
        for method in METHODS:
            if method not in methods:
                continue
            where = f"{method.upper()} {path}"
            now = new.get("paths", {}).get(path, {}).get(method)
            if now is None:
                out.append(f"{where}: gone")
                continue
            was = methods[method]
            old_params = {
                (p["name"], p["in"]): p for p in map(a.resolve, was.get("parameters", []))
            }
            for p in map(b.resolve, now.get("parameters", [])):
                before = old_params.get((p["name"], p["in"]))
                label = f"{where} {p['in']} {p['name']}"
                if p.get("required") and not (before and before.get("required")):
                    out.append(f"{label}: newly required")
                if before is not None:
                    _compare(before.get("schema"), p.get("schema"), a, b, label, False, out, 0)
            old_body = a.resolve(was.get("requestBody", {})).get("content", {})
            new_body = b.resolve(now.get("requestBody", {})).get("content", {})
            for ctype, content in old_body.items():
                if ctype not in new_body:
                    out.append(f"{where} body {ctype}: no longer taken")
                    continue
                schema = new_body[ctype].get("schema")
                _compare(content.get("schema"), schema, a, b, f"{where} body", False, out, 0)
            for status, answer in was.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                after = now.get("responses", {}).get(status)
                if after is None:
                    out.append(f"{where} {status}: no longer answered")
                    continue
                old_content = a.resolve(answer).get("content", {})
                new_content = b.resolve(after).get("content", {})
                for ctype, content in old_content.items():
                    if ctype not in new_content:
                        out.append(f"{where} {status} {ctype}: no longer sent")
                        continue
                    _compare(
                        content.get("schema"),
                        new_content[ctype].get("schema"),
                        a,
                        b,
                        f"{where} {status}",
                        True,
                        out,
                        0,
                    )
    return out


def breaking_stream_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The same for the streams: a channel, an event or an event's field gone."""
    a, b = _Doc(old), _Doc(new)
    out: list[str] = []
    for channel_id, channel in old.get("channels", {}).items():
        now = new.get("channels", {}).get(channel_id)
        if now is None or now.get("address") != channel.get("address"):
            out.append(f"channel {channel_id}: gone or moved")
            continue
        for event, ref in channel.get("messages", {}).items():
            if event not in now.get("messages", {}):
                out.append(f"channel {channel_id} event {event}: gone")
                continue
            was, is_ = a.resolve(ref), b.resolve(now["messages"][event])
            _compare(
                was.get("payload"),
                is_.get("payload"),
                a,
                b,
                f"{channel_id}.{event}",
                True,
                out,
                0,
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the snapshot")
    parser.add_argument("--breaking", metavar="WHY", help="write it even if it breaks apps")
    args = parser.parse_args(argv)
    openapi, streams = served()
    old_openapi = json.loads(OPENAPI.read_text()) if OPENAPI.exists() else {}
    old_streams = json.loads(ASYNCAPI.read_text()) if ASYNCAPI.exists() else {}
    broken = breaking_changes(old_openapi, openapi) + breaking_stream_changes(old_streams, streams)
    for line in broken:
        print(f"breaking: {line}")
    parts = generated_parts(openapi, streams)
    same = (
        dump(openapi) == (OPENAPI.read_text() if OPENAPI.exists() else "")
        and dump(streams) == (ASYNCAPI.read_text() if ASYNCAPI.exists() else "")
        and all(part_of(page, name) == body for (page, name), body in parts.items())
    )
    if not args.write:
        print("the snapshot is the served contract" if same else "the snapshot is out of date")
        return 0 if same and not broken else 1
    if broken and not args.breaking:
        print("not written: these break apps; say why with --breaking")
        return 1
    if broken:
        day = datetime.now(UTC).date().isoformat()
        with CHANGES.open("a", encoding="utf-8") as log:
            log.write(f"\n## {day}: {args.breaking}\n\n")
            log.writelines(f"- {line}\n" for line in broken)
    OPENAPI.write_text(dump(openapi), encoding="utf-8")
    ASYNCAPI.write_text(dump(streams), encoding="utf-8")
    for (page, name), body in parts.items():
        fill(page, name, body)
    print(f"wrote {OPENAPI.relative_to(ROOT)} and {ASYNCAPI.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
