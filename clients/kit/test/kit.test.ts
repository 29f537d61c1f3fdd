// The kit against the real stack (`ridehail run`, started by tests/e2e/test_client_kit.py,
// which passes its address and log): a ride followed end to end, the API killed and
// restarted mid-ride with nothing lost, a refresh raced by ten requests, fixes queued
// offline and flushed in order, and the fallback to polling when streaming is blocked.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";
import {
  createRidehail,
  MemoryStorage,
  type FetchLike,
  type Fix,
  type Follow,
  type FollowOptions,
  type Ridehail,
  type RideFrame,
} from "../src/index.js";

const BASE = process.env.RIDEHAIL_BASE_URL ?? "http://127.0.0.1:8000";
const STACK_LOG = process.env.RIDEHAIL_STACK_LOG ?? "";
const PASSWORD = "correct horse battery";
let seq = 0;
/** every follow a test opened, stopped at the end whatever happened */
const opened: Follow[] = [];
after(() => opened.forEach((f) => f.stop()));

async function user(role: "passenger" | "driver", fetchImpl?: FetchLike): Promise<Ridehail> {
  const kit = createRidehail({ baseUrl: BASE, storage: new MemoryStorage(), fetch: fetchImpl });
  const email = `kit-${role}-${process.pid}-${Date.now()}-${seq++}@example.com`;
  const made = await kit.api.POST("/api/v1/auth/register", {
    body: { email, password: PASSWORD, name: `Kit ${role}`, role },
  });
  assert.equal(made.response.status, 201, JSON.stringify(made.error));
  await kit.session.signIn(email, PASSWORD);
  return kit;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/** A fix `step` steps along a line from `origin`, stamped `step` seconds after `t0`. */
function fixAt(origin: { lat: number; lng: number }, t0: number, step: number): Fix {
  return {
    lat: origin.lat + step * 0.0001,
    lng: origin.lng + step * 0.0001,
    recorded_at: new Date(t0 + step * 1000).toISOString(),
    speed: 10,
    heading: 45,
    accuracy: 5,
  };
}

/**
 * A driver online at `where`, a passenger asking for a cash ride there, the offer taken
 * from the driver's channel and accepted: the ride under way, followed by the passenger.
 */
async function rideUnderWay(where: { lat: number; lng: number }, driverFetch?: FetchLike) {
  const driver = await user("driver", driverFetch);
  const passenger = await user("passenger");
  const reporter = driver.reporter();
  const t0 = Date.now() - 10_000; // fixes a second apart, all in the past, in order
  await driver.api.POST("/api/v1/drivers/me/status", { body: { status: "online" } });
  assert.ok(await reporter.report(fixAt(where, t0, 0)));
  const offers: string[] = [];
  const channel = driver.driverChannel({
    event: (frame) => {
      if (frame.event === "offer") offers.push(frame.data.ride_id);
    },
  });
  opened.push(channel);
  const asked = await passenger.api.POST("/api/v1/rides", {
    body: { pickup: where, dropoff: { lat: where.lat - 0.02, lng: where.lng + 0.03 }, payment: "cash" },
  });
  assert.ok(asked.data, JSON.stringify(asked.error));
  const rideId = asked.data.id;
  await until("the offer on the driver's channel", async () => offers.includes(rideId));
  channel.stop();
  const accepted = await driver.api.POST("/api/v1/rides/{ride_id}/accept", {
    params: { path: { ride_id: rideId } },
  });
  assert.equal(accepted.data?.status, "accepted", JSON.stringify(accepted.error));
  return { driver, passenger, reporter, rideId, t0 };
}

function collect(passenger: Ridehail, rideId: string, options: FollowOptions = {}) {
  const events: RideFrame[] = [];
  const modes: string[] = [];
  const follow = passenger.followRide(
    rideId,
    { event: (e) => events.push(e), mode: (m) => modes.push(m) },
    // a loaded machine may be slow to send the first byte: only the buffering test
    // (which says so) should ever see the switch to polling
    { bufferedAfterMs: 20_000, ...options },
  );
  opened.push(follow);
  return { events, modes, follow };
}

async function step(kit: Ridehail, rideId: string, action: "arrive" | "start" | "complete") {
  const path = `/api/v1/rides/{ride_id}/${action}` as "/api/v1/rides/{ride_id}/arrive";
  const done = await kit.api.POST(path, { params: { path: { ride_id: rideId } } });
  assert.ok(done.data, `${action}: ${JSON.stringify(done.error)}`);
}

const statuses = (events: RideFrame[]) =>
  events.flatMap((e) => (e.event === "status" ? [e.data.status] : []));
const fixTimes = (events: RideFrame[]) =>
  events.flatMap((e) => (e.event === "location" ? [Date.parse(e.data.recorded_at ?? "")] : []));

test("a ride followed end to end: every status and fix once, in order, then the end", async () => {
  const where = { lat: 52.3, lng: 13.1 };
  const { driver, passenger, reporter, rideId, t0 } = await rideUnderWay(where);
  const { events, follow } = collect(passenger, rideId);
  for (let i = 1; i <= 3; i++) await reporter.report(fixAt(where, t0, i));
  await step(driver, rideId, "arrive");
  await step(driver, rideId, "start");
  for (let i = 4; i <= 6; i++) await reporter.report(fixAt(where, t0, i));
  await step(driver, rideId, "complete");
  await follow.done;
  assert.deepEqual(statuses(events), ["requested", "accepted", "arrived", "in_progress", "completed"]);
  const times = fixTimes(events);
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
  assert.deepEqual(times.slice(-6), [1, 2, 3, 4, 5, 6].map((i) => t0 + i * 1000));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length);
});

