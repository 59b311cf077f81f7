import { parseIp } from "../../src/core/ip.ts";
import type { InterfaceSummary } from "../../src/core/election.ts";
import type { MembershipTiming } from "../../src/core/membership.ts";

/** Shared by the integration tests that run speakers in process (fake announcer, loopback heartbeats). */

/** The default membership timing scaled down (heartbeats 3x, fencing 10x), so the scenarios stay short. */
export const fastMembership: MembershipTiming = {
  heartbeatIntervalMs: 50,
  deadAfterMs: 200,
  renewIntervalMs: 200,
  fenceAfterMs: 600,
  // Fencing margin (Lease duration minus fence-after) 1.8 s: room for event-loop stalls of a loaded test machine
  // running three speakers and the API server in one process (production: 10 s - 6 s = 4 s).
  leaseDurationMs: 2_400,
  maxClockSkewMs: 10_000,
};

/** What the interface scan of a node on 192.0.2.0/24 and 2001:db8::/64 finds: one interface, eth0, no default route. */
export const lanIfaces = async (): Promise<InterfaceSummary[]> => [
  {
    name: "eth0",
    prefixes: [
      { ip: parseIp("192.0.2.10")!, bits: 24 },
      { ip: parseIp("2001:db8::10")!, bits: 64 },
    ],
    defaultRoute4: false,
    defaultRoute6: false,
  },
];
