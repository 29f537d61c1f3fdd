/**
 * What both pages share: the kit (one per role, its storage apart), signing in, the in-app
 * banners (the foreground notification), the event timeline, the map, Stripe.js.
 */
import { createRidehail, fromWebStorage, type Ridehail } from "@ridehail/client";
import * as L from "leaflet";

export type Role = "passenger" | "driver";

export interface AppConfig {
  stripe_js_url: string;
  stripe_publishable_key: string;
  tile_url: string;
  tile_attribution: string;
}

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
};

export function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

export async function loadConfig(): Promise<AppConfig> {
  const answer = await fetch("/app/config.json");
  return (await answer.json()) as AppConfig;
}

/** The kit for this page's role: tokens and queued fixes in localStorage, apart per role
 * (a person may open both pages in one browser). */
export function kitFor(role: Role): Ridehail {
  return createRidehail({
    baseUrl: location.origin,
    storage: fromWebStorage(localStorage, `ridehail.${role}.`),
  });
}

/** What the API said, in words: its `detail` (or the first validation issue), else the code. */
export function explain(error: unknown): string {
  if (error && typeof error === "object") {
    const body = error as { detail?: unknown; code?: string; message?: string };
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) {
      const first = body.detail[0] as { msg?: string; loc?: unknown[] };
      return `${(first.loc ?? []).slice(1).join(".")}: ${first.msg ?? "invalid"}`;
    }
    if (body.message) return body.message;
    if (body.code) return body.code;
  }
  return String(error);
}

/** An openapi-fetch answer's data, or an Error with what the API said. */
export async function ok<T>(pending: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await pending;
  if (error !== undefined || !response.ok) throw new Error(explain(error ?? response.statusText));
  return data as T;
}

export function say(text: string, isError = false): void {
  const line = $("message");
  line.textContent = text;
  line.className = isError ? "message error" : "message";
}

/** A background step failed: say so on the page (the network may be away). */
export function complain(error: unknown): void {
  say(error instanceof Error ? error.message : String(error), true);
}

/** Runs an action from a button: busy while it runs, its failure said on the page. */
export function action(id: string, run: () => Promise<void>): void {
  const button = $<HTMLButtonElement>(id);
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      say(error instanceof Error ? error.message : String(error), true);
    } finally {
      button.disabled = false;
    }
  });
}

/** Sign up or in (the form on each page), or the session kept from last time. */
export async function signedIn(kit: Ridehail, role: Role): Promise<{ id: string; name: string; email: string }> {
  const me = async () => ok(kit.api.GET("/api/v1/users/me"));
  if (await kit.session.restore()) {
    try {
      const user = await me();
      if (user.role === role) return user;
    } catch {
      /* the kept session is gone: sign in again */
    }
    await kit.session.signOut();
  }
  show("auth", true);
  return new Promise((resolve) => {
    const email = () => $<HTMLInputElement>("email").value.trim();
    const password = () => $<HTMLInputElement>("password").value;
    const finish = async () => {
      await kit.session.signIn(email(), password());
      const user = await me();
      if (user.role !== role) {
        await kit.session.signOut();
        throw new Error(`This is the ${role}'s app: ${user.email} is a ${user.role}.`);
      }
      show("auth", false);
      say("");
      resolve(user);
    };
    action("signin", finish);
    action("signup", async () => {
      await ok(
        kit.api.POST("/api/v1/auth/register", {
          body: { email: email(), password: password(), name: $<HTMLInputElement>("name").value || email(), role },
        }),
      );
      await finish();
    });
  });
}

export function wireSignOut(kit: Ridehail): void {
  action("signout", async () => {
    await kit.session.signOut();
    location.reload();
  });
}

// -- the foreground notification and the timeline -------------------------------------------

/** An in-app banner for an event; a tap opens what it is about. */
export function banner(text: string, onTap?: () => void): void {
  const box = $("banners");
  const item = document.createElement("button");
  item.className = "banner";
  item.type = "button";
  item.textContent = text;
  item.addEventListener("click", () => {
    item.remove();
    onTap?.();
  });
  box.prepend(item);
  while (box.children.length > 3) box.lastElementChild?.remove();
  setTimeout(() => item.remove(), 8_000);
}

/** The event log a person (and a test) reads: one line per event the kit delivered. */
export function logEvent(kind: string, text: string): void {
  const line = document.createElement("li");
  line.dataset.kind = kind;
  line.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("timeline").prepend(line);
}

// -- the rating modal, after a ride -------------------------------------------------------

/** The modal each side rates the other in: stars, the tags the service offers that side,
 * a word. `side` is who rates ("passenger" rates the driver). */
export class RatingModal {
  private stars = 0;

