import type { Logger } from "pino";
import { err, NetCodes, ok, type NetError, type Result } from "../core/errors.ts";
import { formatMac, sameMac, type Mac } from "../core/frames/ethernet.ts";
import { solicitedNodeAddress } from "../core/frames/ndp.ts";
import { gratuitousFrames, gratuitousRoundAt, type GratuitousSchedule } from "../core/gratuitous.ts";
import { interfacesFor, type InterfaceSnapshot, type NetInterface } from "../core/interfaces.ts";
import { formatIp, ipKey, type IpAddress } from "../core/ip.ts";
import { announcementIn, DropReason, respond, type ForeignAnnouncement, type Ownership } from "../core/responder.ts";
import type { Layer2Counters, TelemetrySnapshot } from "../core/telemetry.ts";
import { scanInterfaces, watchInterfaces, type InterfaceWatch } from "./interfaces.ts";
import { openMulticastListener, type MulticastListener } from "./mld.ts";
import {
  checkPacketAccess,
  ETH_P_ALL,
  neighbourSolicitationFilter,
  openPacketSocket,
  type OpenOptions,
  type PacketSocket,
} from "./packet-socket.ts";

/** "Own this IP": what the speaker hands the announcer. */
export interface Claim {
  /** Who the IP is for, e.g. "namespace/service" (logs only). */
  readonly key: string;
  readonly ip: IpAddress;
  /** The pool's `announce.interfaces`; when absent the interface is chosen by subnet, then default route. */
  readonly interfaces?: readonly string[];
  readonly gratuitous: GratuitousSchedule;
}

export interface ReconcileReport {
  readonly announced: readonly {
    readonly key: string;
    readonly ip: IpAddress;
    readonly interfaces: readonly string[];
  }[];
  /** Claims answered on no interface at all, and why. */
  readonly unannounced: readonly { readonly key: string; readonly ip: IpAddress; readonly error: NetError }[];
}

export interface Announcer {
  /** Declarative: exactly these IPs are owned from now on. New ones get a gratuitous burst; removed ones stop being answered at once. */
  reconcile(claims: readonly Claim[]): ReconcileReport;
  /**
   * Starts the gratuitous burst of an owned IP again (e.g. after a switch port flap), or with `once` sends one
   * announcement and leaves any burst running as it is (defending the IP); false when not owned.
   */
  announceNow(ip: IpAddress, options?: { readonly once?: boolean }): boolean;
  /**
   * reconcile() by difference: these claims new or changed, these IP keys (ipKey) no longer claimed. Costs what
   * changed, not what is owned, so a takeover of thousands of IPs can be applied a few hundred at a time.
   * Returns every claim currently answered on no interface.
   */
  update(upserts: readonly Claim[], removes: readonly string[]): Pick<ReconcileReport, "unannounced">;
  telemetry(): Pick<TelemetrySnapshot, "layer2" | "layer2Drops">;
  /**
   * Calls `listener` for every announcement of an IP by another host seen on an announcing interface (gratuitous
   * ARP, unsolicited NA); returns the unsubscribe function. A leaving speaker waits on it for its successors.
   */
  onForeignAnnouncement(listener: (seen: ForeignAnnouncement & { readonly interface: string }) => void): () => void;
  close(): Promise<void>;
}

export interface AnnouncerOptions {
  readonly logger: Logger;
  /** Milliseconds clock for burst schedules (Date.now by default). */
  readonly now?: () => number;
  /** Interface scan (iproute2 by default); tests may inject a fixed one. */
  readonly scan?: () => Promise<InterfaceSnapshot>;
  /** Follow interface changes with `ip monitor` plus a periodic rescan (default true). */
  readonly watch?: boolean;
  /** The link-layer transport (the AF_PACKET addon by default); unit tests inject a fake. */
  readonly transport?: Transport;
}

export interface Transport {
  readonly checkAccess: () => Result<void, NetError>;
  readonly open: (options: OpenOptions) => Result<PacketSocket, NetError>;
  /** IPv6 group membership through the kernel (MLD reports) for one interface, by name. */
  readonly multicastListener: (ifname: string) => MulticastListener;
}

