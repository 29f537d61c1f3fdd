/** The two streams an app follows, with their polling fallbacks. */
import type { components } from "./api.js";
import { follow, type Follow, type FollowHandlers, type FollowOptions, type StreamSpec } from "./follow.js";
import { ApiError, type Session } from "./session.js";

type Schemas = components["schemas"];
export type RideFrame = Schemas["RideStreamFrame"];
export type DriverFrame = Schemas["DriverStreamFrame"];
export type RideStatus = Schemas["RideStatus"];

const TERMINAL: ReadonlySet<string> = new Set(["completed", "cancelled", "no_show", "expired"]);

async function getJson(
  session: Session,
  url: string,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<Response> {
  const answer = await session.fetch(new Request(url, { headers, signal }));
  if (answer.status >= 400 && answer.status !== 404) {
    const body = (await answer.json().catch(() => ({}))) as { code?: string; detail?: string };
    throw new ApiError(answer.status, (body.code ?? "error") as never, body.detail ?? "");
  }
  return answer;
}

function rideSpec(rideId: string): StreamSpec<RideFrame> {
  let etag: string | null = null;
  return {
    path: `/api/v1/rides/${rideId}/events`,
    tokenPath: `/api/v1/rides/${rideId}/stream-token`,
    key: (frame) => {
      switch (frame.event) {
        case "location":
          return `location ${frame.data.driver_id} ${frame.data.recorded_at}`;
        case "status":
          return `status ${frame.data.status}`;
        case "eta":
          return `eta ${frame.data.at} ${frame.data.seconds}`;
      }
    },
    ends: (frame) => frame.event === "status" && TERMINAL.has(frame.data.status),
    async poll(session, baseUrl, signal) {
      const frames: RideFrame[] = [];
      const ride = await getJson(session, `${baseUrl}/api/v1/rides/${rideId}`, signal);
      if (ride.status === 404) throw new ApiError(404, "ride_not_found", "ride not found");
      const shown = (await ride.json()) as Schemas["RidePublic"];
      const position = await getJson(
        session,
        `${baseUrl}/api/v1/rides/${rideId}/driver-location`,
        signal,
        etag ? { "If-None-Match": etag } : {},
      );
      if (position.status === 200) {
        etag = position.headers.get("ETag");
        const data = (await position.json()) as Schemas["Position"];
        frames.push({ id: "", event: "location", data: { ...data, live: true } });
      }
      frames.push({
        id: "",
        event: "status",
        data: { ride_id: shown.id, status: shown.status, at: shown.updated_at },
      });
      return { frames, over: TERMINAL.has(shown.status) };
    },
  };
}

const driverSpec: StreamSpec<DriverFrame> = {
  path: "/api/v1/drivers/me/events",
  tokenPath: "/api/v1/drivers/me/stream-token",
  key: (frame) => {
    switch (frame.event) {
      case "offer":
        return `offer ${frame.data.offer_id}`;
      case "offer_withdrawn":
        return `withdrawn ${frame.data.ride_id} ${frame.data.reason}`;
      case "ride_status":
        return `ride ${frame.data.ride_id} ${frame.data.status}`;
    }
  },
  ends: () => false,
  async poll(session, baseUrl, signal) {
    const answer = await getJson(session, `${baseUrl}/api/v1/drivers/me/offers`, signal);
    const page = (await answer.json()) as Schemas["OfferPage"];
    return { frames: page.items.map((data) => ({ id: "", event: "offer", data })), over: false };
  },
};

/** A ride's events (positions, statuses, ETAs) until its terminal status. */
export function followRide(
  session: Session,
  baseUrl: string,
  rideId: string,
  handlers: FollowHandlers<RideFrame>,
  options?: FollowOptions,
): Follow {
  return follow(session, baseUrl, rideSpec(rideId), handlers, options);
}

/** The driver app's channel: offers with their deadline, withdrawals, ride statuses. */
export function driverChannel(
  session: Session,
  baseUrl: string,
  handlers: FollowHandlers<DriverFrame>,
  options?: FollowOptions,
): Follow {
  return follow(session, baseUrl, driverSpec, handlers, options);
}
