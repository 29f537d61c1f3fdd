/**
 * The passenger's page: sign in, save a card (Stripe.js), request a ride (cash or card),
 * follow the driver on the map with the route and the ETA, a banner for each ride event,
 * pay, and rate the driver once the ride is over.
 */
import type { components, Follow, RideFrame } from "@ridehail/client";
import * as L from "leaflet";
import {
  $,
  complain,
  action,
  banner,
  CITY,
  decodePolyline,
  dot,
  kitFor,
  loadConfig,
  loadStripe,
  logEvent,
  makeMap,
  minutes,
  money,
  ok,
  RatingModal,
  say,
  show,
  signedIn,
  wireSignOut,
  type StripeCard,
  type StripeJs,
} from "./common.js";

type Ride = components["schemas"]["RidePublic"];
type RideStatus = components["schemas"]["RideStatus"];
type LatLng = components["schemas"]["LatLng"];

const TERMINAL: ReadonlySet<RideStatus> = new Set(["completed", "cancelled", "no_show", "expired"]);
const WORDS: Record<RideStatus, string> = {
  requested: "Looking for a driver",
  accepted: "A driver accepted: on the way to you",
  arrived: "Your driver is here",
  in_progress: "On the way to your destination",
  completed: "You have arrived. Thanks for riding!",
  cancelled: "The ride was cancelled",
  no_show: "The driver marked you as not there",
  expired: "No driver was found",
};

/** What the page shows, for a person and for the browser tests. */
const state = {
  role: "passenger" as const,
  rideId: null as string | null,
  status: null as RideStatus | null,
  mode: "stream" as string,
  driver: null as [number, number] | null,
  events: [] as { event: string; key: string }[],
  paid: null as string | null,
  rated: false,
  userId: null as string | null,
  /** what the platform last said of the network */
  network: "online" as "online" | "offline",
};
(window as unknown as { ridehailApp: typeof state }).ridehailApp = state;

const kit = kitFor("passenger");
const config = await loadConfig();
const map = makeMap(config);
const layers = {
  pickup: L.circleMarker(CITY, dot("#1a7f37")),
  dropoff: L.circleMarker(CITY, dot("#cf222e")),
  driver: L.circleMarker(CITY, { ...dot("#0969da", 9), className: "driver-marker" }),
  approach: L.polyline([], { color: "#0969da", weight: 4, dashArray: "6 8" }),
  trip: L.polyline([], { color: "#1f2328", weight: 5, opacity: 0.8 }),
};
const here = { pickup: null as LatLng | null, dropoff: null as LatLng | null, ride: null as Ride | null };
let following: Follow | null = null;
let stripe: StripeJs | null = null;
let card: StripeCard | null = null;

const parse = (text: string): LatLng | null => {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  return m ? { lat: Number(m[1]), lng: Number(m[2]) } : null;
};
const fmt = (p: LatLng) => `${p.lat.toFixed(5)}, ${p.lng.toFixed(5)}`;

function place(which: "pickup" | "dropoff", point: LatLng): void {
  here[which] = point;
  $<HTMLInputElement>(which).value = fmt(point);
  layers[which].setLatLng([point.lat, point.lng]).addTo(map);
  drawRoute();
}

/** Driver to pickup (dashed) while it approaches; pickup (or the car) to drop-off after. */
function drawRoute(): void {
  const ride = here.ride;
  const pickup = here.pickup;
  const dropoff = here.dropoff;
  if (!pickup || !dropoff) return;
  const status = ride?.status;
  const car = state.driver;
  if (status === "completed" && ride?.route_polyline) {
    layers.trip.setLatLngs(decodePolyline(ride.route_polyline)).addTo(map);
    layers.approach.remove();
    return;
  }
  const approaching = status === "accepted" || status === "arrived";
  if (approaching && car) {
    layers.approach.setLatLngs([car, [pickup.lat, pickup.lng]]).addTo(map);
  } else {
    layers.approach.remove();
  }
  const from: L.LatLngExpression = status === "in_progress" && car ? car : [pickup.lat, pickup.lng];
  layers.trip.setLatLngs([from, [dropoff.lat, dropoff.lng]]).addTo(map);
}

