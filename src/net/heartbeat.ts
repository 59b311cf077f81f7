import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "pino";
import {
  type Heartbeat,
  type HeartbeatDecodeError,
  type HeartbeatKey,
  decodeHeartbeat,
  encodeHeartbeat,
} from "../core/heartbeat-codec.ts";
import { type IpAddress, formatIp } from "../core/ip.ts";

/** The speakers' default heartbeat port (UDP, host network), next to MetalLB's memberlist 7946. */
export const DEFAULT_HEARTBEAT_PORT = 7947;

export interface HeartbeatPeer {
  readonly node: string;
  readonly address: IpAddress;
  readonly port: number;
}

export interface HeartbeatTransportOptions {
  /** The node's own address (its InternalIP): heartbeats leave from and arrive at it, never 0.0.0.0. */
  readonly address: IpAddress;
  /** 0 = ephemeral (tests). */
  readonly port: number;
  readonly logger: Logger;
  /** The keys currently accepted; the first one signs. Read on every datagram, so a rotated Secret applies at once. */
  readonly keys: () => readonly HeartbeatKey[];
  readonly onHeartbeat: (hb: Heartbeat, from: { readonly address: string; readonly port: number }) => void;
}

export interface HeartbeatTransport {
  readonly port: number;
  /** Signs and sends one heartbeat to every peer; send errors are counted, never thrown (a peer may be gone). */
  /** `fenceAtMs` (performance.now() basis): when this node fences itself unless it renews; for the wire thread. */
  send(hb: Heartbeat, peers: readonly HeartbeatPeer[], fenceAtMs?: number): void;
  /** Datagrams refused before reaching the membership, by reason. */
  rejected(): Readonly<Record<HeartbeatDecodeError | "send-error", number>>;
  close(): Promise<void>;
}

export type HeartbeatError = { readonly code: "LODESTONE_E_HEARTBEAT_BIND"; readonly message: string };

export async function createHeartbeatTransport(
  opts: HeartbeatTransportOptions,
): Promise<{ ok: true; value: HeartbeatTransport } | { ok: false; error: HeartbeatError }> {
  const host = formatIp(opts.address);
  const socket: Socket = createSocket({ type: opts.address.family === 4 ? "udp4" : "udp6", reuseAddr: false });
  const counts = { malformed: 0, "unknown-key": 0, "bad-mac": 0, "send-error": 0 };
  let lastWarn = 0;
  socket.on("message", (msg, rinfo) => {
    const r = decodeHeartbeat(msg, opts.keys());
    if (r.ok) {
      opts.onHeartbeat(r.value, { address: rinfo.address, port: rinfo.port });
      return;
    }
    counts[r.error]++;
    // A forged or misconfigured sender could flood the log: one line per 10 s at most.
    const now = performance.now();
    if (now - lastWarn > 10_000) {
      lastWarn = now;
      opts.logger.warn({ from: rinfo.address, reason: r.error, counts }, "heartbeat refused");
    }
  });
  const bound = await new Promise<string | undefined>((resolve) => {
    socket.once("error", (err) => resolve(err.message));
    socket.bind({ address: host, port: opts.port, exclusive: true }, () => resolve(undefined));
  });
  if (bound !== undefined) {
    socket.close();
    return {
      ok: false,
      error: { code: "LODESTONE_E_HEARTBEAT_BIND", message: `cannot bind UDP ${host}:${opts.port}: ${bound}` },
    };
  }
  socket.on("error", (err) => opts.logger.warn({ err: err.message }, "heartbeat socket error"));
  const port = socket.address().port;
  return {
    ok: true,
    value: {
      port,
      send(hb, peers) {
        const key = opts.keys()[0];
        if (key === undefined) return;
        const bytes = encodeHeartbeat(hb, key);
        for (const p of peers) {
          if (p.address.family !== opts.address.family || p.port < 1 || p.port > 65535) continue;
          try {
            socket.send(bytes, p.port, formatIp(p.address), (err) => {
              if (err !== null) counts["send-error"]++;
            });
          } catch {
            counts["send-error"]++; // socket already closed (shutdown in progress)
          }
        }
      },
      rejected: () => ({ ...counts }),
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    },
  };
}
