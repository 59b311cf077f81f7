import { type IpAddress } from "./ip.ts";
import { gratuitousArpFrames } from "./frames/arp.ts";
import { padFrame, type Mac } from "./frames/ethernet.ts";
import { unsolicitedAdvertisement } from "./frames/ndp.ts";

/**
 * When to announce an IP after taking it over: `count` rounds, the first at once, then every `intervalMs`
 * (default 1100 ms: Linux ignores a second ARP update for an entry within its 1 s `locktime`), then, when
 * `refreshSeconds` is set, one round every `refreshSeconds` for as long as the IP is held (switch MAC tables
 * age out after ~300 s of silence).
 */
export interface GratuitousSchedule {
  readonly intervalMs: number;
  readonly count: number;
  readonly refreshSeconds?: number | undefined;
}

export const defaultGratuitous: GratuitousSchedule = Object.freeze({ intervalMs: 1100, count: 5 });

/**
 * The time of round number `sent` (0-based) of a burst started at `startedAtMs`, or undefined when the schedule
 * is done. Pure data over injected time: the announcer's timer asks this after each round.
 */
export function gratuitousRoundAt(schedule: GratuitousSchedule, startedAtMs: number, sent: number): number | undefined {
  const count = Math.max(0, Math.floor(schedule.count));
  if (sent < count) return startedAtMs + sent * schedule.intervalMs;
  const refresh = schedule.refreshSeconds;
  if (refresh === undefined || refresh <= 0) return undefined;
  const burstEnd = startedAtMs + Math.max(0, count - 1) * schedule.intervalMs;
  return burstEnd + (sent - count + 1) * refresh * 1000;
}

/** The frames of one gratuitous round: ARP request + ARP reply for IPv4, one unsolicited NA for IPv6. */
export function gratuitousFrames(ip: IpAddress, mac: Mac): readonly Uint8Array[] {
  return ip.family === 4 ? gratuitousArpFrames(ip, mac).map(padFrame) : [unsolicitedAdvertisement(ip, mac)];
}
