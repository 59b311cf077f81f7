import { parseIp } from "../../src/core/ip.ts";
import type { InterfaceSummary } from "../../src/core/election.ts";
import type { MembershipTiming } from "../../src/core/membership.ts";

/** Shared by the integration tests that run speakers in process (fake announcer, loopback heartbeats). */

/** The default membership timing scaled down 3x, so failover and fencing scenarios stay short. */
export const fastMembership: MembershipTiming = {
  heartbeatIntervalMs: 50,
  deadAfterMs: 200,
  renewIntervalMs: 200,
  fenceAfterMs: 600,
  leaseDurationMs: 1_200,
  maxClockSkewMs: 10_000,
};

/** What the interface scan of a node on 192.0.2.0/24 finds: one interface, eth0, no default route. */
export const lanIfaces = async (): Promise<InterfaceSummary[]> => [
  { name: "eth0", prefixes: [{ ip: parseIp("192.0.2.10")!, bits: 24 }], defaultRoute4: false, defaultRoute6: false },
];
