/**
 * The driver's page: go online, report the browser's Geolocation on the service's cadence
 * (the kit's LocationReporter: queued while offline, sent as one batch when back), take an
 * offer before its countdown ends or decline it, arrive, start, complete (cash: record it),
 * rate the passenger, see earnings.
 */
import type { components, DriverFrame, Fix, Follow, LocationReporter } from "@ridehail/client";
import * as L from "leaflet";
import {
  $,
  complain,
  action,
  banner,
  CITY,
  dot,
  kitFor,
  loadConfig,
  logEvent,
  makeMap,
  money,
  ok,
  RatingModal,
  say,
  show,
  signedIn,
  wireSignOut,
} from "./common.js";

type Offer = components["schemas"]["OfferEvent"];
type Ride = components["schemas"]["RidePublic"];
type RideStatus = components["schemas"]["RideStatus"];

const TERMINAL: ReadonlySet<RideStatus> = new Set(["completed", "cancelled", "no_show", "expired"]);
const STEP: Partial<Record<RideStatus, { id: string; label: string }>> = {
  accepted: { id: "arrive", label: "I have arrived" },
  arrived: { id: "start", label: "Start the trip" },
  in_progress: { id: "complete", label: "Complete the ride" },
};

/** What the page shows, for a person and for the browser tests. */
const state = {
  role: "driver" as const,
  online: false,
  position: null as [number, number] | null,
  reported: 0,
  offer: null as Offer | null,
  rideId: null as string | null,
  status: null as RideStatus | null,
  events: [] as { event: string; key: string }[],
  rated: false,
  userId: null as string | null,
};
(window as unknown as { ridehailApp: typeof state }).ridehailApp = state;

const kit = kitFor("driver");
const config = await loadConfig();
const map = makeMap(config);
const layers = {
  me: L.circleMarker(CITY, { ...dot("#0969da", 9), className: "me-marker" }),
  pickup: L.circleMarker(CITY, dot("#1a7f37")),
  dropoff: L.circleMarker(CITY, dot("#cf222e")),
  route: L.polyline([], { color: "#0969da", weight: 4, dashArray: "6 8" }),
};
let channel: Follow | null = null;
let reporter: LocationReporter | null = null;
let watch: number | null = null;
let latest: GeolocationPosition | null = null;
let countdown: ReturnType<typeof setInterval> | null = null;
let ride: Ride | null = null;

// -- location ------------------------------------------------------------------------------

function fixNow(): Fix {
  if (!latest) throw new Error("no position yet");
  const c = latest.coords;
  return {
    lat: c.latitude,
    lng: c.longitude,
    // the device's position as of now: a car standing still is still reported
    recorded_at: new Date().toISOString(),
    accuracy: c.accuracy ?? null,
    heading: c.heading != null && !Number.isNaN(c.heading) ? c.heading : null,
    speed: c.speed != null && !Number.isNaN(c.speed) ? c.speed : null,
  };
}

function moved(position: GeolocationPosition): void {
  const first = latest === null;
  latest = position;
  state.position = [position.coords.latitude, position.coords.longitude];
  layers.me.setLatLng(state.position).addTo(map);
  $("position").textContent = `${state.position[0].toFixed(5)}, ${state.position[1].toFixed(5)}`;
  drawRoute();
  if (first) map.setView(state.position, 15);
  else if (!map.getBounds().pad(-0.1).contains(state.position)) map.panTo(state.position);
  // a move is worth telling at once on a ride (the passenger watches); the cadence does the rest
  if (reporter && (first || state.rideId)) send().catch(complain);
}

async function send(): Promise<void> {
  if (!reporter || !latest) return;
  const answer = await reporter.report(fixNow()).catch(() => null);
  if (answer) state.reported += answer.accepted;
  $("queued").textContent = String((await reporter.queued()).length);
}

function startReporting(): void {
  if (!("geolocation" in navigator)) throw new Error("This browser has no Geolocation.");
  reporter = kit.reporter();
  const failed = (e: GeolocationPositionError) => {
    // a passing failure while a fix is held changes nothing; without any, say why
    if (!latest) say(`No location yet: ${e.message || `error ${e.code}`}. Allow location for this page.`, true);
  };
  watch = navigator.geolocation.watchPosition(moved, failed, {
    enableHighAccuracy: true,
    maximumAge: 0,
  });
  const tick = async () => {
    if (!state.online) return;
    await send();
    const wait = reporter?.nextPingInS ?? 5;
    setTimeout(tick, Math.max(1, wait || 5) * 1000);
  };
  setTimeout(tick, 1000);
}

function stopReporting(): void {
  if (watch !== null) navigator.geolocation.clearWatch(watch);
  watch = null;
  reporter?.stop();
  reporter = null;
}

