import {
  byPriority,
  desiredFamilies,
  familiesFrom,
  isRefusal,
  isRestricted,
  poolRefusal,
  sharingRefusal,
} from "./allocation-rules.ts";
import type { Pool } from "./config.ts";
import { poolCapacity } from "./config.ts";
import type { AllocationError, Result } from "./errors.ts";
import { AllocationCodes, err, ok, refusal } from "./errors.ts";
import { IntervalSet } from "./interval-set.ts";
import type { Family, IpAddress } from "./ip.ts";
import { compareIp, familyName, formatIp, ip, sameIp } from "./ip.ts";
import type { AddressRange } from "./range.ts";
import { isBuggyIp, rangeContains } from "./range.ts";
import type { ServiceRequest } from "./service-request.ts";
import { serviceKey } from "./service-request.ts";
import type { PoolUsage } from "./telemetry.ts";

export type { ServiceRequest } from "./service-request.ts";
export { serviceKey, serviceRequestFrom } from "./service-request.ts";

/** What a Service holds: one address per family, all from one pool. */
export interface Allocation {
  /** "namespace/name" */
  readonly service: string;
  readonly pool: string;
  /** Primary family first. */
  readonly ips: readonly IpAddress[];
}

/** An assignment as recorded elsewhere (the Service's status), to rebuild the allocator after a restart. */
export interface RecordedAllocation {
  readonly request: ServiceRequest;
  readonly ips: readonly IpAddress[];
}

/** A Service that lost its address(es) on a pool change, why, and what it holds now. */
export interface LostAllocation {
  readonly service: string;
  readonly lost: readonly IpAddress[];
  readonly reason: AllocationError;
  readonly now: Result<Allocation, AllocationError>;
}

interface FamilyState {
  readonly ranges: readonly AddressRange[];
  readonly capacity: bigint;
  /** The same as a number (Infinity beyond 2^53) so the hot path compares without making a bigint. */
  readonly capacityNumber: number;
  /** Distinct addresses in use (a shared address counts once). */
  readonly used: IntervalSet;
  /**
   * allocationOrder lowest: the cursor is a low-water mark (no free usable address below it) that a release
   * lowers, so the lowest free address is found from it at the cost of the walk forward.
   */
  readonly lowest: boolean;
  /** Next address to try: allocation walks forward, so recently released addresses are not handed out at once. */
  cursor: bigint;
}

interface PoolState {
  readonly pool: Pool;
  readonly families: ReadonlyMap<Family, FamilyState>;
  readonly familySet: ReadonlySet<Family>;
}

interface Entry {
  readonly request: ServiceRequest;
  readonly allocation: Allocation;
}

/**
 * The address book of LoadBalancer Services: pure and synchronous. Memory follows the number of allocations
 * (addresses in use are spans in an IntervalSet), never the size of a pool; finding the next free address is a
 * cursor plus a logarithmic jump over spans in use.
 */
export class Allocator {
  /** In priority order (setPools sorts them). */
  #pools = new Map<string, PoolState>();
  /**
   * Automatic assignment tries the `autoAssign` pools restricted by a serviceAllocation first (those that admit
   * the Service), then the pools open to all, each group in priority order.
   */
  #pinnedPools: PoolState[] = [];
  #openPools: PoolState[] = [];
  /**
   * Address value -> the Service(s) holding it, per family: bigint keys need no string formatting on the hot path.
   * More than one holder exists only while shared, so a lone holder is kept as its key string (no array to
   * allocate and keep alive per address) and an array is made only when a second Service shares the address.
   */
  #holders = { 4: new Map<bigint, Holders>(), 6: new Map<bigint, Holders>() } as const;
  #entries = new Map<string, Entry>();
  /** sharing key -> Services using it, to find an address to share without scanning every allocation. */
  #groups = new Map<string, Set<string>>();

  constructor(pools: readonly Pool[] = []) {
    this.setPools(pools);
  }

  get(service: string): Allocation | undefined {
    return this.#entries.get(service)?.allocation;
  }

