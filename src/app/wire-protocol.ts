import type { Heartbeat, HeartbeatKey } from "../core/heartbeat-codec.ts";
import type { IpAddress } from "../core/ip.ts";
import type { LagHistogram } from "../core/loop-lag.ts";
import type { ForeignAnnouncement } from "../core/responder.ts";
import type { TelemetrySnapshot } from "../core/telemetry.ts";
import type { Claim } from "../net/announcer.ts";
import type { HeartbeatPeer } from "../net/heartbeat.ts";

/**
 * Messages between the speaker (main thread) and its wire thread (src/app/wire-worker.ts), which owns the
 * packet sockets, the ARP/NDP responder, gratuitous bursts and the heartbeats. Plain data only: they cross
 * threads by structured clone.
 */
export interface WireStart {
  readonly address: IpAddress;
  readonly port: number;
  readonly heartbeatIntervalMs: number;
  /** The wire thread withdraws every IP and stops its heartbeats when the main thread is silent this long. */
  readonly mainSilentMs: number;
  readonly logLevel: string;
}

export type ToWire =
  | { readonly type: "keys"; readonly keys: readonly HeartbeatKey[] }
  /** What the heartbeats say from now on; also the main thread's sign of life. */
  | { readonly type: "beat"; readonly hb: Heartbeat; readonly peers: readonly HeartbeatPeer[] }
  | {
      readonly type: "reconcile";
      readonly id: number;
      /** Claims new or changed since the last reconcile, and the IP keys no longer claimed. */
      readonly upserts: readonly Claim[];
      readonly removes: readonly string[];
      /** Start from nothing and beat again: the main thread's answer to "withdrawn". */
      readonly reset: boolean;
    }
  | { readonly type: "announce"; readonly ip: IpAddress; readonly once: boolean }
  | { readonly type: "telemetry" }
  | { readonly type: "close" };

export interface WireTelemetry extends Pick<TelemetrySnapshot, "layer2" | "layer2Drops"> {
  readonly loopLag: LagHistogram;
  readonly heartbeatsRejected: Readonly<Record<string, number>>;
}

export type FromWire =
  | { readonly type: "ready"; readonly port: number }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "log"; readonly line: string }
  | {
      readonly type: "heartbeat";
      readonly hb: Heartbeat;
      /** When the datagram was read, as performance.timeOrigin + performance.now() of the wire thread. */
      readonly at: number;
    }
  | {
      readonly type: "reconciled";
      readonly id: number;
      readonly unannounced: readonly { readonly key: string; readonly ip: IpAddress; readonly message: string }[];
    }
  | { readonly type: "foreign"; readonly seen: readonly (ForeignAnnouncement & { readonly interface: string })[] }
  | { readonly type: "telemetry"; readonly telemetry: WireTelemetry }
  /** The main thread fell silent: every IP was withdrawn and the heartbeats stopped until it speaks again. */
  | { readonly type: "withdrawn"; readonly silentMs: number }
  | { readonly type: "closed" };