// -- the cars around, before a ride ----------------------------------------------------------

const around = L.layerGroup().addTo(map);

async function showNearby(): Promise<void> {
  const pickup = here.pickup;
  if (!pickup || !$("request-panel").checkVisibility()) {
    around.clearLayers();
    return;
  }
  const page = await ok(
    kit.api.GET("/api/v1/drivers/nearby", {
      params: { query: { lat: pickup.lat, lng: pickup.lng, radius_m: 3000, limit: 50 } },
    }),
  ).catch(() => null);
  if (!page) return;
  around.clearLayers();
  for (const car of page.items) L.circleMarker([car.lat, car.lng], { ...dot("#8c959f", 5), className: "nearby" }).addTo(around);
  $("nearby-count").textContent = page.items.length
    ? `${page.items.length} car${page.items.length > 1 ? "s" : ""} nearby, the closest ${(page.items[0]!.distance_m / 1000).toFixed(1)} km away`
    : "No car nearby right now";
}

// -- cards ---------------------------------------------------------------------------------

async function loadCards(): Promise<void> {
  const page = await ok(kit.api.GET("/api/v1/payments/methods"));
  const select = $<HTMLSelectElement>("card-select");
  select.replaceChildren(
    ...page.items.map((c) => {
      const option = new Option(`${c.brand} •••• ${c.last4} (${c.exp_month}/${c.exp_year})`, c.id);
      option.selected = c.default;
      return option;
    }),
  );
  $("cards-none").hidden = page.items.length > 0;
}

