/**
 * The driver app's location reporting: each fix is queued in durable storage first, then
 * sent; while the network is away the queue grows, and when it is back the whole queue
 * goes as one batch, in the order the fixes were taken. The service's `next_ping_in_s`
 * sets the pace; 0 (offline, or the ride over and the driver gone offline) stops it.
 */
import type { components } from "./api.js";
import { ApiError, type Session } from "./session.js";
import type { KeyValueStorage } from "./storage.js";

type Schemas = components["schemas"];
export type Fix = Schemas["NativePing"];
export type PingAnswer = Schemas["PingAnswer"];

const KEY = "ridehail.fixes";

export interface ReporterOptions {
  storage: KeyValueStorage;
  /** the most fixes sent in one batch (the service takes up to 500) */
  batchMax?: number;
}

export class LocationReporter {
  private sending: Promise<PingAnswer | null> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** seconds until the service wants the next fix; 0: stop */
  nextPingInS: number | null = null;
  /** fixes the service refused for good (never sent again), with why */
  readonly refused: { fix: Fix; reason: string }[] = [];

  constructor(
    private readonly session: Session,
    private readonly baseUrl: string,
    private readonly options: ReporterOptions,
  ) {}

  /** Fixes taken and not yet delivered, oldest first. */
  async queued(): Promise<Fix[]> {
    const raw = await this.options.storage.get(KEY);
    return raw ? (JSON.parse(raw) as Fix[]) : [];
  }

  /** Queue a fix and send what is queued; null while the network is away. */
  async report(fix: Fix): Promise<PingAnswer | null> {
    const stamped = { ...fix, uuid: fix.uuid ?? randomId() };
    await this.options.storage.set(KEY, JSON.stringify([...(await this.queued()), stamped]));
    return this.flush();
  }

  /** Send the queue: one fix alone, many as one batch. One send at a time. */
  flush(): Promise<PingAnswer | null> {
    if (!this.sending) {
      this.sending = this.send().finally(() => {
        this.sending = null;
      });
    }
    return this.sending;
  }

  /** Report on the service's cadence: `take` gives the current fix. */
  start(take: () => Promise<Fix>): void {
    const tick = async () => {
      const answer = await this.report(await take()).catch(() => null);
      const wait = answer ? answer.next_ping_in_s : 5;
      if (answer && wait === 0) return this.stop();
      this.timer = setTimeout(tick, wait * 1000);
    };
    void tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async send(): Promise<PingAnswer | null> {
    const queue = await this.queued();
    if (!queue.length) return null;
    const batch = queue.slice(0, this.options.batchMax ?? 500);
    const single = batch.length === 1;
    const url = `${this.baseUrl}/api/v1/drivers/me/${single ? "location" : "locations"}`;
    let answer: Response;
    try {
      answer = await this.session.fetch(
        new Request(url, {
          method: "POST",
          body: JSON.stringify(single ? batch[0] : { pings: batch }),
          headers: { "content-type": "application/json" },
        }),
      );
    } catch {
      return null; // offline: the queue stays, in order
    }
    const body = (await answer.json().catch(() => ({}))) as PingAnswer & {
      code?: string;
      detail?: string;
    };
    if (answer.status === 202 || (single && answer.status === 422)) {
      // delivered (or refused for good: a fix no car could make is never accepted later)
      if (answer.status === 422) this.refused.push({ fix: batch[0] as Fix, reason: body.code ?? "" });
      const rest = (await this.queued()).slice(batch.length);
      await this.options.storage.set(KEY, JSON.stringify(rest));
      if (answer.status === 202) this.nextPingInS = body.next_ping_in_s;
      return answer.status === 202 ? body : null;
    }
    if (answer.status >= 500 || answer.status === 429) return null; // try again later
    throw new ApiError(answer.status, (body.code ?? "error") as never, body.detail ?? "");
  }
}

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
