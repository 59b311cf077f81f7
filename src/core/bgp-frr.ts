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

/**
 * Pure: FRR's integrated configuration (frr.conf) for a plan. Deterministic, so an unchanged plan is an unchanged
 * text and no reload. Every prefix is originated once with `network` (import-check off: the address is on no
 * interface of the node, kube-proxy answers for it) and each peer's outbound route-map lets through exactly the
 * prefixes planned for it, grouped by path attributes; everything else is denied, so a prefix planned for one
 * peer never leaks to another. A peer carries the prefixes of its own address family (an IPv4 session IPv4
 * prefixes): a next hop of the other family would need extended next hops (RFC 8950) the router may not have.
 * `no bgp ebgp-requires-policy` because FRR >= 7.4 sends nothing to an eBGP peer without an explicit policy
 * otherwise (RFC 8212), and the route-maps are that policy. Sessions bind one AS per `router bgp`; peers with
 * another myASN use `local-as … no-prepend replace-as`, so the router sees only their own myASN.
 */
export function renderFrrConfig(plan: BgpPlan, options: FrrRenderOptions): string {
  const out: string[] = ["frr defaults traditional", "!"];
  const peers = plan.peers;
  if (peers.length === 0) return `${out.join("\n")}\n`;
  const used = new Set(peers.map((p) => p.peer.bfdProfile).filter((n): n is string => n !== undefined));

  for (const family of [4, 6] as const) {
    const ip = family === 4 ? "ip" : "ipv6";
    for (const { peer, prefixes } of peers) {
      if (peer.address.family !== family) continue;
      const groups = groupsOf(prefixes, family);
      groups.forEach((g, i) => {
        g.prefixes.forEach((p, j) =>
          out.push(`${ip} prefix-list ${prefixListName(peer.name, family, i + 1)} seq ${(j + 1) * 5} permit ${p}`),
        );
      });
      groups.forEach((g, i) => {
        out.push(`route-map ${routeMapName(peer.name, family)} permit ${(i + 1) * 10}`);
        out.push(` match ${ip} address prefix-list ${prefixListName(peer.name, family, i + 1)}`);
        if (g.localPref !== undefined) out.push(` set local-preference ${g.localPref}`);
        const standard = g.communities.filter((c) => !c.startsWith("large:"));
        const large = g.communities.filter((c) => c.startsWith("large:")).map((c) => c.slice("large:".length));
        if (standard.length > 0) out.push(` set community ${standard.join(" ")}`);
        if (large.length > 0) out.push(` set large-community ${large.join(" ")}`);
        out.push("exit");
      });
      // Always defined, so the neighbor's `route-map … out` never names a missing map (FRR would then send all).
      out.push(`route-map ${routeMapName(peer.name, family)} deny 65535`, "exit", "!");
    }
  }

  const first = peers[0] as PlannedPeer;
  const asn = first.peer.myASN;
  const routerId = peers.find((p) => p.peer.routerID !== undefined)?.peer.routerID;
  out.push(`router bgp ${asn}`);
  if (routerId !== undefined) out.push(` bgp router-id ${formatIp(routerId)}`);
  out.push(" no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " no bgp network import-check");
  for (const { peer } of peers) out.push(...neighborLines(peer, asn, options.passwords?.get(peer.name)));
  for (const family of [4, 6] as const) {
    const mine = peers.filter((p) => p.peer.address.family === family);
    if (mine.length === 0) continue;
    const networks = new Set<string>();
    for (const { prefixes } of mine) for (const p of prefixes) if (p.family === family) networks.add(p.prefix);
    out.push(" !", ` address-family ${afi(family)} unicast`);
    // The plan lists prefixes in address order per peer; the union keeps that order for one peer, sorts for many.
    const ordered = mine.length === 1 ? [...networks] : [...networks].sort(comparePrefixText);
    for (const n of ordered) out.push(`  network ${n}`);
    for (const { peer } of mine) {
      const a = formatIp(peer.address);
      out.push(`  neighbor ${a} activate`, `  neighbor ${a} route-map ${routeMapName(peer.name, family)} out`);
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