async function saveCard(): Promise<void> {
  if (!stripe || !card) throw new Error("Cards are not available here (Stripe is not configured).");
  const intent = await ok(kit.api.POST("/api/v1/payments/setup-intent"));
  say("Saving your card…");
  const { setupIntent, error } = await stripe.confirmCardSetup(intent.client_secret, {
    payment_method: { card },
  });
  if (error || !setupIntent) throw new Error(error?.message ?? "The card was not saved.");
  card.clear();
  // the card reaches our side through Stripe (the webhook) or the listing: wait for it
  for (let i = 0; i < 20; i++) {
    await loadCards();
    if ([...$<HTMLSelectElement>("card-select").options].some((o) => o.value === setupIntent.payment_method)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  $<HTMLSelectElement>("payment").value = "card";
  say("Card saved.");
  banner("Your card is saved");
}

// -- a ride --------------------------------------------------------------------------------

function showRide(ride: Ride): void {
  here.ride = ride;
  state.rideId = ride.id;
  state.status = ride.status;
  show("request-panel", TERMINAL.has(ride.status));
  show("ride-panel", true);
  $("ride-status").textContent = WORDS[ride.status];
  $("ride-status").dataset.status = ride.status;
  $("ride-price").textContent = ride.fare ? `Fare ${money(ride.fare)}` : `About ${money(ride.estimate)}`;
  $("ride-pay").textContent = ride.payment === "card" ? "card" : "cash";
  show("cancel", ["requested", "accepted", "arrived"].includes(ride.status));
  place("pickup", ride.pickup);
  place("dropoff", ride.dropoff);
}

/** Keep the ride in view: pickup, drop-off and the car. */
function fit(): void {
  const points: L.LatLngTuple[] = [];
  if (here.pickup) points.push([here.pickup.lat, here.pickup.lng]);
  if (here.dropoff) points.push([here.dropoff.lat, here.dropoff.lng]);
  if (state.driver) points.push(state.driver);
  if (points.length > 1) map.fitBounds(L.latLngBounds(points), { padding: [48, 48], maxZoom: 16, animate: false });
}

function openRide(): void {
  $("ride-panel").scrollIntoView({ behavior: "smooth" });
  if (state.driver) map.panTo(state.driver);
}

function onEvent(frame: RideFrame): void {
  switch (frame.event) {
    case "status": {
      const status = frame.data.status;
      state.events.push({ event: "status", key: status });
      logEvent("status", `status: ${status}`);
      banner(WORDS[status], openRide);
      refreshRide(status).catch(complain);
      break;
    }
    case "location": {
      const p = frame.data;
      state.events.push({ event: "location", key: p.recorded_at ?? "" });
      state.driver = [p.lat, p.lng];
      layers.driver.setLatLng(state.driver).addTo(map);
      if (!map.getBounds().pad(-0.1).contains(state.driver)) fit();
      logEvent("location", `driver at ${p.lat.toFixed(5)}, ${p.lng.toFixed(5)}`);
      drawRoute();
      break;
    }
    case "eta": {
      const e = frame.data;
      if (state.status && TERMINAL.has(state.status)) break; // the ride is over
      state.events.push({ event: "eta", key: `${e.at} ${e.seconds}` });
      const to = e.target === "pickup" ? "to you" : "to your destination";
      $("ride-eta").textContent = `${minutes(e.seconds)} ${to} (${(e.distance_m / 1000).toFixed(1)} km)`;
      logEvent("eta", `eta ${e.target}: ${minutes(e.seconds)}`);
      break;
    }
  }
}

async function refreshRide(status: RideStatus): Promise<void> {
  if (!state.rideId) return;
  const ride = await ok(kit.api.GET("/api/v1/rides/{ride_id}", { params: { path: { ride_id: state.rideId } } }));
  if (ride.view !== "ride") return;
  showRide(status === ride.status ? ride : { ...ride, status });
  if (status === "completed") openRating(ride);
  if (ride.payment === "card" && (status === "accepted" || status === "completed")) await checkPayment(ride);
  if (TERMINAL.has(status)) $("ride-eta").textContent = "";
}

/** A card ride: the hold while riding, the charge at the end; 3-D Secure when the bank asks. */
async function checkPayment(ride: Ride): Promise<void> {
  for (let attempt = 0; attempt < 120; attempt++) {
    const page = await ok(kit.api.GET("/api/v1/payments", { params: { query: { ride_id: ride.id } } }));
    const hold = page.items.find((p) => p.kind === "authorization");
    if (hold?.status === "requires_action" && stripe) {
      banner("Your bank asks you to confirm the payment", openRide);
      const intent = await ok(kit.api.POST("/api/v1/payments/intent", { body: { ride_id: ride.id } }));
      if (!intent.client_secret) return; // nothing for the device to do
      const { error } = await stripe.confirmCardPayment(intent.client_secret);
      if (error) throw new Error(error.message);
      await ok(
        kit.api.POST("/api/v1/payments/{payment_id}/confirm", {
          params: { path: { payment_id: intent.payment_id } },
        }),
      );
      continue;
    }
    if (ride.status !== "completed" && hold && hold.status !== "pending") return;
    if (hold?.status === "succeeded") {
      state.paid = money({ amount: hold.amount_received ?? hold.amount, currency: hold.currency });
      $("ride-paid").textContent = `Paid ${state.paid} by card`;
      banner(`Paid ${state.paid} by card`, openRide);
      return;
    }
    if (hold?.status === "failed" || hold?.status === "canceled") {
      $("ride-paid").textContent = `The card payment ${hold.status}: ${hold.failure_code ?? ""}`;
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function follow(ride: Ride): void {
  following?.stop();
  state.events = [];
  $("timeline").replaceChildren();
  showRide(ride);
  fit();
  following = kit.followRide(
    ride.id,
    {
      event: onEvent,
      mode: (mode) => {
        state.mode = mode;
        $("mode").textContent = mode === "stream" ? "live" : "polling";
        logEvent("mode", mode === "stream" ? "streaming again" : "streaming is blocked: polling");
      },
      failed: (error) => say(error.message, true),
    },
  );
}

async function requestRide(): Promise<void> {
  const pickup = parse($<HTMLInputElement>("pickup").value);
  const dropoff = parse($<HTMLInputElement>("dropoff").value);
  if (!pickup || !dropoff) throw new Error("Pickup and drop-off: 'lat, lng', or tap the map.");
  const payment = $<HTMLSelectElement>("payment").value as "cash" | "card";
  const methodId = $<HTMLSelectElement>("card-select").value;
  if (payment === "card" && !methodId) throw new Error("Save a card first, or pay cash.");
  here.pickup = pickup;
  here.dropoff = dropoff;
  state.driver = null;
  state.paid = null;
  state.rated = false;
  layers.driver.remove();
  $("ride-paid").textContent = "";
  const ride = await ok(
    kit.api.POST("/api/v1/rides", {
      body: { pickup, dropoff, payment, payment_method_id: payment === "card" ? methodId : null },
    }),
  );
  say("");
  follow(ride);
}

// -- rating --------------------------------------------------------------------------------

const rating = new RatingModal(kit, "passenger");

function openRating(ride: Ride): void {
  if (state.rated || rating.open) return;
  $("rating-ride").textContent = ride.fare ? `Fare ${money(ride.fare)}` : "";
  rating.show();
}

async function submitRating(): Promise<void> {
  if (!state.rideId) return;
  await rating.send(state.rideId);
  state.rated = true;
  banner("Thanks for rating your driver");
  say("Thanks for your rating.");
}

// -- start ---------------------------------------------------------------------------------

const user = await signedIn(kit, "passenger");
state.userId = user.id;
$("who").textContent = `${user.name} (${user.email})`;
wireSignOut(kit);
show("main", true);
map.invalidateSize();
place("pickup", { lat: CITY[0], lng: CITY[1] });
place("dropoff", { lat: CITY[0] + 0.012, lng: CITY[1] + 0.018 });
for (const which of ["pickup", "dropoff"] as const) {
  $(which).addEventListener("change", () => {
    const point = parse($<HTMLInputElement>(which).value);
    if (!point) return say("Pickup and drop-off: 'lat, lng', or tap the map.", true);
    place(which, point);
    map.panTo([point.lat, point.lng]);
    if (which === "pickup") showNearby().catch(() => undefined);
  });
}
let next: "pickup" | "dropoff" = "pickup";
map.on("click", (e: L.LeafletMouseEvent) => {
  if (!$("request-panel").hidden) {
    place(next, { lat: e.latlng.lat, lng: e.latlng.lng });
    next = next === "pickup" ? "dropoff" : "pickup";
  }
});
stripe = await loadStripe(config);
if (stripe) {
  card = stripe.elements().create("card");
  card.mount("#card-element");
} else {
  $("card-element").textContent = "Cards are not set up on this server: cash works.";
}
action("save-card", saveCard);
action("estimate", async () => {
  const pickup = parse($<HTMLInputElement>("pickup").value);
  const dropoff = parse($<HTMLInputElement>("dropoff").value);
  if (!pickup || !dropoff) throw new Error("Pickup and drop-off: 'lat, lng', or tap the map.");
  const e = await ok(kit.api.POST("/api/v1/rides/estimate", { body: { pickup, dropoff } }));
  $("estimate-out").textContent = `${money(e)} · ${(e.distance_m / 1000).toFixed(1)} km · ${minutes(e.duration_s)}`;
});
action("request", requestRide);
action("cancel", async () => {
  if (!state.rideId) return;
  await ok(
    kit.api.POST("/api/v1/rides/{ride_id}/cancel", {
      params: { path: { ride_id: state.rideId } },
      body: { reason: "changed my mind" },
    }),
  );
});
action("rating-submit", submitRating);
// the platform's word on the network: when it goes, the open stream is dead (even where the
// socket lingers); when it is back, resume at once from the last event rather than after a backoff
window.addEventListener("offline", () => {
  state.network = "offline";
  following?.reconnect();
});
window.addEventListener("online", () => {
  state.network = "online";
  following?.reconnect();
});
await Promise.all([loadCards(), rating.loadTags(), showNearby()]);
setInterval(() => showNearby().catch(() => undefined), 5_000);
// a ride under way (the page reloaded, or a tap on a notification): follow it again
const mine = await ok(kit.api.GET("/api/v1/rides", { params: { query: { limit: 1 } } }));
const last = mine.items[0];
if (last && !TERMINAL.has(last.status)) follow(last);