  constructor(
    private readonly kit: Ridehail,
    private readonly side: Role,
  ) {
    document.querySelectorAll<HTMLButtonElement>("#stars button").forEach((button) =>
      button.addEventListener("click", () => this.choose(Number(button.dataset.stars))),
    );
    action("rating-later", async () => show("rating-modal", false));
  }

  get open(): boolean {
    return !$("rating-modal").hidden;
  }

  async loadTags(): Promise<void> {
    const tags = await ok(this.kit.api.GET("/api/v1/ratings/tags"));
    $("rating-tags").replaceChildren(
      ...tags[this.side].map((tag) => {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = tag;
        label.append(box, ` ${tag.replaceAll("_", " ")}`);
        return label;
      }),
    );
  }

  show(): void {
    this.choose(0);
    show("rating-modal", true);
  }

  /** Send the rating of the ride; the modal closes once the service has it. */
  async send(rideId: string): Promise<void> {
    if (!this.stars) throw new Error("Choose 1 to 5 stars.");
    const tags = [...document.querySelectorAll<HTMLInputElement>("#rating-tags input:checked")].map((i) => i.value);
    const comment = $<HTMLTextAreaElement>("rating-comment").value || null;
    await ok(this.kit.api.POST("/api/v1/ratings", { body: { ride_id: rideId, stars: this.stars, comment, tags } }));
    show("rating-modal", false);
  }

  private choose(stars: number): void {
    this.stars = stars;
    document
      .querySelectorAll<HTMLButtonElement>("#stars button")
      .forEach((b) => b.classList.toggle("on", Number(b.dataset.stars) <= stars));
  }
}

// -- the map -------------------------------------------------------------------------------

export const CITY: L.LatLngTuple = [52.52, 13.405];

/** A Leaflet map: raster tiles when a tile source is set; without one (offline, tests) the
 * vector layers alone on a plain ground. */
export function makeMap(config: AppConfig): L.Map {
  const map = L.map("map", { zoomControl: true, attributionControl: Boolean(config.tile_url) });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution }).addTo(map);
  } else {
    $("map").classList.add("no-tiles");
  }
  map.setView(CITY, 14);
  return map;
}

export const dot = (color: string, radius = 8) => ({
  radius,
  color: "#ffffff",
  weight: 2,
  fillColor: color,
  fillOpacity: 1,
});

/** Google's encoded polyline (what the API gives as a ride's travelled path). */
export function decodePolyline(text: string, precision = 5): L.LatLngTuple[] {
  const factor = 10 ** precision;
  const points: L.LatLngTuple[] = [];
  let index = 0;
  let lat = 0;
  let lng = 0;
  const next = () => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = text.charCodeAt(index++) - 63;
      result |= (byte & 0x1f) << shift;
      shift += 5;
    } while (byte >= 0x20);
    return result & 1 ? ~(result >> 1) : result >> 1;
  };
  while (index < text.length) {
    lat += next();
    lng += next();
    points.push([lat / factor, lng / factor]);
  }
  return points;
}

export function money(value: { amount: number; currency: string } | null | undefined): string {
  if (!value) return "-";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: value.currency.toUpperCase() }).format(
    value.amount / 100,
  );
}

export function minutes(seconds: number): string {
  return seconds < 60 ? `${Math.max(0, Math.round(seconds))} s` : `${Math.round(seconds / 60)} min`;
}

// -- Stripe.js -----------------------------------------------------------------------------

/** The part of Stripe.js the app uses. */
export interface StripeJs {
  elements(): { create(type: "card"): StripeCard };
  confirmCardSetup(
    clientSecret: string,
    data: { payment_method: { card: StripeCard } },
  ): Promise<{ setupIntent?: { status: string; payment_method: string }; error?: { message: string } }>;
  confirmCardPayment(
    clientSecret: string,
    data?: { payment_method?: string },
  ): Promise<{ paymentIntent?: { status: string }; error?: { message: string } }>;
}
export interface StripeCard {
  mount(target: string | HTMLElement): void;
  clear(): void;
}

/** Stripe.js, from Stripe in production, from the Stripe stand-in offline. */
export function loadStripe(config: AppConfig): Promise<StripeJs | null> {
  if (!config.stripe_publishable_key) return Promise.resolve(null);
  return new Promise((resolve) => {
    const script = document.createElement("script");
    script.src = config.stripe_js_url;
    script.onload = () => {
      const factory = (window as unknown as { Stripe?: (key: string) => StripeJs }).Stripe;
      resolve(factory ? factory(config.stripe_publishable_key) : null);
    };
    script.onerror = () => resolve(null);
    document.head.append(script);
  });
}
