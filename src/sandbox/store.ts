import type { JsonObject } from "./json.ts";

/** One stored object. Objects are never mutated once stored; `json` caches the serialized form. */
export interface Entry {
  readonly obj: JsonObject;
  readonly rv: number;
  json: string | undefined;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  readonly type: EventType;
  readonly entry: Entry;
  /** The state before this event (MODIFIED, DELETED): selector-filtered watches need it. */
  readonly prev: Entry | undefined;
  /** The namespace ("" for cluster-scoped) so watchers filter without parsing. */
  readonly namespace: string;
  /** Lines already serialized for one view of the event (watchers share them). */
  readonly lines: Map<string, string>;
}

export interface StoreWatcher {
  readonly namespace: string | undefined;
  deliver(ev: StoreEvent): void;
  /** The resource stopped being served (its CRD was deleted): the watch ends. */
  end?(): void;
}

interface Bucket {
  readonly byNamespace: Map<string, Map<string, Entry>>;
  /** Event history of this storage, oldest first; trimmed in halves so pushes stay amortized O(1). */
  history: StoreEvent[];
  /** Highest resourceVersion that fell out of the history: a watch from before it gets 410 Gone. */
  compactedRv: number;
  readonly watchers: Set<StoreWatcher>;
  size: number;
}

export function serialize(e: Entry): string {
  if (e.json === undefined) e.json = JSON.stringify(e.obj);
  return e.json;
}

/**
 * The sandbox's etcd plus watch cache: objects keyed by storage/namespace/name (O(1) per write), one global
 * resourceVersion counter, and a bounded per-storage event history for watches that resume from a version.
 */
export class Store {
  #rv = 0;
  readonly #buckets = new Map<string, Bucket>();
  readonly #historySize: number;

  constructor(historySize = 10_000) {
    this.#historySize = Math.max(1, historySize);
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  nextVersion(): number {
    return ++this.#rv;
  }

  #bucket(storage: string): Bucket {
    let b = this.#buckets.get(storage);
    if (b === undefined) {
      b = { byNamespace: new Map(), history: [], compactedRv: 0, watchers: new Set(), size: 0 };
      this.#buckets.set(storage, b);
    }
    return b;
  }

  get(storage: string, namespace: string, name: string): Entry | undefined {
    return this.#buckets.get(storage)?.byNamespace.get(namespace)?.get(name);
  }

  /** Entries of one namespace, or of all when namespace is undefined; unordered. */
  list(storage: string, namespace: string | undefined): Entry[] {
    const b = this.#buckets.get(storage);
    if (b === undefined) return [];
    if (namespace !== undefined) return [...(b.byNamespace.get(namespace)?.values() ?? [])];
    const out: Entry[] = [];
    for (const m of b.byNamespace.values()) for (const e of m.values()) out.push(e);
    return out;
  }

  count(storage: string): number {
    return this.#buckets.get(storage)?.size ?? 0;
  }

  /** Stores `obj` (whose metadata.resourceVersion the caller set to `rv`) and notifies watchers. */
  put(storage: string, namespace: string, name: string, obj: JsonObject, rv: number): Entry {
    const b = this.#bucket(storage);
    let m = b.byNamespace.get(namespace);
    if (m === undefined) {
      m = new Map();
      b.byNamespace.set(namespace, m);
    }
    const prev = m.get(name);
    const entry: Entry = { obj, rv, json: undefined };
    m.set(name, entry);
    if (prev === undefined) b.size++;
    this.#emit(b, { type: prev === undefined ? "ADDED" : "MODIFIED", entry, prev, namespace, lines: new Map() });
    return entry;
  }

  /** Removes the object; `tombstone` is its last state with the deletion's resourceVersion. */
  remove(storage: string, namespace: string, name: string, tombstone: JsonObject, rv: number): void {
    const b = this.#bucket(storage);
    const m = b.byNamespace.get(namespace);
    const prev = m?.get(name);
    if (m === undefined || prev === undefined) return;
    m.delete(name);
    b.size--;
    if (m.size === 0) b.byNamespace.delete(namespace);
    this.#emit(b, {
      type: "DELETED",
      entry: { obj: tombstone, rv, json: undefined },
      prev,
      namespace,
      lines: new Map(),
    });
  }

  #emit(b: Bucket, ev: StoreEvent): void {
    b.history.push(ev);
    if (b.history.length >= 2 * this.#historySize) {
      const drop = b.history.length - this.#historySize;
      b.compactedRv = b.history[drop - 1]?.entry.rv ?? b.compactedRv;
      b.history = b.history.slice(drop);
    }
    for (const w of b.watchers) {
      if (w.namespace === undefined || w.namespace === ev.namespace) w.deliver(ev);
    }
  }

  /**
   * Events after `rv` for a watch that resumes there, or "expired" when the history no longer reaches back
   * that far (the client must relist, as after a 410 from the real watch cache).
   */
  since(storage: string, rv: number): StoreEvent[] | "expired" {
    const b = this.#bucket(storage);
    if (rv < b.compactedRv) return "expired";
    const h = b.history;
    let lo = 0;
    let hi = h.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((h[mid]?.entry.rv ?? Infinity) <= rv) lo = mid + 1;
      else hi = mid;
    }
    return h.slice(lo);
  }

  /**
   * The entries of one namespace (all when undefined) as they were at `rv`, undone from the current state with
   * the event history, as etcd serves a list at a revision; "expired" when the history no longer reaches back.
   */
  snapshot(storage: string, namespace: string | undefined, rv: number): Entry[] | "expired" {
    const b = this.#bucket(storage);
    if (rv < b.compactedRv) return "expired";
    const current = this.list(storage, namespace);
    if (rv >= this.#rv) return current;
    /** By namespace and name: what the object was before the oldest event after `rv` (undefined: it did not exist). */
    const before = new Map<string, Entry | undefined>();
    const keyOf = (ns: string, e: Entry): string => {
      const m = e.obj["metadata"];
      const name = typeof m === "object" && m !== null && !Array.isArray(m) ? m["name"] : undefined;
      return `${ns}\u0000${typeof name === "string" ? name : ""}`;
    };
    for (let i = b.history.length - 1; i >= 0; i--) {
      const ev = b.history[i];
      if (ev === undefined || ev.entry.rv <= rv) break;
      if (namespace !== undefined && ev.namespace !== namespace) continue;
      before.set(keyOf(ev.namespace, ev.entry), ev.type === "ADDED" ? undefined : ev.prev);
    }
    if (before.size === 0) return current;
    const out: Entry[] = [];
    for (const e of current) {
      const m = e.obj["metadata"];
      const ns = typeof m === "object" && m !== null && !Array.isArray(m) ? m["namespace"] : undefined;
      if (!before.has(keyOf(typeof ns === "string" ? ns : "", e))) out.push(e);
    }
    for (const e of before.values()) if (e !== undefined) out.push(e);
    return out;
  }

  oldestRetained(storage: string): number {
    return this.#bucket(storage).compactedRv;
  }

  /** Ends every watch of a storage (after the events already delivered). */
  endWatchers(storage: string): void {
    const b = this.#buckets.get(storage);
    if (b === undefined) return;
    for (const w of [...b.watchers]) w.end?.();
    b.watchers.clear();
  }

  subscribe(storage: string, w: StoreWatcher): () => void {
    const b = this.#bucket(storage);
    b.watchers.add(w);
    return () => b.watchers.delete(w);
  }
}