const packetTransport: Transport = {
  checkAccess: checkPacketAccess,
  open: openPacketSocket,
  multicastListener: (ifname) => openMulticastListener(ifname),
};

interface Link {
  readonly name: string;
  readonly index: number;
  readonly mac: Mac;
  readonly socket: PacketSocket;
  /** The kernel's memberships of the solicited-node groups, opened with the link and closed with it. */
  readonly listener: MulticastListener;
  /** Solicited-node groups wanted, with how many owned IPs need each (several VIPs share a group). */
  readonly groups: Map<string, number>;
  /** Groups the kernel holds for us (the listener's joins), which catch up with `groups` a few per turn. */
  readonly held: Set<string>;
  /** Groups whose wanted and held state may differ, with the address to join or leave. */
  readonly pending: Map<string, IpAddress>;
  /** Whether the socket receives every multicast frame (set once, at the first IPv6 group). */
  allMulticast: boolean;
}

interface Owned {
  readonly claim: Claim;
  readonly interfaces: Set<string>;
}

/** Where one claim is answered, as apply() worked it out for one interface snapshot. */
interface Choice {
  readonly claim: Claim;
  readonly interfaces: Set<string>;
  readonly announced: ReconcileReport["announced"][number] | undefined;
  readonly unannounced: ReconcileReport["unannounced"][number] | undefined;
}

/** Gratuitous rounds sent in one event-loop turn at most, and for at most this long (see roundFitsThisTurn). */
const ROUNDS_PER_TURN = 200;
const SENDING_MS_PER_TURN = 5;
const FIRST_ROUNDS_MS_PER_TURN = 15;

/**
 * Kernel group joins or leaves (one setsockopt each) done in one event-loop turn at most. The kernel keeps a
 * socket's and a device's groups in lists, so a join costs more the more groups are held (measured in
 * docs/performance.md): a takeover of thousands of IPv6 addresses catches up over a few turns instead of one.
 */
const GROUP_OPS_PER_TURN = 128;

/** Per-IP "claimed"/"released" lines at info up to this many in one reconcile; beyond, debug and one summary. */
const LOGGED_PER_IP = 16;

interface Burst {
  readonly startedAt: number;
  sent: number;
  timer: NodeJS.Timeout | undefined;
  schedule: GratuitousSchedule;
}

const pairKey = (iface: string, ip: IpAddress): string => `${iface}|${ipKey(ip)}`;

export async function createAnnouncer(options: AnnouncerOptions): Promise<Result<Announcer, NetError>> {
  const access = (options.transport ?? packetTransport).checkAccess();
  if (!access.ok) return access;
  const scan = options.scan ?? scanInterfaces;
  let snapshot: InterfaceSnapshot;
  try {
    snapshot = await scan();
  } catch (e: unknown) {
    return err({
      code: NetCodes.scanFailed,
      message: `listing interfaces: ${e instanceof Error ? e.message : String(e)}`,
    });
  }
  return ok(new Layer2Announcer(options, scan, snapshot));
}

class Layer2Announcer implements Announcer {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly transport: Transport;
  private readonly links = new Map<string, Link>();
  private readonly owned = new Map<string, Owned>();
  private readonly bursts = new Map<string, Burst>();
  private readonly counters = new Map<string, { -readonly [K in keyof Layer2Counters]: Layer2Counters[K] }>();
  private readonly drops = new Map<string, { interface: string; reason: string; count: number }>();
  private readonly watch: InterfaceWatch | undefined;
  /** The claims, by IP key (one per IP; the speaker groups Services sharing an IP). */
  private claims = new Map<string, Claim>();
  /** Claims answered on no interface, by IP key. */
  private unannounced = new Map<string, ReconcileReport["unannounced"][number]>();
  /** The last apply()'s choices and the snapshot they were made for: an unchanged claim is not worked out again. */
  private choices = new Map<string, Choice>();
  private choicesFor: InterfaceSnapshot | undefined;
  private closed = false;

  private readonly scan: () => Promise<InterfaceSnapshot>;
  private snapshot: InterfaceSnapshot;