test("the API killed mid-ride: the stream resumes and nothing is lost or repeated", async (t) => {
  if (!STACK_LOG) return t.skip("needs the stack's log (run by tests/e2e/test_clients.py)");
  const where = { lat: 52.35, lng: 13.2 };
  const { driver, passenger, reporter, rideId, t0 } = await rideUnderWay(where);
  const { events, follow } = collect(passenger, rideId, { maxDelayMs: 2_000 });
  // and as a browser's EventSource would: no header, a stream token renewed at each connect
  const headerless = collect(passenger, rideId, {
    maxDelayMs: 2_000,
    auth: "streamToken",
    renewBeforeMs: 59_500,
  });
  await step(driver, rideId, "arrive");
  await step(driver, rideId, "start");
  for (let i = 1; i <= 3; i++) await reporter.report(fixAt(where, t0, i));
  await until("the first fixes followed", async () => fixTimes(events).length >= 3);
  // every API process (one, or each behind the proxy): the latest pid of each name
  const started = readFileSync(STACK_LOG, "utf8").matchAll(/started (api(?:-\d+)?) \(pid (\d+)\)/g);
  const pids = new Map([...started].map((m) => [m[1], Number(m[2])]));
  for (const pid of pids.values()) process.kill(pid, "SIGKILL");
  for (let i = 4; i <= 8; i++) await reporter.report(fixAt(where, t0, i)); // queued while down
  await until("the API back", async () => {
    const ready = await fetch(`${BASE}/readyz`).catch(() => null);
    return ready?.ok;
  }, 60_000);
  await until("the queue delivered", async () => (await reporter.flush(), (await reporter.queued()).length === 0));
  await step(driver, rideId, "complete");
  await follow.done;
  const times = fixTimes(events);
  const wanted = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => t0 + i * 1000);
  assert.deepEqual(times.filter((t) => t >= t0 + 1000), wanted, "every fix once, in order");
  assert.deepEqual(statuses(events), ["requested", "accepted", "arrived", "in_progress", "completed"]);
  await headerless.follow.done;
  assert.deepEqual(headerless.events, events, "the same events, by stream token");
  assert.ok(headerless.follow.tokensFetched >= 2, "a new stream token to reconnect");
});

test("ten requests racing an expired access token refresh it once", async () => {
  const kit = await user("passenger");
  const before = kit.session.refreshes;
  kit.session.expireAccess();
  const answers = await Promise.all(
    Array.from({ length: 10 }, () => kit.api.GET("/api/v1/users/me")),
  );
  assert.deepEqual(answers.map((a) => a.response.status), Array(10).fill(200));
  assert.equal(kit.session.refreshes - before, 1);
  // the refresh token is single-use: the kit holds the new one, and it works
  kit.session.expireAccess();
  assert.equal((await kit.api.GET("/api/v1/users/me")).response.status, 200);
});

