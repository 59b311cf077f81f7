import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { TelemetrySnapshot } from "../core/telemetry.ts";
import { familyName } from "../core/ip.ts";

/**
 * The Prometheus view of a TelemetrySnapshot. Metrics are computed on scrape from one snapshot, so every value
 * of a scrape comes from the same instant and nothing is kept twice. The catalogue is `metricCatalogue` below;
 * the metrics table of docs/operations.md is checked against the same names (test/unit/docs-metrics.test.ts).
 */
export const metricCatalogue = [
  ["lodestone_pool_addresses_total", "gauge", "pool, family", "Addresses in the pool (exact up to 2^53, then float)"],
  ["lodestone_pool_addresses_in_use", "gauge", "pool, family", "Addresses assigned to Services"],
  ["lodestone_pool_addresses_available", "gauge", "pool, family", "Addresses still free"],
  ["lodestone_services_allocated", "gauge", "", "LoadBalancer Services holding at least one IP"],
  ["lodestone_allocation_failures_total", "counter", "reason", "Allocation refusals since start, by error code"],
  ["lodestone_config_stale", "gauge", "configmap", "1 while a broken ConfigMap is replaced by its last good version"],
  ["lodestone_leader", "gauge", "", "1 on the pod that currently allocates"],
  ["lodestone_informer_restarts_total", "counter", "resource", "Watches restarted after an error"],
  [
    "lodestone_l2_requests_total",
    "counter",
    "interface, ip",
    "ARP requests / Neighbor Solicitations seen for owned IPs",
  ],
  ["lodestone_l2_replies_total", "counter", "interface, ip", "ARP replies / Neighbor Advertisements sent"],
  ["lodestone_l2_gratuitous_total", "counter", "interface, ip", "Gratuitous ARP / unsolicited NA sent"],
  ["lodestone_l2_drops_total", "counter", "interface, reason", "Frames received and not answered, by reason"],
  ["lodestone_announced_ips", "gauge", "", "IPs this node announces now"],
  ["lodestone_membership_size", "gauge", "", "Speakers this node believes alive"],
  ["lodestone_failover_events_total", "counter", "", "IPs this node took over from another node"],
  [
    "lodestone_duelling_announcements_total",
    "counter",
    "",
    "Announcements by another host of an IP this node owns (each answered by announcing it again)",
  ],
  ["lodestone_event_loop_lag_seconds", "histogram", "", "How late the daemon's event loop ran a 20 ms timer"],
  [
    "lodestone_wire_event_loop_lag_seconds",
    "histogram",
    "",
    "How late the speaker's wire thread (ARP/NDP answers, heartbeats) ran a 20 ms timer",
  ],
  [
    "lodestone_events_dropped_total",
    "counter",
    "component",
    "Kubernetes Events not written because the recorder's queue was full",
  ],
  ["lodestone_bgp_session_up", "gauge", "peer", "1 while the BGP session with the peer is established"],
  ["lodestone_bgp_prefixes_advertised", "gauge", "peer", "Prefixes FRR has sent to the peer"],
  [
    "lodestone_bfd_session_up",
    "gauge",
    "peer",
    "1 while the BFD session with the peer is up (peers with a bfdProfile)",
  ],
] as const;

type MetricName = (typeof metricCatalogue)[number][0];

/**
 * A histogram whose buckets come from the snapshot (the sampler keeps them, as owners keep their counters):
 * prom-client's Histogram only counts what is observed through it, so its export is replaced.
 */
class SnapshotHistogram extends Histogram {
  private readonly read: () => TelemetrySnapshot;
  private readonly metric: MetricName;
  private readonly text: string;
  private readonly field: "loopLag" | "wireLoopLag";
  constructor(
    name: MetricName,
    field: "loopLag" | "wireLoopLag",
    help: (n: MetricName) => string,
    read: () => TelemetrySnapshot,
  ) {
    super({ name, help: help(name), registers: [] });
    this.metric = name;
    this.field = field;
    this.text = help(name);
    this.read = read;
  }
  getForPromString() {
    const h = this.read()[this.field];
    const name = this.metric;
    const bucket = `${name}_bucket`;
    return Promise.resolve({
      name,
      help: this.text,
      type: "histogram" as const,
      aggregator: "sum" as const,
      values: [
        ...h.bounds.map((le, i) => ({ metricName: bucket, labels: { le }, value: h.counts[i] ?? 0 })),
        { metricName: bucket, labels: { le: "+Inf" }, value: h.count },
        { metricName: `${name}_sum`, labels: {}, value: h.sum },
        { metricName: `${name}_count`, labels: {}, value: h.count },
      ],
    });
  }
}

