/**
 * A signed-in user: the access token on every request, and its renewal.
 *
 * Refresh tokens are single-use: the service answers a second use of one with 401. So a
 * refresh is single-flight: every request that finds the access token expired (or is told
 * 401 `invalid_token`) waits for the one refresh under way, never starts its own.
 */
import type { components } from "./api.js";
import type { KeyValueStorage } from "./storage.js";

type TokenPair = components["schemas"]["TokenPair"];
export type ErrorCode = components["schemas"]["ErrorCode"];

/** The platform's `fetch`, or any function of its shape (a streaming one on React Native). */
export type FetchLike = (input: Request | string | URL, init?: RequestInit) => Promise<Response>;

export interface Tokens {
  access: string;
  refresh: string;
  /** when the access token expires, ms since the epoch */
  expiresAt: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "network",
    detail: string,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

/** Renew this long before the access token expires, so no request carries a dying one. */
const EARLY_MS = 30_000;
const KEY = "ridehail.session";

export class Session {
  private tokens: Tokens | null = null;
  private refreshing: Promise<Tokens> | null = null;
  /** how many refreshes were asked of the service (the tests count them) */
  refreshes = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly storage: KeyValueStorage,
    private readonly rawFetch: FetchLike = (input, init) => fetch(input, init),
    private readonly now: () => number = Date.now,
  ) {}

  /** Restore a session a previous run stored; false when there is none. */
  async restore(): Promise<boolean> {
    const stored = await this.storage.get(KEY);
    this.tokens = stored ? (JSON.parse(stored) as Tokens) : null;
    return this.tokens !== null;
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  async signIn(email: string, password: string): Promise<void> {
    const body = new URLSearchParams({ username: email, password });
    const answer = await this.rawFetch(`${this.baseUrl}/api/v1/auth/token`, {
      method: "POST",
      body,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    await this.keep(answer);
  }

  async signOut(): Promise<void> {
    this.tokens = null;
    await this.storage.remove(KEY);
  }

  /** The access token to send now, refreshed first if it is about to expire. */
  async accessToken(): Promise<string> {
    if (!this.tokens) throw new ApiError(401, "not_authenticated", "not signed in");
    if (this.tokens.expiresAt - EARLY_MS <= this.now()) {
      return (await this.refresh()).access;
    }
    return this.tokens.access;
  }

  /** One refresh at a time: callers that come while one runs share its result. */
  refresh(): Promise<Tokens> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** Forget the access token's remaining life (the next request refreshes first). */
  expireAccess(): void {
    if (this.tokens) this.tokens = { ...this.tokens, expiresAt: 0 };
  }

  /**
   * `fetch` with the access token; a 401 `invalid_token` (revoked, or expired early)
   * refreshes once and tries again.
   */
  readonly fetch = async (input: Request): Promise<Response> => {
    const retry = input.clone();
    const first = await this.rawFetch(await this.signed(input));
    if (first.status !== 401) return first;
    const body = (await first.clone().json().catch(() => ({}))) as { code?: string };
    if (body.code !== "invalid_token") return first;
    this.expireAccess();
    return this.rawFetch(await this.signed(retry));
  };

  /** `fetch` without the access token (a stream token in the URL stands for it). */
  readonly unsigned = (request: Request): Promise<Response> => this.rawFetch(request);

  private async signed(request: Request): Promise<Request> {
    if (!this.tokens) return request; // registering, signing in: no token to send
    const headers = new Headers(request.headers);
    headers.set("Authorization", `Bearer ${await this.accessToken()}`);
    return new Request(request, { headers });
  }

  private async doRefresh(): Promise<Tokens> {
    if (!this.tokens) throw new ApiError(401, "not_authenticated", "not signed in");
    this.refreshes += 1;
    const answer = await this.rawFetch(`${this.baseUrl}/api/v1/auth/refresh`, {
      method: "POST",
      body: JSON.stringify({ refresh_token: this.tokens.refresh }),
      headers: { "content-type": "application/json" },
    });
    return this.keep(answer);
  }

  private async keep(answer: Response): Promise<Tokens> {
    const body = (await answer.json()) as TokenPair | { code: ErrorCode; detail: string };
    if (!answer.ok || !("access_token" in body)) {
      const error = body as { code: ErrorCode; detail: string };
      if (answer.status === 401) await this.signOut(); // the refresh token is spent
      throw new ApiError(answer.status, error.code, String(error.detail));
    }
    this.tokens = {
      access: body.access_token,
      refresh: body.refresh_token,
      expiresAt: this.now() + body.expires_in * 1000,
    };
    await this.storage.set(KEY, JSON.stringify(this.tokens));
    return this.tokens;
  }
}