  constructor(options: AnnouncerOptions, scan: () => Promise<InterfaceSnapshot>, snapshot: InterfaceSnapshot) {
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.transport = options.transport ?? packetTransport;
    this.scan = scan;
    this.snapshot = snapshot;
    this.watch = options.watch === false ? undefined : watchInterfaces(() => void this.rescan(), this.log);
  }

  reconcile(claims: readonly Claim[]): ReconcileReport {
    if (this.closed) return { announced: [], unannounced: [] };
    const byKey = new Map<string, Claim>();
    for (const c of claims) {
      const k = ipKey(c.ip);
      if (!byKey.has(k)) byKey.set(k, c);
    }
    this.claims = byKey;
    return this.apply();
  }

  update(upserts: readonly Claim[], removes: readonly string[]): Pick<ReconcileReport, "unannounced"> {
    if (this.closed) return { unannounced: [] };
    const touched = new Set<string>(removes);
    for (const k of removes) this.claims.delete(k);
    for (const c of upserts) {
      const k = ipKey(c.ip);
      this.claims.set(k, c);
      touched.add(k);
    }
    // Another interface snapshot since the last full pass: every choice may differ.
    if (this.choicesFor !== this.snapshot) return { unannounced: this.apply().unannounced };
    const changes = { claimed: 0, released: 0 };
    const fresh: Choice[] = [];
    for (const key of touched) {
      const claim = this.claims.get(key);
      const before = this.choices.get(key);
      const choice = claim === undefined ? undefined : this.reuseOrChoose(claim, before);
      if (choice === undefined) this.choices.delete(key);
      else {
        this.choices.set(key, choice);
        if (choice !== before) fresh.push(choice);
      }
      this.own(key, choice, changes, touched.size);
    }
    if (this.owned.size === 0) for (const name of [...this.links.keys()]) this.closeLink(name);
    if (changes.claimed > LOGGED_PER_IP || changes.released > LOGGED_PER_IP)
      this.log.info(changes, "ownership changed");
    this.warnUnannounced(fresh);
    return { unannounced: [...this.unannounced.values()] };
  }

  announceNow(ip: IpAddress, options: { readonly once?: boolean } = {}): boolean {
    const o = this.owned.get(ipKey(ip));
    if (o === undefined) return false;
    for (const iface of o.interfaces) {
      if (options.once === true) this.sendRound(iface, ip);
      else this.startBurst(iface, o.claim);
    }
    return true;
  }

