/**
 * Server-Sent Events read from a `fetch` response body, as the HTML standard parses them:
 * `id:`, `event:`, `data:` lines, a blank line ends an event, `retry:` sets the reconnect
 * delay, `:` lines are comments (the keep-alives). Works where `EventSource` is missing
 * (React Native, Node) or cannot send headers.
 */
export interface SseFrame {
  id: string | null;
  event: string;
  data: string;
}

export interface SseSink {
  /** `"stop"`: the last frame wanted (the body is cancelled) */
  frame(frame: SseFrame): void | "stop";
  retry(ms: number): void;
  /** any bytes at all arrived (a keep-alive included): the stream is not buffered */
  alive(): void;
}

/**
 * Reads until the body ends, `signal` aborts (the read in progress ends at once, whatever
 * the body's source), or a frame handler returns `"stop"`.
 */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  sink: SseSink,
  signal?: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => undefined);
  if (signal?.aborted) cancel();
  signal?.addEventListener("abort", cancel);
  try {
    await pump(reader, sink);
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}

async function pump(reader: ReadableStreamDefaultReader<Uint8Array>, sink: SseSink): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  let id: string | null = null;
  let event = "";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    sink.alive();
    buffer += decoder.decode(value, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        const frame = data.length
          ? sink.frame({ id, event: event || "message", data: data.join("\n") })
          : undefined;
        event = "";
        data = [];
        if (frame === "stop") {
          await reader.cancel().catch(() => undefined);
          return;
        }
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) sink.retry(Number(value));
    }
  }
}
