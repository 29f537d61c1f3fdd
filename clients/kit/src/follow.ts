/**
 * Following a stream of the service as an app must: over `fetch` (headers work, and it
 * exists where `EventSource` does not), resuming after any drop with `Last-Event-ID` so
 * no event is lost or repeated, honouring the server's `retry:` hint, backing off with
 * jitter while the service is away, and switching to ETag polling when something between
 * app and service buffers the stream (no byte arrives), and back to streaming later.
 *
 * Every event reaches the handler once: by its stream id while streaming, and by what it
 * says (a status once, a fix once by its time) across a switch to polling and back.
 */
import type { Session } from "./session.js";
import { ApiError } from "./session.js";
import { readSse, type SseFrame } from "./sse.js";

export type Mode = "stream" | "polling";

export interface FollowOptions {
  /** no byte this long after the stream opened: a proxy buffers it; poll instead */
  bufferedAfterMs?: number;
  /** how often to poll while polling */
  pollEveryMs?: number;
  /** while polling, try streaming again this often */
  streamAgainAfterMs?: number;
  /** the longest wait between reconnects */
  maxDelayMs?: number;
  /**
   * an open stream silent this long (no event, no keep-alive: the server sends one every
   * 15 s) is dead, e.g. a half-open connection after the network changed: reconnect
   */
  silentAfterMs?: number;
  /** for tests: the jitter's source */
  random?: () => number;
  /**
   * `header` (default): the access token in `Authorization` on every (re)connect.
   * `streamToken`: no header at all, as for a browser's `EventSource`: a short-lived stream
   * token in `?access_token=` and the resume point in `?last_event_id=`; a new token is
   * fetched before each connect when the one held expires within `renewBeforeMs`.
   */
  auth?: "header" | "streamToken";
  renewBeforeMs?: number;
}

export interface Follow {
  /** stop following (the open connection is closed) */
  stop(): void;
  /** resolves when the stream ended (a terminal event) or `stop()` was called */
  readonly done: Promise<void>;
  readonly mode: Mode;
  /**
   * Connect again now, without waiting for a backoff or a silent stream to time out:
   * call it when the platform says the network is back (a browser's `online` event,
   * React Native's NetInfo). While polling, polls at once.
   */
  reconnect(): void;
  readonly lastEventId: string | null;
  /** stream tokens fetched so far (`auth: "streamToken"`) */
  readonly tokensFetched: number;
}

/** What one stream needs: where it is, how to poll it, how to tell events apart. */
export interface StreamSpec<F extends { id: string; event: string; data: unknown }> {
  path: string;
  /** where a stream token for it is made (POST) */
  tokenPath: string;
  /** one poll: the events it finds (without stream ids), and whether the stream is over */
  poll(session: Session, baseUrl: string, signal: AbortSignal): Promise<{ frames: F[]; over: boolean }>;
  /** what an event says, to deliver it once across streaming and polling */
  key(frame: F): string;
  /** the last event of the stream */
  ends(frame: F): boolean;
}

export interface FollowHandlers<F> {
  event(frame: F): void;
  mode?(mode: Mode): void;
  /** a fault that ends the follow (the stream is not the caller's, or is gone) */
  failed?(error: ApiError): void;
}

const FATAL = new Set([401, 403, 404, 422]);

function idKey(id: string): [number, number] {
  const [ms, seq] = id.split("-");
  return [Number(ms), Number(seq ?? 0)];
}

