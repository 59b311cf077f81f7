import type { Family } from "./ip.ts";
import { type LagHistogram, emptyLag } from "./loop-lag.ts";

/**
 * What the daemon knows about itself at one instant, as plain data. Every part of the daemon contributes its
 * piece (the controller its pools and failures, the announcer its packet counters, the speaker its membership);
 * the HTTP adapter turns a snapshot into Prometheus text on each scrape. Counters are monotonic totals since
 * start; absent parts (speaker disabled, not leader) simply leave their fields empty.
 */
export interface TelemetrySnapshot {
  readonly pools: readonly PoolUsage[];
  readonly servicesAllocated: number;
  /** Allocation failures since start, by the allocator's refusal code. */
  readonly allocationFailures: Readonly<Record<string, number>>;
  /** One entry per pool ConfigMap: stale when its newest version is broken and its last good one is in use. */
  readonly configMaps: readonly { readonly configMap: string; readonly stale: boolean }[];
  readonly leader: boolean;
  /** Informer restarts since start, by resource ("services", "configmaps", …). */
  readonly informerRestarts: Readonly<Record<string, number>>;
  readonly layer2: readonly Layer2Counters[];
  readonly layer2Drops: readonly { readonly interface: string; readonly reason: string; readonly count: number }[];
  readonly announcedIps: number;
  readonly membershipSize: number;
  readonly failovers: number;
  /** Another host seen announcing an IP this node owns (each sighting, before the once-a-second defence). */
  readonly duellingAnnouncements: number;
  /** How late the daemon's event loop ran a timer (src/app/loop-lag.ts). */
  readonly loopLag: LagHistogram;
  /** The same for the speaker's wire thread (ARP/NDP answers, bursts, heartbeats); empty without one. */
  readonly wireLoopLag: LagHistogram;
  /** Events not written because the recorder's queue was full, by component ("controller", "speaker"). */
  readonly eventsDropped: Readonly<Record<string, number>>;
  /** BGP sessions of this node (src/app/bgp-component.ts); empty when BGP is not configured. */
  readonly bgpSessions: readonly BgpSessionTelemetry[];
}

export interface BgpSessionTelemetry {
  /** The bgpPeers name. */
  readonly peer: string;
  readonly address: string;
  readonly up: boolean;
  /** Prefixes FRR reports sent to the peer. */
  readonly prefixesAdvertised: number;
  /** BFD session state; undefined when the peer has no bfdProfile. */
  readonly bfdUp?: boolean;
}

export interface PoolUsage {
  readonly pool: string;
  readonly family: Family;
  /** Exact size; a /64 is 2^64, so never a JS number until the edge. */
  readonly total: bigint;
  readonly inUse: number;
}

export interface Layer2Counters {
  readonly interface: string;
  readonly ip: string;
  readonly requests: number;
  readonly replies: number;
  readonly gratuitous: number;
}

export const emptyTelemetry: TelemetrySnapshot = Object.freeze({
  pools: [],
  servicesAllocated: 0,
  allocationFailures: {},
  configMaps: [],
  leader: false,
  informerRestarts: {},
  layer2: [],
  layer2Drops: [],
  announcedIps: 0,
  membershipSize: 0,
  failovers: 0,
  duellingAnnouncements: 0,
  loopLag: emptyLag(),
  wireLoopLag: emptyLag(),
  eventsDropped: {},
  bgpSessions: [],
});

/** The answer of a health probe (`/healthz` or `/readyz`) with its reasons, so the probe can say what is wrong. */
export interface ProbeResult {
  readonly ok: boolean;
  readonly reasons: readonly string[];
}
