import type { KubeClient, KubeRequest, KubeResponse, QueryParams, WatchLine } from "../../../src/kube/client.ts";

/** Scripted API: `lists` answer successive list calls; each watch is captured for the test to drive. */
export class FakeApi<O = unknown> {
  lists: (KubeResponse | O[])[] = [];
  listCalls: QueryParams[] = [];
  watches: { query: QueryParams; line: WatchLine; done: (err: unknown) => void; ctl: AbortController }[] = [];
  items: O[] = [];
  rv = 100;
  client: KubeClient = {
    request: (req: KubeRequest): Promise<KubeResponse> => {
      this.listCalls.push(req.query ?? {});
      const next = this.lists.shift() ?? this.items;
      if (!Array.isArray(next)) return Promise.resolve(next);
      const limit = Number(req.query?.limit ?? 1000);
      const start = Number(req.query?.continue ?? 0);
      const page = next.slice(start, start + limit);
      const cont = start + limit < next.length ? String(start + limit) : "";
      if (cont !== "") this.lists.unshift(next);
      return Promise.resolve({
        status: 200,
        body: { metadata: { resourceVersion: String(this.rv), continue: cont }, items: page },
      });
    },
    watch: (_path, query, line, done) => {
      const ctl = new AbortController();
      const w = { query, line, done, ctl };
      ctl.signal.addEventListener("abort", () => done(new Error("aborted")));
      this.watches.push(w);
      return Promise.resolve(ctl);
    },
    close: () => Promise.resolve(),
  };
  last() {
    return this.watches[this.watches.length - 1]!;
  }
}

export const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
};
