/**
 * `@ridehail/client`: the apps' side of the ridehail protocol.
 *
 *     const kit = createRidehail({ baseUrl, storage });
 *     await kit.session.signIn(email, password);
 *     const { data } = await kit.api.POST("/api/v1/rides", { body: { ... } });
 *     kit.followRide(data.id, { event: (e) => ... });
 *
 * No DOM-only API in the core: `fetch`, `Request`, `ReadableStream`, `TextDecoder` and
 * `crypto.getRandomValues` (Node 20, browsers, React Native with a streaming fetch).
 */
import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./api.js";
import type { Follow, FollowHandlers, FollowOptions } from "./follow.js";
import { LocationReporter } from "./reporter.js";
import { Session, type FetchLike } from "./session.js";
import { MemoryStorage, type KeyValueStorage } from "./storage.js";
import { driverChannel, followRide, type DriverFrame, type RideFrame } from "./streams.js";

export type { components, paths } from "./api.js";
export { follow, type Follow, type FollowHandlers, type FollowOptions, type Mode } from "./follow.js";
export { LocationReporter, type Fix, type PingAnswer } from "./reporter.js";
export { ApiError, Session, type ErrorCode, type FetchLike, type Tokens } from "./session.js";
export { readSse, type SseFrame } from "./sse.js";
export { fromWebStorage, MemoryStorage, type KeyValueStorage } from "./storage.js";
export { driverChannel, followRide, type DriverFrame, type RideFrame } from "./streams.js";

export interface RidehailOptions {
  baseUrl: string;
  storage?: KeyValueStorage;
  /** the platform's fetch (a streaming one on React Native) */
  fetch?: FetchLike;
}

export interface Ridehail {
  api: Client<paths>;
  session: Session;
  followRide(rideId: string, handlers: FollowHandlers<RideFrame>, options?: FollowOptions): Follow;
  driverChannel(handlers: FollowHandlers<DriverFrame>, options?: FollowOptions): Follow;
  reporter(): LocationReporter;
}

export function createRidehail(options: RidehailOptions): Ridehail {
  const storage = options.storage ?? new MemoryStorage();
  const rawFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  const session = new Session(options.baseUrl, storage, rawFetch);
  const api = createClient<paths>({ baseUrl: options.baseUrl, fetch: session.fetch });
  return {
    api,
    session,
    followRide: (rideId, handlers, follow) =>
      followRide(session, options.baseUrl, rideId, handlers, follow),
    driverChannel: (handlers, follow) => driverChannel(session, options.baseUrl, handlers, follow),
    reporter: () => new LocationReporter(session, options.baseUrl, { storage }),
  };
}