export function createMetricsRegistry(snapshot: () => TelemetrySnapshot): Registry {
  const registry = new Registry();
  let current: TelemetrySnapshot | undefined;
  // prom-client calls each collect() on scrape; the first one takes the snapshot the others read.
  const take = (): TelemetrySnapshot => (current ??= snapshot());
  const help = (name: MetricName): string => metricCatalogue.find((m) => m[0] === name)?.[3] ?? name;
  const labels = (name: MetricName): string[] => {
    const spec = metricCatalogue.find((m) => m[0] === name)?.[2] ?? "";
    return spec === "" ? [] : spec.split(", ");
  };
  function gauge(name: MetricName, fill: (g: Gauge, s: TelemetrySnapshot) => void): void {
    new Gauge({
      name,
      help: help(name),
      labelNames: labels(name),
      registers: [registry],
      collect() {
        this.reset();
        fill(this, take());
      },
    });
  }
  function counter(
    name: MetricName,
    fill: (add: (l: Record<string, string>, v: number) => void, s: TelemetrySnapshot) => void,
  ): void {
    new Counter({
      name,
      help: help(name),
      labelNames: labels(name),
      registers: [registry],
      collect() {
        // Totals are kept by their owners; a scrape reports them as they are.
        this.reset();
        fill((l, v) => this.inc(l, v), take());
      },
    });
  }

  gauge("lodestone_pool_addresses_total", (g, s) => {
    for (const p of s.pools) g.set({ pool: p.pool, family: familyName(p.family) }, Number(p.total));
  });
  gauge("lodestone_pool_addresses_in_use", (g, s) => {
    for (const p of s.pools) g.set({ pool: p.pool, family: familyName(p.family) }, p.inUse);
  });
  gauge("lodestone_pool_addresses_available", (g, s) => {
    for (const p of s.pools) g.set({ pool: p.pool, family: familyName(p.family) }, Number(p.total - BigInt(p.inUse)));
  });
  gauge("lodestone_services_allocated", (g, s) => g.set(s.servicesAllocated));
  counter("lodestone_allocation_failures_total", (add, s) => {
    for (const [reason, n] of Object.entries(s.allocationFailures)) add({ reason }, n);
  });
  gauge("lodestone_config_stale", (g, s) => {
    for (const c of s.configMaps) g.set({ configmap: c.configMap }, c.stale ? 1 : 0);
  });
  gauge("lodestone_leader", (g, s) => g.set(s.leader ? 1 : 0));
  counter("lodestone_informer_restarts_total", (add, s) => {
    for (const [resource, n] of Object.entries(s.informerRestarts)) add({ resource }, n);
  });
  counter("lodestone_l2_drops_total", (add, s) => {
    for (const d of s.layer2Drops) add({ interface: d.interface, reason: d.reason }, d.count);
  });
  gauge("lodestone_announced_ips", (g, s) => g.set(s.announcedIps));
  gauge("lodestone_membership_size", (g, s) => g.set(s.membershipSize));
  counter("lodestone_failover_events_total", (add, s) => add({}, s.failovers));
  counter("lodestone_duelling_announcements_total", (add, s) => add({}, s.duellingAnnouncements));
  registry.registerMetric(new SnapshotHistogram("lodestone_event_loop_lag_seconds", "loopLag", help, take));
  registry.registerMetric(new SnapshotHistogram("lodestone_wire_event_loop_lag_seconds", "wireLoopLag", help, take));
  counter("lodestone_events_dropped_total", (add, s) => {
    for (const [component, n] of Object.entries(s.eventsDropped)) add({ component }, n);
  });

  gauge("lodestone_bgp_session_up", (g, s) => {
    for (const b of s.bgpSessions) g.set({ peer: b.peer }, b.up ? 1 : 0);
  });
  gauge("lodestone_bgp_prefixes_advertised", (g, s) => {
    for (const b of s.bgpSessions) g.set({ peer: b.peer }, b.prefixesAdvertised);
  });
  gauge("lodestone_bfd_session_up", (g, s) => {
    for (const b of s.bgpSessions) if (b.bfdUp !== undefined) g.set({ peer: b.peer }, b.bfdUp ? 1 : 0);
  });

  // The per-IP families are written here, in slices: at 10,000 owned IPs they are most of a scrape (~2 MB), and
  // serialising them in one turn would hold heartbeats and ARP/NDP answers back for that long.
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    try {
      const parts = [await metrics()];
      const layer2 = take().layer2;
      for (const [name, field] of PER_IP) {
        parts.push(`# HELP ${name} ${help(name)}\n# TYPE ${name} counter\n`);
        for (let i = 0; i < layer2.length; i += PER_IP_SLICE) {
          if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
          let text = "";
          for (const c of layer2.slice(i, i + PER_IP_SLICE)) {
            text += `${name}{interface="${escapeLabel(c.interface)}",ip="${escapeLabel(c.ip)}"} ${c[field]}\n`;
          }
          parts.push(text);
        }
      }
      return parts.join("");
    } finally {
      // Drop the snapshot once the scrape is serialised, so the next scrape takes a fresh one.
      current = undefined;
    }
  };
  return registry;
}

const PER_IP = [
  ["lodestone_l2_requests_total", "requests"],
  ["lodestone_l2_replies_total", "replies"],
  ["lodestone_l2_gratuitous_total", "gratuitous"],
] as const satisfies readonly (readonly [MetricName, keyof TelemetrySnapshot["layer2"][number]])[];

/** Per-IP lines serialised in one event-loop turn. */
const PER_IP_SLICE = 1_000;

/** The text format's label-value escapes (backslash, double quote, newline), as prom-client writes them. */
const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
