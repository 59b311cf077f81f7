import { startSandbox, type Sandbox, type SandboxOptions } from "../../src/sandbox/index.ts";

/**
 * Contract tests hold the sandbox to kube-apiserver: each names the kube-apiserver source (package, function) it
 * follows. They talk raw HTTP, so nothing of Lodestone's client smooths over what the server answers.
 */
export interface Http {
  readonly sandbox: Sandbox;
  call(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  /** A watch's events until it ends (timeoutSeconds) or `count` have come. */
  watch(path: string, count?: number): Promise<{ type: string; object: Record<string, unknown> }[]>;
  stop(): Promise<void>;
}

export async function sandboxHttp(opts: SandboxOptions = {}): Promise<Http> {
  const sandbox = await startSandbox(opts);
  return {
    sandbox,
    async call(method, path, body, contentType = "application/json") {
      const res = await fetch(sandbox.url + path, {
        method,
        headers: body === undefined ? {} : { "content-type": contentType },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
        headers: res.headers,
      };
    },
    async watch(path, count = Infinity) {
      const ctl = new AbortController();
      const res = await fetch(sandbox.url + path, { signal: ctl.signal });
      const out: { type: string; object: Record<string, unknown> }[] = [];
      const decoder = new TextDecoder();
      let buffered = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffered += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, i);
            buffered = buffered.slice(i + 1);
            if (line.trim() !== "") out.push(JSON.parse(line) as (typeof out)[number]);
            if (out.length >= count) {
              ctl.abort();
              return out;
            }
          }
        }
      } catch (err: unknown) {
        if ((err as { name?: string }).name !== "AbortError") throw err;
      }
      return out;
    },
    stop: () => sandbox.stop(),
  };
}

export const meta = (o: Record<string, unknown>): Record<string, unknown> =>
  (o["metadata"] ?? {}) as Record<string, unknown>;

/** The `details.causes[].field` of a 422. */
export const causeFields = (body: Record<string, unknown>): string[] =>
  (((body["details"] as { causes?: { field: string }[] } | undefined)?.causes ?? []) as { field: string }[]).map(
    (c) => c.field,
  );