  telemetry(): Pick<TelemetrySnapshot, "layer2" | "layer2Drops"> {
    for (const link of this.links.values()) {
      const { drops } = link.socket.kernelStats();
      if (drops > 0) this.drop(link.name, DropReason.QueueOverflow, drops);
    }
    return {
      layer2: [...this.counters.values()].map((c) => ({ ...c })),
      layer2Drops: [...this.drops.values()].map((d) => ({ ...d })),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    for (const b of this.bursts.values()) clearTimeout(b.timer);
    this.bursts.clear();
    if (this.groupDrain !== undefined) clearImmediate(this.groupDrain);
    this.owned.clear();
    for (const name of [...this.links.keys()]) this.closeLink(name);
  }

  /**
   * Brings sockets, ownership and bursts in line with `this.claims` and the latest interface snapshot. With the
   * snapshot unchanged, a claim the speaker passes again as the same object keeps its choice: a reconcile of
   * 10,000 claims costs the ones that changed plus a look-up each.
   */
  private apply(): ReconcileReport {
    const announced: ReconcileReport["announced"][number][] = [];
    const wanted = new Map<string, Choice>();
    const reuse = this.choicesFor === this.snapshot;
    const fresh: Choice[] = [];
    for (const [key, claim] of this.claims) {
      const before = reuse ? this.choices.get(key) : undefined;
      const choice = this.reuseOrChoose(claim, before);
      if (choice !== before) fresh.push(choice);
      wanted.set(key, choice);
      if (choice.announced !== undefined) announced.push(choice.announced);
    }
    this.choices = wanted;
    this.choicesFor = this.snapshot;
    const changes = { claimed: 0, released: 0 };
    const keys = new Set([...this.owned.keys(), ...wanted.keys()]);
    for (const key of keys) this.own(key, wanted.get(key), changes, keys.size);
    if (changes.claimed > LOGGED_PER_IP || changes.released > LOGGED_PER_IP)
      this.log.info(changes, "ownership changed");
    const used = new Set<string>();
    for (const o of this.owned.values()) for (const name of o.interfaces) used.add(name);
    for (const name of [...this.links.keys()]) if (!used.has(name)) this.closeLink(name);
    this.warnUnannounced(fresh);
    return { announced, unannounced: [...this.unannounced.values()] };
  }

  private reuseOrChoose(claim: Claim, before: Choice | undefined): Choice {
    if (before === undefined || before.claim !== claim) return this.choose(claim);
    for (const n of before.interfaces) if (!this.links.has(n)) return this.choose(claim);
    return before;
  }

  /**
   * One IP's ownership brought in line with its choice (undefined: no longer claimed): releases first, so an IP
   * moving between interfaces is never answered twice; then gains, each with its group and burst.
   */
  private own(
    key: string,
    choice: Choice | undefined,
    changes: { claimed: number; released: number },
    total: number,
  ): void {
    const changeLog = (what: "claimed" | "released", ip: IpAddress, iface: string, owner: string) => {
      changes[what]++;
      const line = { ip: formatIp(ip), interface: iface, key: owner };
      if (total <= LOGGED_PER_IP) this.log.info(line, what);
      else this.log.debug(line, what);
    };
    if (choice?.unannounced === undefined) this.unannounced.delete(key);
    else this.unannounced.set(key, choice.unannounced);
    let o = this.owned.get(key);
    if (o !== undefined) {
      for (const iface of [...o.interfaces]) {
        if (choice?.interfaces.has(iface) === true) continue;
        o.interfaces.delete(iface);
        this.stopBurst(iface, o.claim.ip);
        this.leaveGroup(iface, o.claim.ip);
        // Per-IP counters live while the IP is owned here, so a node's series stay bounded by what it announces.
        this.counters.delete(pairKey(iface, o.claim.ip));
        changeLog("released", o.claim.ip, iface, o.claim.key);
      }
      if (choice === undefined) {
        this.owned.delete(key);
        return;
      }
    }
    if (choice === undefined) return;
    if (o === undefined) {
      o = { claim: choice.claim, interfaces: new Set() };
      this.owned.set(key, o);
    } else if (o.claim !== choice.claim) {
      this.owned.set(key, (o = { claim: choice.claim, interfaces: o.interfaces }));
      for (const iface of o.interfaces) {
        const b = this.bursts.get(pairKey(iface, choice.claim.ip));
        if (b !== undefined) b.schedule = choice.claim.gratuitous;
      }
    }
    for (const iface of choice.interfaces) {
      if (o.interfaces.has(iface)) continue;
      o.interfaces.add(iface);
      this.joinGroup(iface, o.claim.ip);
      changeLog("claimed", o.claim.ip, iface, o.claim.key);
      this.startBurst(iface, o.claim);
    }
  }

  private warnUnannounced(fresh: readonly Choice[]): void {
    for (const c of fresh) {
      const u = c.unannounced;
      if (u !== undefined) this.log.warn({ code: u.error.code, ip: formatIp(u.ip) }, u.error.message);
    }
  }

  /** Where one claim is answered: the interfaces by the announcer's rule, each with its socket open. */
  private choose(claim: Claim): Choice {
    const choice = interfacesFor(claim.ip, this.snapshot, claim.interfaces);
    const interfaces = new Set<string>();
    const problems: string[] = choice.skipped.map((s) => `${s.name}: ${s.reason}`);
    for (const name of choice.interfaces) {
      const link = this.ensureLink(name);
      if (link.ok) interfaces.add(name);
      else problems.push(link.error.message);
    }
    if (interfaces.size > 0) {
      return {
        claim,
        interfaces,
        announced: { key: claim.key, ip: claim.ip, interfaces: [...interfaces] },
        unannounced: undefined,
      };
    }
    const message =
      `${formatIp(claim.ip)} (${claim.key}) is announced on no interface` +
      (choice.rule === "none" ? ": no interface has a subnet containing it and there is no default route" : "") +
      (problems.length > 0 ? ` (${problems.join("; ")})` : "");
    return {
      claim,
      interfaces,
      announced: undefined,
      unannounced: { key: claim.key, ip: claim.ip, error: { code: NetCodes.interfaceUnusable, message } },
    };
  }

  private async rescan(): Promise<void> {
    let next: InterfaceSnapshot;
    try {
      next = await this.scan();
    } catch (e: unknown) {
      this.log.warn(
        { err: e instanceof Error ? e.message : String(e) },
        "interface rescan failed; keeping the previous view",
      );
      return;
    }
    if (this.closed || sameSnapshot(this.snapshot, next)) return;
    this.snapshot = next;
    this.log.info("interfaces changed; re-evaluating announcements");
    this.apply();
  }

  private ensureLink(name: string): Result<Link, NetError> {
    const iface = this.snapshot.interfaces.find((i) => i.name === name);
    const existing = this.links.get(name);
    if (
      existing !== undefined &&
      iface !== undefined &&
      iface.index === existing.index &&
      iface.mac !== undefined &&
      sameMac(iface.mac, existing.mac)
    ) {
      return ok(existing);
    }
    if (existing !== undefined) this.closeLink(name); // re-created or new MAC: owned IPs re-join and re-announce
    if (iface?.mac === undefined)
      return err({ code: NetCodes.interfaceUnusable, message: `${name}: no such Ethernet interface` });
    const opened = this.transport.open({
      ifindex: iface.index,
      protocol: ETH_P_ALL,
      filter: neighbourSolicitationFilter,
    });
    if (!opened.ok) return err({ code: opened.error.code, message: `${name}: ${opened.error.message}` });
    const link: Link = {
      name,
      index: iface.index,
      mac: iface.mac,
      socket: opened.value,
      listener: this.transport.multicastListener(name),
      groups: new Map(),
      held: new Set(),
      pending: new Map(),
      allMulticast: false,
    };
    link.socket.onFrame((frame) => this.onFrame(link, frame));
    this.links.set(name, link);
    this.log.debug({ interface: name, mac: formatMac(iface.mac) }, "listening for ARP and NDP");
    return ok(link);
  }

  private closeLink(name: string): void {
    const link = this.links.get(name);
    if (link === undefined) return;
    link.socket.close();
    link.listener.close();
    this.links.delete(name);
    for (const o of this.owned.values()) {
      if (o.interfaces.delete(name)) this.stopBurst(name, o.claim.ip);
    }
  }

  private readonly foreignListeners = new Set<(seen: ForeignAnnouncement & { readonly interface: string }) => void>();

  onForeignAnnouncement(listener: (seen: ForeignAnnouncement & { readonly interface: string }) => void): () => void {
    this.foreignListeners.add(listener);
    return () => this.foreignListeners.delete(listener);
  }

  /** Another host's announcement (not one of ours, from any of our links) goes to the listeners. */
  private noticeAnnouncement(link: Link, frame: Uint8Array): void {
    const seen = announcementIn(frame);
    if (seen === undefined) return;
    for (const l of this.links.values()) if (sameMac(l.mac, seen.mac)) return;
    for (const listener of this.foreignListeners) listener({ ...seen, interface: link.name });
  }

  private onFrame(link: Link, frame: Uint8Array): void {
    const ownership = (ip: IpAddress): Ownership => {
      const o = this.owned.get(ipKey(ip));
      return o === undefined ? "none" : o.interfaces.has(link.name) ? "here" : "elsewhere";
    };
    const decision = respond(frame, { name: link.name, mac: link.mac, ownership });
    if (decision.kind === "drop") {
      this.drop(link.name, decision.reason);
      // Announcements are among the frames not answered; only those are decoded a second time, and only when
      // someone listens (the speaker's hand-off and defence).
      if (
        this.foreignListeners.size > 0 &&
        (decision.reason === DropReason.Gratuitous || decision.reason === DropReason.NotRequest)
      ) {
        this.noticeAnnouncement(link, frame);
      }
      return;
    }
    const c = this.counter(link.name, decision.ip);
    c.requests++;
    const sent = link.socket.send(decision.frame);
    if (sent.ok) c.replies++;
    else {
      this.drop(link.name, DropReason.SendFailed);
      this.log.debug({ interface: link.name, err: sent.error.message }, "reply not sent");
    }
  }

  private startBurst(iface: string, claim: Claim): void {
    this.stopBurst(iface, claim.ip);
    const burst: Burst = { startedAt: this.now(), sent: 0, timer: undefined, schedule: claim.gratuitous };
    this.bursts.set(pairKey(iface, claim.ip), burst);
    this.nextRound(iface, claim.ip, burst);
  }

  private nextRound(iface: string, ip: IpAddress, burst: Burst): void {
    const at = gratuitousRoundAt(burst.schedule, burst.startedAt, burst.sent);
    if (at === undefined) {
      this.bursts.delete(pairKey(iface, ip));
      return;
    }
    const round = (): void => {
      burst.timer = undefined;
      if (this.bursts.get(pairKey(iface, ip)) !== burst) return;
      if (!this.roundFitsThisTurn(burst.sent === 0)) {
        // Thousands of bursts that start together (a takeover) come due together: the rest go in later turns.
        burst.timer = setTimeout(round, 1);
        burst.timer.unref();
        return;
      }
      if (!this.sendRound(iface, ip)) return;
      burst.sent++;
      this.nextRound(iface, ip, burst);
    };
    const delay = at - this.now();
    if (delay <= 0) round();
    else {
      burst.timer = setTimeout(round, delay);
      burst.timer.unref();
    }
  }

  /**
   * Whether one more gratuitous round may go out in this event-loop turn. A send on a packet socket is a system
   * call that runs the frame through the bridge or driver at once (a profile of a node taking over 3,000 IPs in the
   * lab: 54% of its time in send(), in turns of seconds, its heartbeats unread): at most ROUNDS_PER_TURN per turn.
   */
  private roundFitsThisTurn(first: boolean): boolean {
    if (this.turnReset === undefined) {
      this.turnStartedAt = performance.now();
      this.turnReset = setImmediate(() => {
        this.roundsThisTurn = 0;
        this.turnReset = undefined;
      });
      this.turnReset.unref();
    }
    // Also bounded in time: where a send is slow (a loaded bridge), 200 of them would still make a long turn. A
    // burst's first round moves clients to this node (a takeover), so it gets more of the turn than a repeat.
    const budget = first ? FIRST_ROUNDS_MS_PER_TURN : SENDING_MS_PER_TURN;
    return this.roundsThisTurn++ < ROUNDS_PER_TURN && performance.now() - this.turnStartedAt < budget;
  }
  private turnStartedAt = 0;
  private roundsThisTurn = 0;
  private turnReset: NodeJS.Immediate | undefined;

  /** One gratuitous round (ARP request + reply, or one unsolicited NA) on a link; false without the link. */
  private sendRound(iface: string, ip: IpAddress): boolean {
    const link = this.links.get(iface);
    if (link === undefined) return false;
    for (const frame of gratuitousFrames(ip, link.mac)) {
      const sent = link.socket.send(frame);
      if (sent.ok) this.counter(iface, ip).gratuitous++;
      else this.log.warn({ interface: iface, ip: formatIp(ip), err: sent.error.message }, "gratuitous frame not sent");
    }
    return true;
  }

  private stopBurst(iface: string, ip: IpAddress): void {
    const key = pairKey(iface, ip);
    clearTimeout(this.bursts.get(key)?.timer);
    this.bursts.delete(key);
  }

  /**
   * RFC 4861 §7.2.1: a node joins the solicited-node group of each of its addresses, so NSs for the VIP reach us.
   * The packet socket takes every multicast frame (one PACKET_MR_ALLMULTI, not one membership per group: those
   * sit in lists the kernel walks on every join), and its filter keeps only NDP. The kernel's IPv6 membership of
   * each group makes it send MLD reports (RFC 3810), without which a switch snooping MLD may not forward the NSs to
   * this port; those joins catch up a few per turn (drainGroups). Each works without the other, so a failure of
   * either is logged and the other kept.
   */
  private joinGroup(iface: string, ip: IpAddress): void {
    const link = this.links.get(iface);
    if (ip.family !== 6 || link === undefined) return;
    if (!link.allMulticast) {
      link.allMulticast = true;
      const all = link.socket.allMulticast(true);
      if (!all.ok) this.log.warn({ interface: iface, err: all.error.message }, "all-multicast reception not set");
    }
    const group = solicitedNodeAddress(ip);
    const key = formatIp(group);
    const count = link.groups.get(key) ?? 0;
    link.groups.set(key, count + 1);
    if (count === 0) this.groupChanged(link, key, group);
  }

  private leaveGroup(iface: string, ip: IpAddress): void {
    const link = this.links.get(iface);
    if (ip.family !== 6 || link === undefined) return;
    const group = solicitedNodeAddress(ip);
    const key = formatIp(group);
    const count = (link.groups.get(key) ?? 0) - 1;
    if (count > 0) {
      link.groups.set(key, count);
      return;
    }
    link.groups.delete(key);
    this.groupChanged(link, key, group);
  }

  private groupChanged(link: Link, key: string, group: IpAddress): void {
    link.pending.set(key, group);
    if (this.groupDrain === undefined) {
      this.groupDrain = setImmediate(() => this.drainGroups());
      this.groupDrain.unref();
    }
  }
  private groupDrain: NodeJS.Immediate | undefined;

  /** Brings the kernel's memberships in line with the wanted groups, GROUP_OPS_PER_TURN at a time. */
  private drainGroups(): void {
    this.groupDrain = undefined;
    if (this.closed) return;
    let budget = GROUP_OPS_PER_TURN;
    for (const link of this.links.values()) {
      for (const [key, group] of link.pending) {
        if (budget <= 0) break;
        link.pending.delete(key);
        const want = link.groups.has(key);
        if (want === link.held.has(key)) continue;
        budget--;
        if (want) {
          link.held.add(key);
          const joined = link.listener.join(group);
          if (!joined.ok)
            this.log.warn({ interface: link.name, group: key, err: joined.error.message }, "MLD join failed");
        } else {
          link.held.delete(key);
          const left = link.listener.leave(group);
          if (!left.ok)
            this.log.warn({ interface: link.name, group: key, err: left.error.message }, "MLD leave failed");
        }
      }
    }
    for (const link of this.links.values()) {
      if (link.pending.size > 0) {
        this.groupDrain = setImmediate(() => this.drainGroups());
        this.groupDrain.unref();
        return;
      }
    }
  }

  private counter(iface: string, ip: IpAddress): { -readonly [K in keyof Layer2Counters]: Layer2Counters[K] } {
    const key = pairKey(iface, ip);
    let c = this.counters.get(key);
    if (c === undefined) {
      c = { interface: iface, ip: formatIp(ip), requests: 0, replies: 0, gratuitous: 0 };
      this.counters.set(key, c);
    }
    return c;
  }

  private drop(iface: string, reason: DropReason, count = 1): void {
    const key = `${iface}|${reason}`;
    const d = this.drops.get(key);
    if (d === undefined) this.drops.set(key, { interface: iface, reason, count });
    else d.count += count;
  }
}

function sameInterface(a: NetInterface, b: NetInterface): boolean {
  return (
    a.name === b.name &&
    a.index === b.index &&
    a.up === b.up &&
    a.noarp === b.noarp &&
    a.master === b.master &&
    (a.mac === undefined ? b.mac === undefined : b.mac !== undefined && sameMac(a.mac, b.mac)) &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every(
      (x, i) => x.ip.value === b.addresses[i]?.ip.value && x.prefixLength === b.addresses[i]?.prefixLength,
    )
  );
}

function sameSnapshot(a: InterfaceSnapshot, b: InterfaceSnapshot): boolean {
  return (
    a.defaultRoute[4] === b.defaultRoute[4] &&
    a.defaultRoute[6] === b.defaultRoute[6] &&
    a.interfaces.length === b.interfaces.length &&
    a.interfaces.every((x, i) => {
      const y = b.interfaces[i];
      return y !== undefined && sameInterface(x, y);
    })
  );
}
