// A few lines of an app written against the generated types: if the document loses a
// name, a field or a union's tag, this stops compiling (`npm run client`).
import createClient from "openapi-fetch";
import type { components, paths } from "../generated/api.js";

type Schemas = components["schemas"];
const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

export async function signUp(email: string, password: string): Promise<string | null> {
  const made = await api.POST("/api/v1/auth/register", {
    body: { email, password, name: "Ada", role: "passenger" },
  });
  if (made.error) return made.error.code === "email_taken" ? null : made.error.code;
  const tokens = await api.POST("/api/v1/auth/token", {
    body: { username: email, password },
    bodySerializer: (form) => new URLSearchParams(form as Record<string, string>),
  });
  return tokens.data?.access_token ?? null;
}

export async function requestAndFollow(token: string): Promise<string> {
  const headers = { Authorization: `Bearer ${token}` };
  const asked = await api.POST("/api/v1/rides", {
    headers: { ...headers, "Idempotency-Key": "k-1" },
    body: {
      pickup: { lat: 52.52, lng: 13.405 },
      dropoff: { lat: 52.5, lng: 13.35 },
      payment: "card",
    },
  });
  if (asked.error) {
    const code: Schemas["ErrorCode"] = asked.error.code; // a closed set, not a string
    return code;
  }
  const ride = await api.GET("/api/v1/rides/{ride_id}", {
    params: { path: { ride_id: asked.data.id } },
    headers,
  });
  if (!ride.data) return "gone";
  // the discriminator narrows: only the full view has a fare
  const fare = ride.data.view === "ride" ? ride.data.fare?.amount : ride.data.expires_at;
  // follow it: a stream token for the browser's EventSource, typed frames below
  const streamToken = await api.POST("/api/v1/rides/{ride_id}/stream-token", {
    params: { path: { ride_id: ride.data.id } },
    headers,
  });
  const follow = `/api/v1/rides/${ride.data.id}/events?access_token=${streamToken.data?.token}`;
  const page = await api.GET("/api/v1/drivers/me/earnings", {
    params: { query: { limit: 20, cursor: "12" } },
    headers,
  });
  const first: Schemas["EarningLine"] | undefined = page.data?.items[0];
  return `${ride.data.status} ${String(fare)} ${first?.account ?? "none"} ${follow}`;
}

export function onFrame(frame: Schemas["RideStreamFrame"]): string {
  switch (frame.event) {
    case "location":
      return `${frame.data.lat},${frame.data.lng} live=${frame.data.live}`;
    case "status":
      return frame.data.status;
    case "eta":
      return `${frame.data.seconds}s to ${frame.data.target}`;
  }
}

export async function batch(token: string): Promise<number> {
  const answer = await api.POST("/api/v1/drivers/me/locations", {
    headers: { Authorization: `Bearer ${token}` },
    body: { pings: [{ lat: 52.52, lng: 13.4, recorded_at: "2026-12-05T18:00:00Z" }] },
  });
  return answer.data?.accepted ?? -1;
}