test("fixes taken offline are kept in order and sent as one batch when back", async () => {
  let offline = false;
  const posts: string[] = [];
  const flaky: FetchLike = async (input, init) => {
    const request = new Request(input, init);
    if (request.method === "POST") posts.push(new URL(request.url).pathname);
    if (offline) throw new TypeError("network is unreachable");
    return fetch(request);
  };
  const where = { lat: 52.4, lng: 13.3 };
  const { driver, passenger, reporter, rideId, t0 } = await rideUnderWay(where, flaky);
  const { events, follow } = collect(passenger, rideId);
  await step(driver, rideId, "arrive");
  await step(driver, rideId, "start");
  offline = true;
  for (let i = 1; i <= 4; i++) assert.equal(await reporter.report(fixAt(where, t0, i)), null);
  assert.equal((await reporter.queued()).length, 4);
  offline = false;
  posts.length = 0;
  const answer = await reporter.flush();
  assert.deepEqual(posts, ["/api/v1/drivers/me/locations"]);
  assert.equal(answer?.accepted, 4);
  assert.equal((await reporter.queued()).length, 0);
  await until("the fixes followed", async () => fixTimes(events).length >= 4);
  assert.deepEqual(fixTimes(events).slice(-4), [1, 2, 3, 4].map((i) => t0 + i * 1000));
  await step(driver, rideId, "complete");
  await follow.done;
});

test("a stream a proxy buffers: the kit polls instead and still follows the ride", async () => {
  const where = { lat: 52.45, lng: 13.4 };
  const { driver, passenger, reporter, rideId, t0 } = await rideUnderWay(where);
  // a passenger whose network holds every event-stream back (a buffering proxy)
  const buffered: FetchLike = async (input, init) => {
    const request = new Request(input, init);
    if (request.headers.get("accept") === "text/event-stream") {
      return new Response(new ReadableStream({ start() {} }), {
        headers: { "content-type": "text/event-stream" },
      });
    }
    return fetch(request);
  };
  const blocked = createRidehail({ baseUrl: BASE, storage: new MemoryStorage(), fetch: buffered });
  await blocked.session.signIn(
    (await passenger.api.GET("/api/v1/users/me")).data?.email ?? "",
    PASSWORD,
  );
  const { events, modes, follow } = collect(blocked, rideId, {
    bufferedAfterMs: 500,
    pollEveryMs: 200,
  });
  await until("polling", async () => modes.includes("polling"));
  await step(driver, rideId, "arrive");
  await reporter.report(fixAt(where, t0, 1));
  await until("the arrival, polled", async () => statuses(events).includes("arrived"));
  await until("the fix, polled", async () => fixTimes(events).includes(t0 + 1000));
  await step(driver, rideId, "start");
  // polling sees what is there when it looks: a status it is shown, once
  await until("the start, polled", async () => statuses(events).includes("in_progress"));
  await step(driver, rideId, "complete");
  await follow.done;
  assert.deepEqual(statuses(events).slice(-3), ["arrived", "in_progress", "completed"]);
  assert.equal(new Set(statuses(events)).size, statuses(events).length, "each status once");
});

test("a stream the network refuses while plain requests pass: the kit polls and follows", async () => {
  const where = { lat: 52.46, lng: 13.41 };
  const { driver, passenger, rideId } = await rideUnderWay(where);
  let refused = 0;
  const noStreams: FetchLike = async (input, init) => {
    const request = new Request(input, init);
    if (request.headers.get("accept") === "text/event-stream") {
      refused += 1;
      throw new TypeError("Failed to fetch"); // what a browser says when a filter blocks it
    }
    return fetch(request);
  };
  const blocked = createRidehail({ baseUrl: BASE, storage: new MemoryStorage(), fetch: noStreams });
  await blocked.session.signIn(
    (await passenger.api.GET("/api/v1/users/me")).data?.email ?? "",
    PASSWORD,
  );
  const { events, modes, follow } = collect(blocked, rideId, { pollEveryMs: 200, random: () => 0 });
  await until("polling", async () => modes.includes("polling"));
  assert.equal(refused, 2, "two refused connects, then a poll that answers, then polling");
  await step(driver, rideId, "arrive");
  await until("the arrival, polled", async () => statuses(events).includes("arrived"));
  await step(driver, rideId, "start");
  await step(driver, rideId, "complete");
  await follow.done;
  assert.equal(statuses(events).at(-1), "completed");
  assert.equal(new Set(statuses(events)).size, statuses(events).length, "each status once");
});
