"""Each promise of `docs/guarantees.md` broken once: a one-line change to the mechanism
that keeps it, applied in a scratch worktree of HEAD, and the test that proves the promise
run against it. Every row must fail; a promise whose test survives its mutation needs a
better test.

    .venv/bin/python -m devtools.mutations [ROW ...]

Prints one line per row (failed or SURVIVED) and the table in Markdown; exits 1 if a
mutation survived or no longer applies (the code moved: update the row). Takes about
ten minutes for every row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Mutant(NamedTuple):
    promise: str
    path: str
    old: str
    new: str
    tests: str


MUTANTS: list[Mutant] = [
    Mutant(
        "card captured once at its fare (idempotency keys)",
        "infra/stripe_gateway.py",
        'options={"idempotency_key": f"ride-{ride_id}-capture"},',
        'options={"idempotency_key": f"ride-{ride_id}-capture-{__import__(\'uuid\').uuid4()}"},',
        "tests/workers/test_crash.py",
    ),
    Mutant(
        "a worker killed mid-capture captures once (acks_late, reject on worker lost)",
        "celeryconfig.py",
        "task_reject_on_worker_lost = True",
        "task_reject_on_worker_lost = False",
        "tests/workers/test_crash.py",
    ),
    Mutant(
        "a refund never exceeds the capture",
        "domain/payments.py",
        "    if amount <= 0 or amount > left:",
        "    if amount <= 0:",
        "tests/workers/test_card_rides.py::test_partial_and_full_refunds_never_more_than_captured",
    ),
    Mutant(
        "webhooks twice/late/out of order change nothing (Stripe's current state is read)",
        "domain/usecases/card_payments.py",
        'apply_intent(payment, uow.card_gateway.intent(obj["id"]), ctx.now)',
        'apply_intent(payment, __import__("stripe").PaymentIntent.construct_from(obj, ""), '
        "ctx.now)",
        "tests/workers/test_webhooks.py::test_replays_and_disorder_end_in_stripes_current_state",
    ),
    Mutant(
        "the ledger balances",
        "domain/ledger.py",
        "unbalanced = {c: t for c, t in totals.items() if t != 0}",
        "unbalanced: dict[str, int] = {}",
        "tests/unit/domain/test_ledger_and_geo.py",
    ),
    Mutant(
        "statements and payouts match the ledger however often the jobs run",
        "domain/payouts.py",
        'return f"payout-{statement_id}-{attempt}"',
        "return f\"payout-{statement_id}-{attempt}-{__import__('uuid').uuid4()}\"",
        "tests/workers/test_payouts.py",
    ),
    Mutant(
        "what is stuck gets repaired (sweeps)",
        "domain/usecases/card_payments.py",
        '    out = {"reread": 0, "resent": 0, "refunds_reread": 0, "refunds_resent": 0}\n',
        '    out = {"reread": 0, "resent": 0, "refunds_reread": 0, "refunds_resent": 0}\n'
        "    return out\n",
        "tests/workers/test_sweeps.py",
    ),
    Mutant(
        "a push at most once per notification and device (the claim)",
        "infra/notifications.py",
        '        if row.status != "pending":\n            return None',
        "        if False:\n            return None",
        "tests/workers/test_notifications.py::test_a_delivery_task_run_twice_sends_nothing_twice",
    ),
    Mutant(
        "a push whose answer never came is not sent again",
        "infra/push.py",
        "        return PushResult(PushOutcome.UNKNOWN, error=exc.code)",
        "        return PushResult(PushOutcome.RETRY, error=exc.code)",
        "tests/contract/test_fcm.py::test_an_answer_that_never_comes_is_unknown_and_never_sent_again",
    ),
    Mutant(
        "a push in flight when the broker drops is finished and recorded",
        "workers/app.py",
        "        conf.worker_cancel_long_running_tasks_on_connection_loss = False",
        "        conf.worker_cancel_long_running_tasks_on_connection_loss = True",
        "tests/e2e/test_outages.py::test_a_push_in_flight_when_the_broker_drops_is_finished_and_recorded",
    ),
    Mutant(
        "a delivery its sender left claimed is never sent again, and settles unknown",
        "infra/notifications.py",
        '        elif not waiting and "sending" in statuses:',
        "        elif False:",
        "tests/workers/test_notifications.py::test_a_delivery_its_sender_left_claimed_is_not_sent_again_and_settles_unknown",
    ),
    Mutant(
        "no SDK adapter retries on the real FCM URL",
        "infra/push.py",
        'for prefix in {"http://", "https://", *session.adapters}:',
        'for prefix in ("http://", "https://"):',
        "tests/contract/test_fcm.py::test_no_adapter_of_the_sdk_retries_on_the_real_fcm_url",
    ),
    Mutant(
        "a payload FCM refuses never deletes a device",
        "infra/push.py",
        "def _token_is_invalid(exc: exceptions.InvalidArgumentError) -> bool:\n",
        "def _token_is_invalid(exc: exceptions.InvalidArgumentError) -> bool:\n    return True\n",
        "tests/contract/test_fcm.py::test_a_payload_fcm_refuses_keeps_the_token",
    ),
    Mutant(
        "every ride event that tells someone is logged and delivered",
        "domain/notifications.py",
        "    if status is RideStatus.ACCEPTED:\n        return to(",
        "    if status is RideStatus.ACCEPTED:\n        return [] and to(",
        "tests/workers/test_notifications.py::test_every_step_of_a_ride_reaches_each_device_once",
    ),
    Mutant(
        "promotions never delay a ride's push",
        "infra/routing.py",
        "PUSH_QUEUES = (Queue.NOTIFICATIONS, Queue.PROMOTIONS)",
        "PUSH_QUEUES = (Queue.PROMOTIONS, Queue.NOTIFICATIONS)",
        "tests/workers/test_notifications.py::test_a_broadcast_never_delays_a_rides_push",
    ),
    Mutant(
        "a 202 means the fix is in Redis",
        "infra/live/lua/apply_pings.lua",
        "redis.call('HSET', pos_key, 'lat'",
        "redis.call('HSET', pos_key .. 'x', 'lat'",
        "tests/api/test_location.py::test_a_single_ping_moves_the_driver",
    ),
    Mutant(
        "every accepted fix of an active ride reaches its followers (batches too)",
        "infra/live/lua/apply_pings.lua",
        "  for k, fix in ipairs(published) do",
        "  for k, fix in ipairs({published[#published]}) do",
        "tests/api/test_location.py::test_every_accepted_fix_of_a_batch_reaches_the_rides_stream_in_order",
    ),
    Mutant(
        "a trip fix accepted but never published (the process killed) is published on its resend",
        "infra/live/lua/apply_pings.lua",
        "    if on_ride then published[#published + 1] = {b, lts ~= nil and ts >= lts} end",
        "    if false then published[#published + 1] = {b, lts ~= nil and ts >= lts} end",
        "tests/api/test_location.py::test_a_trip_fix_whose_second_step_never_ran_reaches_the_stream_on_its_resend",
    ),
    Mutant(
        "a trip fix answered on a cluster is on the replica a failover promotes (WAIT)",
        "infra/live/positions.py",
        "        fenced = bool(fixes) and self.wait_replicas > 0",
        "        fenced = False",
        "tests/infra/test_replicas.py::test_a_trip_fix_is_answered_once_the_replica_has_it",
    ),
    Mutant(
        "an event pub/sub lost reaches a quiet stream's client from the stream",
        "api/routers/streams.py",
        "                if last or after is None:",
        "                if False:",
        "tests/e2e/test_sse.py::test_an_event_pub_sub_lost_comes_from_the_stream_once_it_is_quiet",
    ),
    Mutant(
        "a live event after one pub/sub lost brings the lost one first",
        "api/routers/streams.py",
        "            if seen is not None and live_event.prev and live_event.prev != seen:",
        "            if False:",
        "tests/e2e/test_sse.py::test_a_live_event_after_one_pub_sub_lost_brings_the_lost_one_first",
    ),
    Mutant(
        "a trip fix sent again is on the ride's stream once",
        "infra/live/lua/emit_fixes.lua",
        "  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then",
        "  if redis.call('SADD', KEYS[2], ARGV[i]) >= 0 then",
        "tests/api/test_location.py::test_a_trip_fix_whose_second_step_never_ran_reaches_the_stream_on_its_resend",
    ),
    Mutant(
        "a ride change reaches Redis even if the process dies after the commit (outbox sweep)",
        "domain/usecases/sweeps.py",
        "    return uow.jobs.resend_stale(older_than_s)",
        "    return 0",
        "tests/workers/test_publish.py::test_a_publish_lost_to_redis_is_repaired_by_the_outbox_sweep",
    ),
    Mutant(
        "every ride changed in a unit of work is recorded when it commits (no path skips it)",
        "domain/usecases/follow_ups.py",
        "    for ride in uow.rides.changed():\n        record(uow, ride)",
        "    for ride in uow.rides.changed():\n        pass",
        "tests/unit/test_ride_usecases.py::test_a_ride_changed_on_a_path_that_records_nothing_still_gets_its_follow_ups",
    ),
    Mutant(
        "every payment changed in a unit of work is booked and told when it commits",
        "domain/usecases/card_payments.py",
        "            _record_received(uow, payment)",
        "            pass",
        "tests/unit/test_card_payments.py::test_a_payment_changed_on_a_path_that_books_nothing_is_still_booked_and_told_once",
    ),
    Mutant(
        "only an object's owners (and admins) reach it",
        "domain/access.py",
        "        return Access.PARTICIPANT if str(passenger_id) == me else Access.NONE",
        "        return Access.PARTICIPANT",
        "tests/e2e/test_access_matrix.py",
    ),
    Mutant(
        "tokens cannot be forged",
        "infra/security.py",
        'options={"require": ["exp", "sub", "typ"], "verify_exp": False},',
        'options={"require": ["exp", "sub", "typ"], "verify_exp": False, '
        '"verify_signature": False},',
        "tests/api/test_security.py",
    ),
    Mutant(
        "races are decided by the database (the ride's row lock)",
        "infra/rides.py",
        "        if for_update:\n            stmt = stmt.with_for_update()",
        "        if False:\n            stmt = stmt.with_for_update()",
        "tests/api/test_concurrency.py",
    ),
    Mutant(
        "no 500 for bad input (text the database cannot hold is a 422)",
        "infra/db.py",
        "        if _unstorable_text(exc):",
        "        if False:",
        "tests/api/test_text.py",
    ),
    Mutant(
        "an unexpected error is a 500 in the one shape, the connection lives (Edge)",
        "api/middleware.py",
        'await _send_error(tracker, 500, "internal error", "internal_error")',
        "raise",
        "tests/e2e/test_resilience.py::test_an_unexpected_error_is_a_500_in_the_one_shape_and_the_connection_lives",
    ),
    Mutant(
        "every accepted fix of a trip is in its path while Redis lags (kept from acceptance)",
        "infra/live/lua/apply_pings.lua",
        "local on_ride = ride_id and DRIVER_ACTIVE[ride_status]",
        "local on_ride = ride_id and (ride_status == IN_PROGRESS or ride_status == ARRIVED)",
        "tests/workers/test_trip.py::test_a_start_the_hot_path_learns_of_late_loses_no_fix",
    ),
    Mutant(
        "a publish failed in a Redis blip is repeated within seconds (in-process retry)",
        "infra/jobs.py",
        "    delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)",
        "    delays_s: tuple[float, ...] = ()",
        "tests/workers/test_publish.py::test_a_publish_lost_to_a_redis_blip_is_repeated_in_process_within_seconds",
    ),
    Mutant(
        "a stored fix is acknowledged whatever its notices do",
        "api/routers/location.py",
        "        except Exception:  # the fixes are stored: the answer must say so",
        "        except ZeroDivisionError:  # the fixes are stored: the answer must say so",
        "tests/workers/test_notifications.py::test_a_fix_is_accepted_when_the_arriving_notice_cannot_be_sent",
    ),
    Mutant(
        "a job lost with its worker is sent again within 4 periods, never later",
        "infra/jobs.py",
        "MAX_BACKOFF = 4",
        "MAX_BACKOFF = 64",
        "tests/infra/test_outbox.py",
    ),
]


def run(rows: list[int]) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="ridehail-mutations-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(scratch), "HEAD"],
        check=True,
    )
    (scratch / ".venv").symlink_to(ROOT / ".venv")
    table = ["| promise | mutation | test | failed |", "|---|---|---|---|"]
    bad = 0
    try:
        for i in rows:
            m = MUTANTS[i]
            subprocess.run(["git", "-C", str(scratch), "checkout", "-q", "--", "."], check=True)
            target = scratch / m.path
            text = target.read_text()
            if text.count(m.old) != 1:
                print(f"{i:2} NOT APPLIED  {m.promise} ({m.path}: the code moved)", flush=True)
                table.append(f"| {m.promise} | {m.path}: not applied | {m.tests} | ? |")
                bad += 1
                continue
            target.write_text(text.replace(m.old, m.new))
            started = time.monotonic()
            result = subprocess.run(
                [str(ROOT / ".venv/bin/pytest"), "-q", "-x", "-p", "no:cacheprovider"]
                + m.tests.split(),
                cwd=scratch,
                env={**os.environ, "PYTHONPATH": str(scratch)},
                capture_output=True,
                text=True,
                timeout=900,
            )
            failed = result.returncode != 0
            bad += not failed
            took = time.monotonic() - started
            print(
                f"{i:2} {'failed  ' if failed else 'SURVIVED'} {m.promise} ({took:.0f} s)",
                flush=True,
            )
            change = m.new.strip().replace("\n", " ").replace("|", "\\|")
            table.append(
                f"| {m.promise} | `{m.path}`: `{change[:70]}` | `{m.tests}` | "
                f"{'yes' if failed else '**no**'} |"
            )
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch)], check=False
        )
    print("\n".join(table))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", nargs="*", type=int, help="row numbers (default: all)")
    args = p.parse_args(argv)
    return run(args.rows or list(range(len(MUTANTS))))


if __name__ == "__main__":
    sys.exit(main())
