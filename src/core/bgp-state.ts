/**
 * FRR's own view of its sessions, read from `vtysh -c 'show bgp neighbors json'` and `show bfd peers json`, as
 * plain values. Pure: the adapter (src/net/frr.ts) runs vtysh, this reads the JSON it prints.
 */

/** Why a session is not up, as far as FRR can tell. */
export type SessionProblem =
  /** An OPEN was refused on either side: almost always a wrong peerASN or myASN. */
  | "wrong-asn"
  /** Never connected and a TCP MD5 password is set: the router drops unsigned or mis-signed segments silently. */
  | "unreachable-or-password"
  /** Never connected (no route, nothing listening, a firewall). */
  | "unreachable"
  /** Was up and went down (hold timer, BFD, the router closed it). */
  | "down";

export interface SessionState {
  /** The neighbor address as FRR prints it. */
  readonly address: string;
  /** The bgpPeers name, from the neighbor's description (`lodestone-<name>`), when Lodestone configured it. */
  readonly peer?: string;
  readonly state: string;
  readonly established: boolean;
  /** Prefixes FRR has sent (all families). */
  readonly prefixesSent: number;
  readonly problem?: SessionProblem;
  /** FRR's words for the last reset, when it gave any. */
  readonly lastReset?: string;
  readonly bfd?: "up" | "down" | "init" | "admin-down" | "unknown";
}

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

const BAD_AS = /bad peer as|open message error/i;

/** Pure: `show bgp neighbors json` → one state per neighbor; `hasPassword` by neighbor address. */
export function parseNeighbors(json: unknown, hasPassword: (address: string) => boolean): SessionState[] {
  const out: SessionState[] = [];
  for (const [address, raw] of Object.entries(rec(json))) {
    const n = rec(raw);
    const state = str(n["bgpState"]) ?? "Unknown";
    const established = state === "Established";
    const stats = rec(n["messageStats"]);
    let sent = 0;
    for (const af of Object.values(rec(n["addressFamilyInfo"]))) sent += num(rec(af)["sentPrefixCounter"]);
    const lastReset = [n["lastNotificationReason"], n["lastResetDueTo"], n["lastErrorCodeSubcode"]]
      .map(str)
      .find((s) => s !== undefined);
    let problem: SessionProblem | undefined;
    if (!established) {
      const refusedOpen = num(stats["opensRecv"]) > 0 && num(stats["notificationsSent"]) > 0;
      const text = [n["lastNotificationReason"], n["lastResetDueTo"]].map(str).join(" ");
      if (BAD_AS.test(text) || (refusedOpen && num(n["connectionsEstablished"]) === 0)) problem = "wrong-asn";
      else if (num(n["connectionsEstablished"]) === 0 && num(stats["opensRecv"]) === 0) {
        problem = hasPassword(address) ? "unreachable-or-password" : "unreachable";
      } else problem = "down";
    }
    const bfdInfo = rec(n["peerBfdInfo"]);
    const bfdStatus = str(bfdInfo["status"])?.toLowerCase();
    const desc = str(n["nbrDesc"]);
    out.push({
      address,
      ...(desc?.startsWith("lodestone-") === true ? { peer: desc.slice("lodestone-".length) } : {}),
      state,
      established,
      prefixesSent: sent,
      ...(problem === undefined ? {} : { problem }),
      ...(lastReset === undefined ? {} : { lastReset }),
      ...(bfdStatus === undefined ? {} : { bfd: bfdState(bfdStatus) }),
    });
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function bfdState(s: string): NonNullable<SessionState["bfd"]> {
  if (s === "up" || s === "down" || s === "init") return s;
  if (s === "admindown" || s === "admin-down" || s === "admin_down" || s === "shutdown") return "admin-down";
  return "unknown";
}

/** Pure: `show bfd peers json` → BFD status by peer address (the list FRR prints; a session per peer). */
export function parseBfdPeers(json: unknown): Map<string, NonNullable<SessionState["bfd"]>> {
  const out = new Map<string, NonNullable<SessionState["bfd"]>>();
  if (!Array.isArray(json)) return out;
  for (const raw of json) {
    const p = rec(raw);
    const peer = str(p["peer"]);
    const status = str(p["status"]);
    if (peer !== undefined && status !== undefined) out.set(peer, bfdState(status.toLowerCase()));
  }
  return out;
}

/** The words for a problem, in Events, logs and `lodestone status`. */
export function sessionProblemMessage(peer: string, address: string, problem: SessionProblem, detail?: string): string {
  const tail = detail === undefined ? "" : ` (FRR: ${detail})`;
  switch (problem) {
    case "wrong-asn":
      return `BGP peer ${peer} (${address}) refused the session at OPEN: check peerASN and myASN against the router's configuration${tail}`;
    case "unreachable-or-password":
      return `BGP peer ${peer} (${address}) never answered: unreachable, or its TCP MD5 password differs (mismatched segments are dropped silently; see the router's log)${tail}`;
    case "unreachable":
      return `BGP peer ${peer} (${address}) is unreachable: no TCP connection to its BGP port${tail}`;
    case "down":
      return `BGP session with peer ${peer} (${address}) is down${tail}`;
  }
}

/** Pure: the sessions as `lodestone status --bgp` prints them, one line per neighbor. */
export function renderSessionTable(sessions: readonly SessionState[]): string {
  if (sessions.length === 0) return "No BGP sessions (no bgpPeers apply to this node, or FRR has no configuration).";
  const rows = [
    ["PEER", "ADDRESS", "STATE", "PREFIXES SENT", "BFD", "PROBLEM"],
    ...sessions.map((s) => [
      s.peer ?? "-",
      s.address,
      s.state,
      String(s.prefixesSent),
      s.bfd ?? "-",
      s.problem === undefined ? "" : `${s.problem}${s.lastReset === undefined ? "" : ` (${s.lastReset})`}`,
    ]),
  ];
  const widths = rows.reduce((w, row) => row.map((cell, i) => Math.max(cell.length, w[i] ?? 0)), [] as number[]);
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
