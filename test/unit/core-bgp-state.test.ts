import { describe, expect, it } from "vitest";
import { parseBfdPeers, parseNeighbors, renderSessionTable, sessionProblemMessage } from "../../src/core/bgp-state.ts";

/** Shapes of FRR 8.4's `show bgp neighbors json`, trimmed to the fields read (seen in the BGP lab). */
const neighbor = (o: Record<string, unknown>) => ({
  remoteAs: 64512,
  localAs: 64513,
  bgpState: "Established",
  nbrDesc: "lodestone-tor",
  connectionsEstablished: 1,
  connectionsDropped: 0,
  messageStats: { opensSent: 1, opensRecv: 1, notificationsSent: 0, notificationsRecv: 0 },
  addressFamilyInfo: { ipv4Unicast: { sentPrefixCounter: 3 } },
  peerBfdInfo: { status: "Up" },
  ...o,
});

describe("parseNeighbors", () => {
  it.each([
    { desc: "established", n: {}, problem: undefined, established: true },
    {
      desc: "our OPEN refused the router's (wrong peerASN): OPEN received, NOTIFICATION sent, never up",
      n: {
        bgpState: "Active",
        connectionsEstablished: 0,
        messageStats: { opensRecv: 1, notificationsSent: 1 },
        lastResetDueTo: "BFD down received",
      },
      problem: "wrong-asn",
      established: false,
    },
    {
      desc: "the router refused ours (Bad Peer AS in its NOTIFICATION)",
      n: { bgpState: "Idle", lastNotificationReason: "OPEN Message Error/Bad Peer AS", connectionsEstablished: 0 },
      problem: "wrong-asn",
      established: false,
    },
    {
      desc: "never an OPEN, no password: unreachable",
      n: { bgpState: "Connect", connectionsEstablished: 0, messageStats: {}, nbrDesc: "lodestone-plain" },
      problem: "unreachable",
      established: false,
    },
    {
      desc: "never an OPEN, with a password: unreachable or the password",
      n: { bgpState: "Connect", connectionsEstablished: 0, messageStats: {} },
      problem: "unreachable-or-password",
      established: false,
    },
    {
      desc: "was up, now down",
      n: { bgpState: "Active", connectionsEstablished: 1, lastResetDueTo: "BFD down received" },
      problem: "down",
      established: false,
    },
  ])("$desc", ({ n, problem, established }) => {
    const [s] = parseNeighbors(
      { "192.0.2.1": neighbor(n) },
      () => (n as { nbrDesc?: string }).nbrDesc !== "lodestone-plain",
    );
    expect(s?.problem).toBe(problem);
    expect(s?.established).toBe(established);
  });

  it("reads the peer name, prefixes sent over every family and BFD", () => {
    const [s] = parseNeighbors(
      { "2001:db8::1": neighbor({ addressFamilyInfo: { ipv6Unicast: { sentPrefixCounter: 5 }, ipv4Unicast: {} } }) },
      () => false,
    );
    expect(s).toEqual({
      address: "2001:db8::1",
      peer: "tor",
      state: "Established",
      established: true,
      prefixesSent: 5,
      bfd: "up",
    });
  });

  it("takes what is not a mapping for no neighbors", () => {
    expect(parseNeighbors([], () => false)).toEqual([]);
    expect(parseNeighbors(null, () => false)).toEqual([]);
  });
});

describe("parseBfdPeers", () => {
  it("maps FRR's statuses", () => {
    const m = parseBfdPeers([
      { peer: "192.0.2.1", status: "up" },
      { peer: "2001:db8::1", status: "down" },
      { peer: "192.0.2.2", status: "shutdown" },
      { status: "up" },
    ]);
    expect([...m]).toEqual([
      ["192.0.2.1", "up"],
      ["2001:db8::1", "down"],
      ["192.0.2.2", "admin-down"],
    ]);
  });
});

describe("messages and the status table", () => {
  it("name the peer, its address and what to check", () => {
    expect(sessionProblemMessage("tor", "192.0.2.1", "wrong-asn")).toMatch(
      /peer tor \(192\.0\.2\.1\).*peerASN and myASN/,
    );
    expect(sessionProblemMessage("tor", "192.0.2.1", "unreachable-or-password", "Waiting for peer OPEN")).toMatch(
      /TCP MD5 password.*\(FRR: Waiting for peer OPEN\)$/,
    );
  });

  it("renders one aligned line per session", () => {
    const sessions = parseNeighbors(
      {
        "192.0.2.1": neighbor({}),
        "192.0.2.2": neighbor({ nbrDesc: undefined, bgpState: "Connect", connectionsEstablished: 0, messageStats: {} }),
      },
      () => false,
    );
    expect(renderSessionTable(sessions).split("\n")).toEqual([
      "PEER  ADDRESS    STATE        PREFIXES SENT  BFD  PROBLEM",
      "tor   192.0.2.1  Established  3              up",
      "-     192.0.2.2  Connect      3              up   unreachable",
    ]);
  });
});