function after(a: string, b: string): boolean {
  const [am, as] = idKey(a);
  const [bm, bs] = idKey(b);
  return am > bm || (am === bm && as > bs);
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** The stream failed (not refused) this many times in a row: try a poll, and when it
 * answers, the network lets plain requests through but not the stream: poll. */
const BLOCKED_AFTER_FAILURES = 2;

export function follow<F extends { id: string; event: string; data: unknown }>(
  session: Session,
  baseUrl: string,
  spec: StreamSpec<F>,
  handlers: FollowHandlers<F>,
  options: FollowOptions = {},
): Follow {
  const bufferedAfterMs = options.bufferedAfterMs ?? 5_000;
  const pollEveryMs = options.pollEveryMs ?? 2_000;
  const streamAgainAfterMs = options.streamAgainAfterMs ?? 30_000;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const silentAfterMs = options.silentAfterMs ?? 45_000;
  const random = options.random ?? Math.random;
  const stopper = new AbortController();
  const seen = new Set<string>();
  const state = { mode: "stream" as Mode, last: null as string | null, retryMs: 2_000 };
  const auth = options.auth ?? "header";
  const renewBeforeMs = options.renewBeforeMs ?? 10_000;
  const token = { value: "", expiresAt: 0, fetched: 0 };

  /** A stream token that outlives the connect, fetched again when it is about to expire. */
  const streamToken = async (signal: AbortSignal): Promise<string> => {
    if (token.expiresAt - renewBeforeMs > Date.now()) return token.value;
    const answer = await session.fetch(
      new Request(`${baseUrl}${spec.tokenPath}`, { method: "POST", signal }),
    );
    const body = (await answer.json().catch(() => ({}))) as {
      token?: string;
      expires_in?: number;
      code?: string;
      detail?: string;
    };
    if (!answer.ok || !body.token) {
      throw new ApiError(answer.status, (body.code ?? "error") as never, body.detail ?? "");
    }
    token.fetched += 1;
    token.value = body.token;
    token.expiresAt = Date.now() + (body.expires_in ?? 0) * 1000;
    return token.value;
  };
  let over = false;
  /** aborted by reconnect(): ends the current connection or wait */
  let kick = new AbortController();
  let kicked = false;

  const deliver = (frame: F): void => {
    if (frame.id && state.last && !after(frame.id, state.last)) return; // replayed
    if (frame.id) state.last = frame.id;
    const key = spec.key(frame);
    if (seen.has(key)) return; // told already (by polling, or the stream)
    seen.add(key);
    handlers.event(frame);
    if (spec.ends(frame)) over = true;
  };

  const setMode = (mode: Mode): void => {
    if (state.mode !== mode) {
      state.mode = mode;
      handlers.mode?.(mode);
    }
  };

  /** One connection: "ended" when it ended (the server closed it, the stream is over, or
   * the follow stopped), "buffered" when it opened and no byte came. */
  const stream = async (): Promise<"ended" | "buffered"> => {
    const connection = new AbortController();
    const cut = () => connection.abort();
    stopper.signal.addEventListener("abort", cut);
    kick.signal.addEventListener("abort", cut);
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    const url = new URL(`${baseUrl}${spec.path}`);
    if (auth === "streamToken") {
      url.searchParams.set("access_token", await streamToken(connection.signal));
      if (state.last) url.searchParams.set("last_event_id", state.last);
    } else if (state.last) {
      headers["Last-Event-ID"] = state.last;
    }
    let alive = false;
    let silent: ReturnType<typeof setTimeout> | null = null;
    const watchdog = setTimeout(() => {
      if (!alive) connection.abort();
    }, bufferedAfterMs);
    try {
      const request = new Request(url, { headers, signal: connection.signal });
      const answer = await (auth === "streamToken"
        ? session.unsigned(request)
        : session.fetch(request));
      if (!answer.ok || !answer.body) {
        const body = (await answer.json().catch(() => ({}))) as { code?: string; detail?: string };
        throw new ApiError(answer.status, (body.code ?? "error") as never, body.detail ?? "");
      }
      await readSse(
        answer.body,
        {
          alive: () => {
            alive = true;
            if (silent) clearTimeout(silent);
            silent = setTimeout(cut, silentAfterMs);
          },
          retry: (ms) => {
            state.retryMs = ms;
          },
          frame: (raw: SseFrame) => {
            deliver({ id: raw.id ?? "", event: raw.event, data: JSON.parse(raw.data) } as F);
            return over ? "stop" : undefined;
          },
        },
        connection.signal,
      );
      if (kicked) return "ended";
      if (!alive && connection.signal.aborted && !stopper.signal.aborted && !over) {
        return "buffered"; // opened, and not one byte before the watchdog: held back
      }
      return "ended";
    } catch (error) {
      if (kicked) return "ended";
      if (connection.signal.aborted && !stopper.signal.aborted && !alive && !over) {
        return "buffered";
      }
      if (over || stopper.signal.aborted) return "ended";
      throw error;
    } finally {
      clearTimeout(watchdog);
      if (silent) clearTimeout(silent);
      stopper.signal.removeEventListener("abort", cut);
      kick.signal.removeEventListener("abort", cut);
    }
  };

  /** One poll; false when it failed (the service is away too). */
  const pollOnce = async (): Promise<boolean> => {
    const found = await spec.poll(session, baseUrl, stopper.signal);
    found.frames.forEach(deliver);
    if (found.over) over = true;
    return true;
  };

  /** Wait, unless reconnect() or stop() comes first. */
  const pause = async (ms: number): Promise<void> => {
    if (kicked) return;
    const either = new AbortController(); // AbortSignal.any is missing on React Native
    const wake = () => either.abort();
    stopper.signal.addEventListener("abort", wake);
    kick.signal.addEventListener("abort", wake);
    try {
      await sleep(ms, either.signal);
    } finally {
      stopper.signal.removeEventListener("abort", wake);
      kick.signal.removeEventListener("abort", wake);
    }
  };

  const run = async (): Promise<void> => {
    let failures = 0;
    let pollingSince = 0;
    while (!over && !stopper.signal.aborted) {
      if (kicked) {
        kicked = false;
        kick = new AbortController();
        failures = 0;
      }
      if (state.mode === "stream") {
        try {
          const how = await stream();
          if (how === "buffered") {
            setMode("polling");
            pollingSince = Date.now();
            continue;
          }
          failures = 0;
        } catch (error) {
          if (error instanceof ApiError && FATAL.has(error.status)) {
            handlers.failed?.(error);
            return;
          }
          failures += 1;
          if (failures >= BLOCKED_AFTER_FAILURES && !kicked) {
            // is it the stream that cannot get through, or the whole service that is away?
            const answered = await pollOnce().catch(() => false);
            if (answered && !over) {
              setMode("polling");
              pollingSince = Date.now();
              failures = 0;
              await pause(pollEveryMs);
              continue;
            }
          }
        }
        if (over || stopper.signal.aborted) break;
        if (kicked) continue;
        // the server's hint after a clean drop; backoff with jitter while it is away
        const base = Math.min(maxDelayMs, state.retryMs * 2 ** Math.max(0, failures - 1));
        await pause(failures ? base * (0.5 + random() * 0.5) : state.retryMs);
      } else {
        try {
          await pollOnce();
        } catch (error) {
          if (error instanceof ApiError && FATAL.has(error.status)) {
            handlers.failed?.(error);
            return;
          }
        }
        if (over) break;
        await pause(pollEveryMs);
        if (Date.now() - pollingSince >= streamAgainAfterMs) setMode("stream");
      }
    }
  };

  const done = run();
  return {
    stop: () => stopper.abort(),
    reconnect: () => {
      kicked = true;
      kick.abort();
    },
    done,
    get mode() {
      return state.mode;
    },
    get lastEventId() {
      return state.last;
    },
    get tokensFetched() {
      return token.fetched;
    },
  };
}
