import type { BfdProfile, BgpPeer } from "./bgp-config.ts";
import type { AdvertisedPrefix, BgpPlan, PlannedPeer } from "./bgp-plan.ts";
import { type Family, formatIp, parseIp } from "./ip.ts";

export interface FrrRenderOptions {
  /** TCP MD5 passwords by peer name, already read from their Secrets (a peer missing here gets none). */
  readonly passwords?: ReadonlyMap<string, string>;
  readonly bfdProfiles: readonly BfdProfile[];
}

const afi = (f: Family): string => (f === 4 ? "ipv4" : "ipv6");
const suffix = (f: Family): string => (f === 4 ? "v4" : "v6");
const routeMapName = (peer: string, f: Family): string => `lodestone-${peer}-out-${suffix(f)}`;
const prefixListName = (peer: string, f: Family, group: number): string => `lodestone-${peer}-${suffix(f)}-${group}`;

/** One set of path attributes and the prefixes that carry it (one route-map entry each). */
interface AttributeGroup {
  readonly localPref: number | undefined;
  readonly communities: readonly string[];
  readonly prefixes: string[];
}

function groupsOf(prefixes: readonly AdvertisedPrefix[], family: Family): AttributeGroup[] {
  const groups = new Map<string, AttributeGroup>();
  for (const p of prefixes) {
    if (p.family !== family) continue;
    const key = `${p.localPref ?? ""}|${p.communities.join(" ")}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { localPref: p.localPref, communities: p.communities, prefixes: [] };
      groups.set(key, g);
    }
    g.prefixes.push(p.prefix);
  }
  // Attribute keys in text order: the same plan always renders the same entry numbers.
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, g]) => g);
}

/** FNV-1a of a text, 8 hex digits: stable names for attribute route-maps (a new set renames no other). */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

const attributeKey = (p: { localPref?: number; communities: readonly string[] }): string =>
  p.localPref === undefined && p.communities.length === 0 ? "" : `${p.localPref ?? ""}|${p.communities.join(" ")}`;

function setLines(g: { localPref?: number | undefined; communities: readonly string[] }): string[] {
  const out: string[] = [];
  if (g.localPref !== undefined) out.push(` set local-preference ${g.localPref}`);
  const standard = g.communities.filter((c) => !c.startsWith("large:"));
  const large = g.communities.filter((c) => c.startsWith("large:")).map((c) => c.slice("large:".length));
  if (standard.length > 0) out.push(` set community ${standard.join(" ")}`);
  if (large.length > 0) out.push(` set large-community ${large.join(" ")}`);
  return out;
}

const samePrefixes = (a: readonly AdvertisedPrefix[], b: readonly AdvertisedPrefix[]): boolean =>
  a.length === b.length &&
  a.every((p, i) => {
    const q = b[i];
    return q !== undefined && p.prefix === q.prefix && attributeKey(p) === attributeKey(q);
  });

/**
 * Pure: FRR's integrated configuration (frr.conf) for a plan. Deterministic, so an unchanged plan is an unchanged
 * text and no reload. Every prefix is originated once with `network` (import-check off: the address is on no
 * interface of the node, kube-proxy answers for it). Where every peer of a family gets the same prefixes with the
 * same attributes (the usual case), the attributes are set at origination (`network … route-map
 * lodestone-set-<hash>`) and each peer's outbound route-map sends what this node originated (empty AS path) and
 * nothing it learnt; per-prefix data is then only the `network` lines, which FRR takes in linear time. Otherwise
 * that family falls back to one prefix-list per peer and attribute set, which FRR 8.4 loads in quadratic time
 * (docs/performance.md). Inbound, nothing is accepted: the node needs no routes from its routers. A peer carries
 * the prefixes of its own address family (an IPv4 session IPv4 prefixes): a next hop of the other family would
 * need extended next hops (RFC 8950) the router may not have. `no bgp ebgp-requires-policy` because FRR >= 7.4
 * sends nothing to an eBGP peer without an explicit policy otherwise (RFC 8212), and the route-maps are that
 * policy. Sessions bind one AS per `router bgp`; peers with another myASN use `local-as … no-prepend replace-as`,
 * so the router sees only their own myASN.
 */
export function renderFrrConfig(plan: BgpPlan, options: FrrRenderOptions): string {
  const out: string[] = ["frr defaults traditional", "!"];
  const peers = plan.peers;
  if (peers.length === 0) return `${out.join("\n")}\n`;
  const used = new Set(peers.map((p) => p.peer.bfdProfile).filter((n): n is string => n !== undefined));
  /** Per family: the network lines (with their origination route-map in the shared mode). */
  const networks = new Map<Family, string[]>();

  out.push("bgp as-path access-list lodestone-originated seq 5 permit ^$", "!");
  out.push("route-map lodestone-in deny 10", "exit", "!");
  for (const family of [4, 6] as const) {
    const ip = family === 4 ? "ip" : "ipv6";
    const mine = peers.filter((p) => p.peer.address.family === family);
    if (mine.length === 0) continue;
    const head = mine[0] as PlannedPeer;
    const shared = mine.every((p) => samePrefixes(p.prefixes, head.prefixes));
    if (shared) {
      const sets = new Map<string, { name: string; lines: string[] }>();
      const lines: string[] = [];
      for (const p of head.prefixes) {
        const key = attributeKey(p);
        if (key === "") {
          lines.push(`  network ${p.prefix}`);
          continue;
        }
        let set = sets.get(key);
        if (set === undefined) sets.set(key, (set = { name: `lodestone-set-${shortHash(key)}`, lines: setLines(p) }));
        lines.push(`  network ${p.prefix} route-map ${set.name}`);
      }
      networks.set(family, lines);
      for (const set of [...sets.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        out.push(`route-map ${set.name} permit 10`, ...set.lines, "exit", "!");
      }
      for (const { peer } of mine) {
        out.push(
          `route-map ${routeMapName(peer.name, family)} permit 10`,
          " match as-path lodestone-originated",
          "exit",
          `route-map ${routeMapName(peer.name, family)} deny 65535`,
          "exit",
          "!",
        );
      }
      continue;
    }
    const union = new Set<string>();
    for (const { peer, prefixes } of mine) {
      const groups = groupsOf(prefixes, family);
      groups.forEach((g, i) => {
        g.prefixes.forEach((p, j) => {
          union.add(p);
          out.push(`${ip} prefix-list ${prefixListName(peer.name, family, i + 1)} seq ${(j + 1) * 5} permit ${p}`);
        });
      });
      groups.forEach((g, i) => {
        out.push(`route-map ${routeMapName(peer.name, family)} permit ${(i + 1) * 10}`);
        out.push(` match ${ip} address prefix-list ${prefixListName(peer.name, family, i + 1)}`);
        out.push(...setLines(g), "exit");
      });
      // Always defined, so the neighbor's `route-map … out` never names a missing map (FRR would then send all).
      out.push(`route-map ${routeMapName(peer.name, family)} deny 65535`, "exit", "!");
    }
    networks.set(
      family,
      [...union].sort(comparePrefixText).map((n) => `  network ${n}`),
    );
  }

  const first = peers[0] as PlannedPeer;
  const asn = first.peer.myASN;
  const routerId = peers.find((p) => p.peer.routerID !== undefined)?.peer.routerID;
  out.push(`router bgp ${asn}`);
  if (routerId !== undefined) out.push(` bgp router-id ${formatIp(routerId)}`);
  out.push(" no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " no bgp network import-check");
  // FRR advertises the graceful-restart capability by default (helper mode, restart time 120 s); a router that
  // sees it keeps a dead node's routes for that long after the hold timer (RFC 4724), which is what BFD and the
  // hold time are there to prevent. Lodestone's routes are cheap to re-advertise.
  out.push(" bgp graceful-restart-disable");
  for (const { peer } of peers) out.push(...neighborLines(peer, asn, options.passwords?.get(peer.name)));
  for (const family of [4, 6] as const) {
    const mine = peers.filter((p) => p.peer.address.family === family);
    if (mine.length === 0) continue;
    out.push(" !", ` address-family ${afi(family)} unicast`, ...(networks.get(family) ?? []));
    for (const { peer } of mine) {
      const a = formatIp(peer.address);
      out.push(
        `  neighbor ${a} activate`,
        `  neighbor ${a} route-map lodestone-in in`,
        `  neighbor ${a} route-map ${routeMapName(peer.name, family)} out`,
      );
    }
    out.push(" exit-address-family");
  }
  out.push("exit", "!");

  const profiles = options.bfdProfiles.filter((b) => used.has(b.name));
  if (profiles.length > 0) {
    out.push("bfd");
    for (const b of [...profiles].sort((x, y) => (x.name < y.name ? -1 : 1))) out.push(...bfdLines(b));
    out.push("exit", "!");
  }
  return `${out.join("\n")}\n`;
}

function neighborLines(peer: BgpPeer, asn: number, secretPassword: string | undefined): string[] {
  const a = formatIp(peer.address);
  const lines = [` neighbor ${a} remote-as ${peer.peerASN}`, ` neighbor ${a} description lodestone-${peer.name}`];
  if (peer.myASN !== asn) lines.push(` neighbor ${a} local-as ${peer.myASN} no-prepend replace-as`);
  if (peer.port !== 179) lines.push(` neighbor ${a} port ${peer.port}`);
  lines.push(` neighbor ${a} timers ${peer.keepaliveTime} ${peer.holdTime}`);
  const password = peer.password !== undefined && "text" in peer.password ? peer.password.text : secretPassword;
  if (password !== undefined) lines.push(` neighbor ${a} password ${password}`);
  if (peer.ebgpMultiHop) lines.push(` neighbor ${a} ebgp-multihop`);
  if (peer.sourceAddress !== undefined) lines.push(` neighbor ${a} update-source ${formatIp(peer.sourceAddress)}`);
  if (peer.bfdProfile !== undefined) {
    lines.push(` neighbor ${a} bfd`, ` neighbor ${a} bfd profile ${peer.bfdProfile}`);
  }
  return lines;
}

function bfdLines(b: BfdProfile): string[] {
  const lines = [
    ` profile ${b.name}`,
    `  detect-multiplier ${b.detectMultiplier}`,
    `  receive-interval ${b.receiveInterval}`,
    `  transmit-interval ${b.transmitInterval}`,
  ];
  if (b.echoMode) lines.push("  echo-mode");
  if (b.echoInterval !== undefined) {
    lines.push(`  echo transmit-interval ${b.echoInterval}`, `  echo receive-interval ${b.echoInterval}`);
  }
  if (b.passiveMode) lines.push("  passive-mode");
  if (b.minimumTtl !== undefined) lines.push(`  minimum-ttl ${b.minimumTtl}`);
  lines.push(" exit");
  return lines;
}

/** Prefix texts of one family in address order, then by length. */
function comparePrefixText(a: string, b: string): number {
  const [aa = "", al = "0"] = a.split("/");
  const [ba = "", bl = "0"] = b.split("/");
  const av = parseIp(aa)?.value ?? 0n;
  const bv = parseIp(ba)?.value ?? 0n;
  return av < bv ? -1 : av > bv ? 1 : Number(al) - Number(bl);
}

/**
 * Pure: the `network` lines of a configuration (ours or FRR's `show running-config`, which prints them alike), by
 * address family ("ipv4 unicast", "ipv6 unicast") and prefix.
 */
export function networkLines(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let family: Map<string, string> | undefined;
  for (const line of text.split("\n")) {
    const af = /^ address-family (\S+ \S+)\s*$/.exec(line);
    if (af !== null) {
      const name = af[1] ?? "";
      family = out.get(name) ?? new Map<string, string>();
      out.set(name, family);
      continue;
    }
    if (line.startsWith(" exit-address-family") || !line.startsWith(" ")) family = undefined;
    const net = /^ {2}network (\S+)/.exec(line);
    if (net !== null && family !== undefined) family.set(net[1] ?? "", line.trimEnd());
  }
  return out;
}

/** Pure: `text` with the network lines of each of its address families replaced by those of `nets`. */
export function withNetworks(text: string, nets: ReadonlyMap<string, ReadonlyMap<string, string>>): string {
  const out: string[] = [];
  let inFamily = false;
  for (const line of text.split("\n")) {
    const af = /^ address-family (\S+ \S+)\s*$/.exec(line);
    if (af !== null) {
      out.push(line, ...(nets.get(af[1] ?? "")?.values() ?? []));
      inFamily = true;
      continue;
    }
    if (line.startsWith(" exit-address-family") || !line.startsWith(" ")) inFamily = false;
    if (inFamily && /^ {2}network /.test(line)) continue;
    out.push(line);
  }
  return out.join("\n");
}

/**
 * Pure: vtysh configuration commands that take FRR's `network` lines from `from` to `to` under `router bgp asn`
 * ("" when they are equal): only what changed, so a Service added among 10,000 is one line for FRR, where
 * frr-reload.py would compare (quadratically) every line.
 */
export function networkCommands(
  asn: string,
  from: ReadonlyMap<string, ReadonlyMap<string, string>>,
  to: ReadonlyMap<string, ReadonlyMap<string, string>>,
): string {
  const out: string[] = [];
  for (const family of new Set([...from.keys(), ...to.keys()])) {
    const a = from.get(family) ?? new Map<string, string>();
    const b = to.get(family) ?? new Map<string, string>();
    const lines: string[] = [];
    for (const [prefix, line] of b) if (a.get(prefix) !== line) lines.push(line);
    for (const prefix of a.keys()) if (!b.has(prefix)) lines.push(`  no network ${prefix}`);
    if (lines.length > 0) out.push(` address-family ${family}`, ...lines, " exit-address-family");
  }
  return out.length === 0 ? "" : `router bgp ${asn}\n${out.join("\n")}\nexit\n`;
}