async function setOnline(online: boolean): Promise<void> {
  await ok(kit.api.POST("/api/v1/drivers/me/status", { body: { status: online ? "online" : "offline" } }));
  state.online = online;
  $("online").textContent = online ? "Go offline" : "Go online";
  $("online-state").textContent = online ? "online" : "offline";
  $("online-state").dataset.online = String(online);
  if (online) {
    startReporting();
    listen();
  } else {
    stopReporting();
    channel?.stop();
    channel = null;
  }
}

// -- offers and the ride --------------------------------------------------------------------

function drawRoute(): void {
  const target = state.status === "in_progress" ? ride?.dropoff : (ride?.pickup ?? state.offer?.pickup);
  if (target && state.position && !TERMINAL.has(state.status ?? "requested")) {
    layers.route.setLatLngs([state.position, [target.lat, target.lng]]).addTo(map);
  } else {
    layers.route.remove();
  }
}

/** Keep the car and where it goes in view. */
function fit(...targets: { lat: number; lng: number }[]): void {
  const points: L.LatLngTuple[] = targets.map((t) => [t.lat, t.lng]);
  if (state.position) points.push(state.position);
  if (points.length > 1) map.fitBounds(L.latLngBounds(points), { padding: [48, 48], maxZoom: 16, animate: false });
}

function showOffer(offer: Offer): void {
  state.offer = offer;
  show("offer-panel", true);
  $("offer-price").textContent = money(offer.estimate);
  $("offer-distance").textContent = `${(offer.distance_m / 1000).toFixed(1)} km trip`;
  layers.pickup.setLatLng([offer.pickup.lat, offer.pickup.lng]).addTo(map);
  layers.dropoff.setLatLng([offer.dropoff.lat, offer.dropoff.lng]).addTo(map);
  drawRoute();
  fit(offer.pickup, offer.dropoff);
  if (countdown) clearInterval(countdown);
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(offer.expires_at) - Date.now()) / 1000));
    $("offer-countdown").textContent = `${left} s`;
    if (left === 0) hideOffer("The offer ran out.");
  };
  tick();
  countdown = setInterval(tick, 250);
}

function hideOffer(why?: string): void {
  if (countdown) clearInterval(countdown);
  countdown = null;
  state.offer = null;
  show("offer-panel", false);
  if (why) say(why);
  if (!state.rideId) {
    layers.pickup.remove();
    layers.dropoff.remove();
    layers.route.remove();
  }
}

function showRide(shown: Ride): void {
  ride = shown;
  state.rideId = shown.id;
  state.status = shown.status;
  show("ride-panel", true);
  $("ride-status").textContent = shown.status.replaceAll("_", " ");
  $("ride-status").dataset.status = shown.status;
  $("ride-price").textContent = shown.fare ? money(shown.fare) : `about ${money(shown.estimate)}`;
  $("ride-pay").textContent = shown.payment;
  const step = STEP[shown.status];
  const button = $<HTMLButtonElement>("step");
  button.hidden = !step;
  if (step) {
    button.dataset.step = step.id;
    button.textContent = step.label;
  }
  show("cash-row", shown.status === "completed" && shown.payment === "cash");
  layers.pickup.setLatLng([shown.pickup.lat, shown.pickup.lng]).addTo(map);
  layers.dropoff.setLatLng([shown.dropoff.lat, shown.dropoff.lng]).addTo(map);
  drawRoute();
}

async function reload(rideId: string): Promise<Ride | null> {
  const shown = await ok(kit.api.GET("/api/v1/rides/{ride_id}", { params: { path: { ride_id: rideId } } }));
  if (shown.view !== "ride") return null;
  showRide(shown);
  return shown;
}

function onFrame(frame: DriverFrame): void {
  switch (frame.event) {
    case "offer":
      state.events.push({ event: "offer", key: frame.data.offer_id });
      logEvent("offer", `offer ${money(frame.data.estimate)}`);
      if (!state.rideId) {
        showOffer(frame.data);
        banner(`New ride offer: ${money(frame.data.estimate)}`, () => $("offer-panel").scrollIntoView());
      }
      break;
    case "offer_withdrawn":
      state.events.push({ event: "offer_withdrawn", key: frame.data.ride_id });
      logEvent("offer_withdrawn", `offer withdrawn (${frame.data.reason})`);
      if (state.offer?.ride_id === frame.data.ride_id) {
        hideOffer();
        banner(`The offer was withdrawn (${frame.data.reason.replaceAll("_", " ")})`);
      }
      break;
    case "ride_status":
      state.events.push({ event: "ride_status", key: `${frame.data.ride_id} ${frame.data.status}` });
      logEvent("ride_status", `ride ${frame.data.status}`);
      if (frame.data.ride_id === state.rideId && frame.data.status !== state.status) {
        banner(`The ride is ${frame.data.status.replaceAll("_", " ")}`, () => $("ride-panel").scrollIntoView());
        reload(frame.data.ride_id)
          .then((r) => r && finished(r))
          .catch(complain);
      }
      break;
  }
}