  /** Every allocation, by Service key. */
  allocations(): Allocation[] {
    return [...this.#entries.values()]
      .map((e) => e.allocation)
      .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * What the controller calls for every Service change: keeps the current allocation while it stays valid for
   * the (possibly edited) request, otherwise allocates again, preferring the addresses it had.
   */
  ensure(req: ServiceRequest): Result<Allocation, AllocationError> {
    const key = serviceKey(req);
    const current = this.#entries.get(key);
    const valid = current && this.#revalidate(current.allocation, req);
    // Re-committing the same addresses records the edited request (ports, sharing key, family order).
    if (current !== undefined && valid?.ok === true)
      return ok(this.#commit(req, key, valid.value, current.allocation.ips, current.request.sharingKey));
    return this.allocate(req, current?.allocation.ips ?? []);
  }

  /**
   * Allocates for a Service (replacing what it held): its requested IPs when it names some, otherwise the next
   * free address per family from the first suitable pool, sharing an address where its sharing key allows.
   * `prefer` lists addresses to take again when still possible (stability across edits and pool changes).
   */
  allocate(req: ServiceRequest, prefer: readonly IpAddress[] = NONE): Result<Allocation, AllocationError> {
    if (req.requestedIps.length > 0) return this.assign(req, req.requestedIps);
    const key = serviceKey(req);
    this.release(key);
    let first: readonly PoolState[];
    let then: readonly PoolState[] = NO_POOLS;
    if (req.requestedPool !== undefined) {
      const state = this.#pools.get(req.requestedPool);
      if (state === undefined) return err(refusal.poolNotFound(req.requestedPool));
      first = [state];
    } else {
      // As MetalLB's Allocate: pools pinned to the Service (pinnedPoolsForService) before the pools open to all.
      first = this.#pinnedPools;
      then = this.#openPools;
      if (first.length === 0 && then.length === 0) return err(refusal.noPools());
    }
    // PreferDualStack wanting both families: a pool that can give both, before one that gives the primary family,
    // before one that gives the other (MetalLB's findBestPoolForService); one pass for everything else.
    const desired = desiredFamilies(req);
    const passes = req.ipFamilyPolicy === "PreferDualStack" && desired.length > 1 ? 3 : 1;
    let failures: AllocationError[] | undefined;
    let denied: AllocationError | undefined;
    for (let g = 0; g < 2; g++) {
      const group = g === 0 ? first : then;
      for (let pass = 0; pass < passes; pass++) {
        for (let k = 0; k < group.length; k++) {
          const state = group[k];
          if (state === undefined || (passes > 1 && this.#dualStackRank(state, desired, req) !== pass)) continue;
          const refused = poolRefusal(state.pool, req);
          if (refused !== undefined) {
            denied ??= refused;
            continue;
          }
          const taken = this.#takeFrom(state, req, prefer);
          if (Array.isArray(taken)) return ok(this.#commit(req, key, state.pool.name, taken, undefined, true));
          (failures ??= []).push(taken);
        }
      }
    }
    // Only when every candidate pool excluded the Service is the (first) restriction the reason.
    return err(failures === undefined && denied !== undefined ? denied : summarize(failures ?? []));
  }

  /** Gives a Service exactly these addresses (replacing what it held), or says why not. */
  assign(req: ServiceRequest, ips: readonly IpAddress[]): Result<Allocation, AllocationError> {
    const key = serviceKey(req);
    this.release(key);
    const checked = this.#checkAssignment(req, ips);
    return checked.ok ? ok(this.#commit(req, key, checked.value, ips)) : checked;
  }

  /** Frees what a Service holds; false when it held nothing. */
  release(service: string): boolean {
    const entry = this.#entries.get(service);
    if (entry === undefined) return false;
    const ips = entry.allocation.ips;
    // An index, not for-of, on this hot path: why is in docs/performance.md.
    for (let k = 0; k < ips.length; k++) {
      const addr = ips[k];
      if (addr === undefined) continue;
      const holders = this.#holders[addr.family];
      const services = holders.get(addr.value);
      if (services === undefined) continue;
      const rest = withoutHolder(services, service);
      if (rest !== services && rest !== undefined) holders.set(addr.value, rest);
      if (rest === undefined) {
        holders.delete(addr.value);
        const f = this.#pools.get(entry.allocation.pool)?.families.get(addr.family);
        if (f !== undefined && f.used.delete(addr.value) && f.lowest && addr.value < f.cursor) f.cursor = addr.value;
      }
    }
    this.#entries.delete(service);
    const group = entry.request.sharingKey;
    if (group !== undefined) {
      const members = this.#groups.get(group);
      members?.delete(service);
      if (members?.size === 0) this.#groups.delete(group);
    }
    return true;
  }

  /**
   * Replaces the pools. Services whose addresses are still valid keep them (even when the pool was renamed or
   * split); the others are listed with the reason and reallocated where possible, in Service-key order.
   */
  setPools(pools: readonly Pool[]): LostAllocation[] {
    const old = this.#pools;
    this.#pools = new Map(
      [...pools].sort(byPriority).map((pool) => [pool.name, this.#poolState(pool, old.get(pool.name))] as const),
    );
    const auto = [...this.#pools.values()].filter((s) => s.pool.autoAssign);
    this.#pinnedPools = auto.filter((s) => isRestricted(s.pool));
    this.#openPools = auto.filter((s) => !isRestricted(s.pool));
    const entries = [...this.#entries.values()].sort((a, b) => (a.allocation.service < b.allocation.service ? -1 : 1));
    this.#entries.clear();
    this.#holders[4].clear();
    this.#holders[6].clear();
    this.#groups.clear();
    const lost: { entry: Entry; reason: AllocationError }[] = [];
    for (const entry of entries) {
      const valid = this.#revalidate(entry.allocation, entry.request);
      if (valid.ok) this.#commit(entry.request, entry.allocation.service, valid.value, entry.allocation.ips);
      else lost.push({ entry, reason: valid.error });
    }
    const result: LostAllocation[] = [];
    for (const { entry, reason } of lost) {
      const now = this.allocate(entry.request, entry.allocation.ips);
      const kept = now.ok ? now.value.ips : [];
      const gone = entry.allocation.ips.filter((a) => !kept.some((b) => sameIp(a, b)));
      if (gone.length > 0) result.push({ service: entry.allocation.service, lost: gone, reason, now });
    }
    return result;
  }

  /**
   * Forgets every allocation and replays recorded ones in Service-key order, so the same records always give the
   * same state. Records that no longer fit (pool gone, a clash) are returned with the reason and not applied.
   */
  rebuild(records: readonly RecordedAllocation[]): { service: string; error: AllocationError }[] {
    for (const key of [...this.#entries.keys()]) this.release(key);
    return this.adopt(records);
  }

  /**
   * Replays recorded allocations of Services that hold nothing here yet, in Service-key order, leaving every
   * current allocation alone: addresses recorded while no pool covered them (pools created after the daemon
   * started, a Service handed over by MetalLB) are taken back before anything new is allocated. Records of
   * Services that already hold addresses are skipped; the others that do not fit are returned with the reason.
   */
  adopt(records: readonly RecordedAllocation[]): { service: string; error: AllocationError }[] {
    const refused: { service: string; error: AllocationError }[] = [];
    const sorted = [...records].sort((a, b) => (serviceKey(a.request) < serviceKey(b.request) ? -1 : 1));
    for (const record of sorted) {
      if (this.#entries.has(serviceKey(record.request))) continue;
      const r = this.assign(record.request, record.ips);
      if (!r.ok) refused.push({ service: serviceKey(record.request), error: r.error });
    }
    return refused;
  }

  /** Size and addresses in use per pool and family, for metrics. */
  usage(): PoolUsage[] {
    return [...this.#pools.values()].flatMap((s) =>
      [...s.families.entries()].map(([family, f]) => ({
        pool: s.pool.name,
        family,
        total: f.capacity,
        inUse: f.used.size,
      })),
    );
  }

  // ---- internals ----

  #poolState(pool: Pool, previous: PoolState | undefined): PoolState {
    const families = new Map<Family, FamilyState>();
    for (const family of [4, 6] as const) {
      const ranges = pool.addresses.filter((r) => r.family === family);
      const firstRange = ranges[0];
      if (firstRange === undefined) continue;
      const capacity = poolCapacity(pool, family);
      const oldCursor = previous?.families.get(family)?.cursor;
      families.set(family, {
        ranges,
        capacity,
        capacityNumber: capacity > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(capacity),
        used: new IntervalSet(),
        lowest: pool.allocationOrder === "lowest",
        // The used set starts empty again, so a low-water mark starts at the bottom.
        cursor:
          pool.allocationOrder !== "lowest" &&
          oldCursor !== undefined &&
          ranges.some((r) => rangeContains(r, ip(family, oldCursor)))
            ? oldCursor
            : firstRange.first,
      });
    }
    return { pool, families, familySet: new Set(families.keys()) };
  }

  /** The pool holding an address (pools never overlap after mergePools). */
  #poolOf(addr: IpAddress | undefined): PoolState | undefined {
    if (addr === undefined) return undefined;
    for (const state of this.#pools.values()) {
      if (state.families.get(addr.family)?.ranges.some((r) => rangeContains(r, addr))) return state;
    }
    return undefined;
  }

  /** The pool an allocation still validly comes from, or why it no longer fits its request and the pools. */
  #revalidate(allocation: Allocation, req: ServiceRequest): Result<string, AllocationError> {
    if (req.requestedIps.length > 0) {
      const same =
        req.requestedIps.length === allocation.ips.length &&
        req.requestedIps.every((r) => allocation.ips.some((a) => sameIp(a, r)));
      if (!same) return err(refusal.requestInvalid("requested IPs", "the Service now asks for other addresses"));
    }
    const checked = this.#checkAssignment(req, allocation.ips, serviceKey(req));
    if (!checked.ok || req.requestedIps.length > 0) return checked;
    // A Service that asked for nothing specific must hold every family the pool can give it (PreferDualStack
    // gains the second family once the pool has it).
    const state = this.#pools.get(checked.value);
    const wanted = state && familiesFrom(req, state.pool.name, state.familySet);
    if (wanted !== undefined && !isRefusal(wanted) && wanted.length !== allocation.ips.length) {
      return err(refusal.requestInvalid("spec.ipFamilyPolicy", "the Service now wants other address families"));
    }
    return checked;
  }

  /** Validates explicit addresses for a Service; the pool they all come from. `self` is ignored as a holder. */
  #checkAssignment(req: ServiceRequest, ips: readonly IpAddress[], self?: string): Result<string, AllocationError> {
    const families = ips.map((a) => a.family);
    if (ips.length === 0 || new Set(families).size !== families.length) {
      return err(refusal.requestInvalid("requested IPs", "give one address per family"));
    }
    const shape = familiesFrom(req, "", new Set(families));
    if (isRefusal(shape)) {
      const missing = shape.code === AllocationCodes.familyUnavailable ? familyName(shape.family) : "a family";
      return err(
        refusal.requestInvalid(
          "requested IPs",
          `no ${missing} address given, but ipFamilies / ipFamilyPolicy ${req.ipFamilyPolicy} need one`,
        ),
      );
    }
    if (shape.length !== ips.length) {
      return err(
        refusal.requestInvalid(
          "requested IPs",
          `the Service's ipFamilies / ipFamilyPolicy allow only ${shape.length} address(es) of these families`,
        ),
      );
    }
    if (req.requestedPool !== undefined && !this.#pools.has(req.requestedPool)) {
      return err(refusal.poolNotFound(req.requestedPool));
    }
    let poolName: string | undefined;
    for (const addr of ips) {
      const text = formatIp(addr);
      const state = this.#poolOf(addr);
      if (state === undefined) return err(refusal.ipNotInPool(text));
      const pool = state.pool;
      if (req.requestedPool !== undefined && pool.name !== req.requestedPool)
        return err(refusal.ipNotInPool(text, req.requestedPool));
      const denied = poolRefusal(pool, req);
      if (denied !== undefined) return err(denied);
      if (pool.avoidBuggyIPs && isBuggyIp(addr)) return err(refusal.ipReserved(text, pool.name));
      if (poolName !== undefined && poolName !== pool.name) {
        return err(
          refusal.requestInvalid(
            "requested IPs",
            `all addresses must come from one pool ("${poolName}" and "${pool.name}")`,
          ),
        );
      }
      poolName = pool.name;
      const conflict = this.#shareRefusal(addr, req, pool, self);
      if (conflict !== undefined) return err(conflict);
    }
    return poolName === undefined ? err(refusal.noPools()) : ok(poolName);
  }

  /** Why `req` may not use `addr` given its current holders (undefined when free or shareable). */
  #shareRefusal(addr: IpAddress, req: ServiceRequest, pool: Pool, self?: string): AllocationError | undefined {
    for (const other of holderList(this.#holders[addr.family].get(addr.value))) {
      if (other === self) continue;
      const entry = this.#entries.get(other);
      const refused = entry && sharingRefusal(formatIp(addr), entry.request, req, pool);
      if (refused !== undefined) return refused;
    }
    return undefined;
  }

  /**
   * One address per needed family from this pool: a preferred one, a shareable one, or the next free one. The
   * addresses or the refusal (no Result wrapper to allocate on this hot path).
   */
  #takeFrom(state: PoolState, req: ServiceRequest, prefer: readonly IpAddress[]): IpAddress[] | AllocationError {
    const families = familiesFrom(req, state.pool.name, state.familySet);
    if (isRefusal(families)) return families;
    // At most one address per family, so two variables and an array literal of the final length (an array
    // grown by push would carry spare room into the allocation it becomes).
    let first: IpAddress | undefined;
    let second: IpAddress | undefined;
    for (let k = 0; k < families.length; k++) {
      const family = families[k];
      const f = family === undefined ? undefined : state.families.get(family);
      if (family === undefined || f === undefined) continue;
      const addr = this.#reusable(state, f, req, family, prefer) ?? nextFree(f, state.pool.avoidBuggyIPs, family);
      if (addr === undefined) {
        if (req.ipFamilyPolicy !== "PreferDualStack" || family === families[0]) {
          return refusal.poolExhausted([state.pool.name], family);
        }
      } else if (first === undefined) first = addr;
      else second = addr;
    }
    return first === undefined ? [] : second === undefined ? [first] : [first, second];
  }

  /**
   * For a PreferDualStack Service wanting `desired` (two families, primary first): 0 when the pool has a free
   * address of both (or one it may share under its sharing key), 1 when it has the primary family, 2 otherwise.
   */
  #dualStackRank(state: PoolState, desired: readonly Family[], req: ServiceRequest): number {
    let all = true;
    for (let k = 0; k < desired.length; k++) {
      const family = desired[k];
      const f = family === undefined ? undefined : state.families.get(family);
      if (
        family === undefined ||
        f === undefined ||
        (f.used.size >= f.capacityNumber && this.#reusable(state, f, req, family, []) === undefined)
      )
        all = false;
    }
    if (all) return 0;
    const primary = desired[0];
    return primary !== undefined && state.familySet.has(primary) ? 1 : 2;
  }

  /** A preferred address still usable, else one to share under the Service's sharing key, else undefined. */
  #reusable(
    state: PoolState,
    f: FamilyState,
    req: ServiceRequest,
    family: Family,
    prefer: readonly IpAddress[],
  ): IpAddress | undefined {
    // Most allocations have neither: skip making the closure below.
    if (prefer.length === 0 && req.sharingKey === undefined) return undefined;
    const usable = (a: IpAddress): boolean =>
      a.family === family &&
      f.ranges.some((r) => rangeContains(r, a)) &&
      !(state.pool.avoidBuggyIPs && isBuggyIp(a)) &&
      this.#shareRefusal(a, req, state.pool) === undefined;
    return prefer.find(usable) ?? this.#shareable(req, family, usable);
  }

  /** An address already held by a Service of the same sharing key that this one may share. */
  #shareable(req: ServiceRequest, family: Family, usable: (a: IpAddress) => boolean): IpAddress | undefined {
    if (req.sharingKey === undefined) return undefined;
    for (const member of this.#groups.get(req.sharingKey) ?? []) {
      const found = this.#entries.get(member)?.allocation.ips.find((a) => a.family === family && usable(a));
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /**
   * Records an allocation; `previousKey` is the sharing key of the entry it replaces (callers know it already).
   * `fresh`: `ips` is an array of the caller's own, of its final length, kept (ordered and frozen) rather than
   * copied.
   */
  #commit(
    req: ServiceRequest,
    service: string,
    pool: string,
    ips: readonly IpAddress[],
    previousKey?: string,
    fresh = false,
  ): Allocation {
    const state = this.#pools.get(pool);
    for (const addr of ips) {
      const holders = this.#holders[addr.family];
      // An address is held exactly when it is in its pool's used set, so a newly used one needs no lookup here.
      if (state?.families.get(addr.family)?.used.add(addr.value) === true) {
        holders.set(addr.value, service);
        continue;
      }
      const services = holders.get(addr.value);
      if (services === undefined) holders.set(addr.value, service);
      else if (typeof services === "string") {
        if (services !== service) holders.set(addr.value, [services, service]);
      } else if (!services.includes(service)) services.push(service);
    }
    const allocation: Allocation = Object.freeze({
      service,
      pool,
      // Frozen, and a copy unless fresh: the caller may hold on to its array, the allocation must not change.
      ips: Object.freeze(inPrimaryOrder(req, fresh ? (ips as IpAddress[]) : [...ips])),
    });
    if (previousKey !== undefined && previousKey !== req.sharingKey) {
      const members = this.#groups.get(previousKey);
      members?.delete(service);
      if (members?.size === 0) this.#groups.delete(previousKey);
    }
    this.#entries.set(service, { request: req, allocation });
    if (req.sharingKey !== undefined) {
      let members = this.#groups.get(req.sharingKey);
      if (members === undefined) this.#groups.set(req.sharingKey, (members = new Set()));
      members.add(service);
    }
    return allocation;
  }
}

const NO_POOLS: readonly PoolState[] = Object.freeze([]);

/** The Services holding one address: a lone holder's key, or the sharing holders' keys (two or more). */
type Holders = string | string[];

const holderList = (h: Holders | undefined): readonly string[] =>
  h === undefined ? [] : typeof h === "string" ? [h] : h;

/** The holders left once `service` lets go of the address; undefined when none is left. */
function withoutHolder(h: Holders, service: string): Holders | undefined {
  if (typeof h === "string") return h === service ? undefined : h;
  if (!h.includes(service)) return h;
  const rest = h.filter((s) => s !== service);
  return rest.length > 1 ? rest : rest[0];
}

/** Sorts in place, primary family first. */
function inPrimaryOrder(req: ServiceRequest, ips: IpAddress[]): IpAddress[] {
  if (ips.length < 2) return ips;
  const primary = req.ipFamilies[0];
  return ips.sort((a, b) =>
    primary !== undefined && a.family !== b.family ? (a.family === primary ? -1 : 1) : compareIp(a, b),
  );
}

const NONE: readonly IpAddress[] = Object.freeze([]);
const LOW_64 = (1n << 64n) - 1n;

/**
 * The next free address at or after the cursor, wrapping once around the pool's ranges. The capacity check first
 * guarantees a free address exists, so the walk ends; each step is one jump over a span of used addresses.
 */
function nextFree(f: FamilyState, avoidBuggy: boolean, family: Family): IpAddress | undefined {
  if (f.used.size >= f.capacityNumber) return undefined;
  const { ranges, cursor } = f;
  const n = ranges.length;
  // The first range that ends at or after the cursor (a loop, not findIndex: no closure per allocation).
  let ri = 0;
  while (ri < n && (ranges[ri]?.last ?? cursor) < cursor) ri++;
  if (ri === n) ri = 0;
  const skipBuggy = avoidBuggy && family === 4;
  for (let step = 0; step <= n; step++) {
    const r = ranges[(ri + step) % n];
    if (r === undefined) break;
    let x = step === 0 && cursor > r.first ? cursor : r.first;
    while (x <= r.last) {
      x = f.used.nextAbsent(x);
      if (x > r.last) break;
      if (skipBuggy) {
        const low = x & 0xffn;
        if (low === 0n || low === 0xffn) {
          x++;
          continue;
        }
      }
      // RFC 4291 §2.6.1: the all-zero host part of a /64 is the Subnet-Router anycast address, which routers on
      // that link answer; a VIP there would compete with them. Never handed out automatically.
      if (family === 6 && (x & LOW_64) === 0n) {
        x++;
        continue;
      }
      f.cursor = x + 1n;
      return ip(family, x);
    }
  }
  return undefined;
}

/** One refusal for a failed automatic allocation: exhaustion if any pool ran out, else the missing family. */
function summarize(failures: readonly AllocationError[]): AllocationError {
  const exhausted = failures.filter((f) => f.code === AllocationCodes.poolExhausted);
  const first = exhausted[0];
  if (first !== undefined)
    return refusal.poolExhausted(
      exhausted.flatMap((e) => e.pools),
      first.family,
    );
  const family = failures.find((f) => f.code === AllocationCodes.familyUnavailable);
  if (family !== undefined) {
    return refusal.familyUnavailable(
      family.family,
      failures.flatMap((f) => (f.code === AllocationCodes.familyUnavailable ? f.pools : [])),
    );
  }
  return failures[0] ?? refusal.noPools();
}
