/**
 * What the sandbox served, as kube-apiserver's audit log would say it (verb, resource, the caller's User-Agent,
 * the field manager of a write, the answer's code), so tests can assert who wrote what and how often a client
 * opened a watch.
 */
export interface AuditRecord {
  readonly at: number;
  readonly verb: string;
  /** `services`, `services/status`, `leases`… */
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  /** The query string as sent (watch and list options, fieldManager…). */
  readonly query: string;
  readonly userAgent: string;
  /** The `fieldManager` query parameter of a write, "" when none was sent. */
  readonly fieldManager: string;
  /** The HTTP status code once answered (for a watch: when it ended), 0 until then. */
  code: number;
}

export type AuditFilter = Partial<Pick<AuditRecord, "verb" | "resource" | "namespace" | "name" | "userAgent">>;

const matches = (r: AuditRecord, f: AuditFilter): boolean =>
  (f.verb === undefined || r.verb === f.verb) &&
  (f.resource === undefined || r.resource === f.resource) &&
  (f.namespace === undefined || r.namespace === f.namespace) &&
  (f.name === undefined || r.name === f.name) &&
  (f.userAgent === undefined || r.userAgent === f.userAgent);

/** The last `keep` requests, and a total per verb and resource that never forgets. */
export class Audit {
  readonly #keep: number;
  #records: AuditRecord[] = [];
  readonly #totals = new Map<string, number>();

  constructor(keep = 10_000) {
    this.#keep = Math.max(1, keep);
  }

  record(r: AuditRecord): void {
    this.#records.push(r);
    if (this.#records.length >= 2 * this.#keep) this.#records = this.#records.slice(-this.#keep);
    const key = `${r.verb} ${r.resource}`;
    this.#totals.set(key, (this.#totals.get(key) ?? 0) + 1);
  }

  /** Oldest first, the last `keep` of them, filtered. */
  records(filter: AuditFilter = {}): readonly AuditRecord[] {
    return this.#records.slice(-this.#keep).filter((r) => matches(r, filter));
  }

  /** Requests of `verb` on `resource` (e.g. "watch", "configmaps") since the sandbox started. */
  total(verb: string, resource: string): number {
    return this.#totals.get(`${verb} ${resource}`) ?? 0;
  }

  totals(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.#totals);
  }
}