function listen(): void {
  channel?.stop();
  channel = kit.driverChannel({ event: onFrame, failed: (e) => say(e.message, true) });
}

async function accept(): Promise<void> {
  const offer = state.offer;
  if (!offer) return;
  const accepted = await ok(
    kit.api.POST("/api/v1/rides/{ride_id}/accept", { params: { path: { ride_id: offer.ride_id } } }),
  );
  hideOffer();
  state.rated = false;
  showRide(accepted);
  fit(accepted.pickup, accepted.dropoff);
  banner("Ride accepted: drive to the pickup");
  send().catch(complain);
}

async function decline(): Promise<void> {
  const offer = state.offer;
  if (!offer) return;
  hideOffer("Declined.");
  await ok(kit.api.POST("/api/v1/rides/{ride_id}/decline", { params: { path: { ride_id: offer.ride_id } } }));
}

async function step(): Promise<void> {
  if (!state.rideId) return;
  const which = $("step").dataset.step as "arrive" | "start" | "complete";
  const path = {
    arrive: "/api/v1/rides/{ride_id}/arrive",
    start: "/api/v1/rides/{ride_id}/start",
    complete: "/api/v1/rides/{ride_id}/complete",
  } as const;
  await send(); // the last position first: the trip's path and fare end where the car is
  const shown = await ok(kit.api.POST(path[which], { params: { path: { ride_id: state.rideId } } }));
  showRide(shown);
  finished(shown);
}

function finished(shown: Ride): void {
  if (shown.status === "completed" && !state.rated) {
    $<HTMLInputElement>("cash-amount").value = String(shown.fare?.amount ?? shown.estimate?.amount ?? 0);
    rating.show();
    earningsOf(shown.id).catch(complain);
  } else if (TERMINAL.has(shown.status) && shown.status !== "completed") {
    endRide();
  }
}

function endRide(): void {
  state.rideId = null;
  state.status = null;
  ride = null;
  show("ride-panel", false);
  layers.pickup.remove();
  layers.dropoff.remove();
  layers.route.remove();
}

// -- rating and earnings -------------------------------------------------------------------

const rating = new RatingModal(kit, "driver");

async function submitRating(): Promise<void> {
  if (!state.rideId) return;
  await rating.send(state.rideId);
  state.rated = true;
  say("Thanks for your rating.");
  if (!(ride?.payment === "cash" && !$("cash-row").hidden)) endRide();
}

/** The ride's fare reaches the ledger from a worker, a moment after completion: look
 * again until its line is there. */
async function earningsOf(rideId: string): Promise<void> {
  for (let attempt = 0; attempt < 30; attempt++) {
    if ((await loadEarnings()).some((line) => line.ride_id === rideId)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function loadEarnings(): Promise<components["schemas"]["EarningLine"][]> {
  const page = await ok(kit.api.GET("/api/v1/drivers/me/earnings", { params: { query: { limit: 5 } } }));
  const balance = page.balances[0];
  $("earned").textContent = balance ? money({ amount: balance.earned, currency: balance.currency }) : "-";
  $("cash-held").textContent = balance ? money({ amount: balance.cash_held, currency: balance.currency }) : "-";
  $("payable").textContent = balance ? money({ amount: balance.net_payable, currency: balance.currency }) : "-";
  $("earning-lines").replaceChildren(
    ...page.items.map((line) => {
      const item = document.createElement("li");
      item.textContent = `${new Date(line.posted_at).toLocaleTimeString()} ${line.kind.replaceAll("_", " ")} ${money(line)}`;
      return item;
    }),
  );
  return page.items;
}

// -- start ---------------------------------------------------------------------------------

const user = await signedIn(kit, "driver");
state.userId = user.id;
$("who").textContent = `${user.name} (${user.email})`;
wireSignOut(kit);
show("main", true);
map.invalidateSize();
action("online", () => setOnline(!state.online));
action("accept", accept);
action("decline", decline);
action("step", step);
action("cash", async () => {
  if (!state.rideId) return;
  await ok(
    kit.api.POST("/api/v1/rides/{ride_id}/cash-collected", {
      params: { path: { ride_id: state.rideId } },
      body: { amount: Number($<HTMLInputElement>("cash-amount").value) },
    }),
  );
  show("cash-row", false);
  say("Cash recorded.");
  await loadEarnings();
  if (state.rated) endRide();
});
action("rating-submit", submitRating);
action("earnings-refresh", async () => void (await loadEarnings()));
window.addEventListener("offline", () => channel?.reconnect());
window.addEventListener("online", () => {
  channel?.reconnect();
  reporter?.flush().catch(complain);
});
await Promise.all([loadEarnings(), rating.loadTags()]);
// a ride under way when the page was reloaded: carry on with it
const mine = await ok(kit.api.GET("/api/v1/rides", { params: { query: { limit: 1 } } }));
const last = mine.items[0];
if (last && !TERMINAL.has(last.status) && last.status !== "requested") showRide(last);
