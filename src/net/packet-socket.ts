import { createRequire } from "node:module";
import { endianness } from "node:os";
import { err, NetCodes, ok, type NetError, type Result } from "../core/errors.ts";

/**
 * AF_PACKET sockets through Lodestone's own N-API addon (native/packet_socket.c). One transport for both ARP and
 * NDP: ARP needs a link-layer socket anyway, and sending NAs the same way lets us choose the exact frame
 * (source address, hop limit 255, target link-layer option) without an AF_INET6 raw socket per interface.
 */

interface Native {
  open(ifindex: number, protocol: number, filter: Buffer | null): unknown;
  send(handle: unknown, frame: Uint8Array): number;
  start(handle: unknown, callback: (error: Error | null, frame?: Buffer) => void): void;
  stop(handle: unknown): void;
  membership(handle: unknown, add: boolean, type: number, mac: Buffer | null): void;
  stats(handle: unknown): { packets: number; drops: number };
  close(handle: unknown): void;
}

export const ETH_P_ALL = 0x0003;
const PACKET_MR_MULTICAST = 0;
const PACKET_MR_ALLMULTI = 2;

let native: Result<Native, NetError> | undefined;

function loadNative(): Result<Native, NetError> {
  if (native !== undefined) return native;
  try {
    native = ok(createRequire(import.meta.url)("../../build/Release/lodestone_packet.node") as Native);
  } catch (e: unknown) {
    native = err({
      code: NetCodes.addonMissing,
      message:
        `the AF_PACKET addon is not built (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); ` +
        "build it with `node scripts/build-native.js` (needs python3, make and a C compiler)",
    });
  }
  return native;
}

function socketError(e: unknown, what: string): NetError {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  const detail = e instanceof Error ? e.message : String(e);
  if (code === "EPERM" || code === "EACCES") {
    return {
      code: NetCodes.permission,
      message: `${what}: ${detail}; raw link-layer sockets need CAP_NET_RAW (run as root or add the NET_RAW capability)`,
    };
  }
  if (code === "ENODEV" || code === "ENXIO" || code === "ENETDOWN") {
    return { code: NetCodes.interfaceUnusable, message: `${what}: ${detail}` };
  }
  return { code: NetCodes.socket, message: `${what}: ${detail}` };
}

export interface PacketSocket {
  /** Sends one complete Ethernet frame; an error (e.g. ENOBUFS under a flood) is returned, never thrown. */
  send(frame: Uint8Array): Result<number, NetError>;
  /** Receives frames (never our own transmissions) until close(). */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /** Joins (or leaves) a link-layer multicast group, e.g. 33:33:ff:xx:xx:xx for an IPv6 solicited-node group. */
  multicast(mac: Uint8Array, join: boolean): Result<void, NetError>;
  allMulticast(join: boolean): Result<void, NetError>;
  /** Frames the kernel delivered and dropped (receive queue full) since the previous call. */
  kernelStats(): { readonly packets: number; readonly drops: number };
  close(): void;
}

export interface OpenOptions {
  readonly ifindex: number;
  readonly protocol: number;
  /** Classic BPF program, see bpf.ts; attached before the socket is bound, so nothing unfiltered is queued. */
  readonly filter?: Uint8Array;
}

export function openPacketSocket(options: OpenOptions): Result<PacketSocket, NetError> {
  const loaded = loadNative();
  if (!loaded.ok) return loaded;
  const n = loaded.value;
  let handle: unknown;
  try {
    const filter = options.filter === undefined ? null : Buffer.from(options.filter);
    handle = n.open(options.ifindex, options.protocol, filter);
  } catch (e: unknown) {
    return err(socketError(e, `opening a packet socket on interface #${options.ifindex}`));
  }
  let closed = false;
  return ok({
    send(frame) {
      try {
        return ok(n.send(handle, frame));
      } catch (e: unknown) {
        return err(socketError(e, "sending a frame"));
      }
    },
    onFrame(handler) {
      n.start(handle, (error, frame) => {
        if (error === null && frame !== undefined) handler(frame);
      });
    },
    multicast(mac, join) {
      try {
        n.membership(handle, join, PACKET_MR_MULTICAST, Buffer.from(mac));
        return ok(undefined);
      } catch (e: unknown) {
        return err(socketError(e, `${join ? "joining" : "leaving"} a multicast group`));
      }
    },
    allMulticast(join) {
      try {
        n.membership(handle, join, PACKET_MR_ALLMULTI, null);
        return ok(undefined);
      } catch (e: unknown) {
        return err(socketError(e, "setting all-multicast"));
      }
    },
    kernelStats() {
      return closed ? { packets: 0, drops: 0 } : n.stats(handle);
    },
    close() {
      if (closed) return;
      closed = true;
      n.close(handle);
    },
  });
}

/** Whether this process may open AF_PACKET sockets at all (CAP_NET_RAW), checked on loopback without binding a protocol. */
export function checkPacketAccess(): Result<void, NetError> {
  const s = openPacketSocket({ ifindex: 1, protocol: 0 });
  if (!s.ok) return s;
  s.value.close();
  return ok(undefined);
}

/** Classic BPF instructions (struct sock_filter, host byte order). */
export interface BpfInstruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

export function assembleBpf(program: readonly BpfInstruction[]): Uint8Array {
  const out = new Uint8Array(program.length * 8);
  const view = new DataView(out.buffer);
  const le = endianness() === "LE";
  program.forEach((ins, i) => {
    view.setUint16(i * 8, ins.code, le);
    view.setUint8(i * 8 + 2, ins.jt);
    view.setUint8(i * 8 + 3, ins.jf);
    view.setUint32(i * 8 + 4, ins.k, le);
  });
  return out;
}

const LDH_ABS = 0x28;
const LDB_ABS = 0x30;
const JEQ_K = 0x15;
const RET_K = 0x06;

/**
 * The kernel-side filter of the announcer's sockets: ARP frames, and IPv6 frames whose next header is ICMPv6
 * (58) with type Neighbor Solicitation (135, the questions it answers) or Neighbor Advertisement (136, how a
 * leaving speaker sees its successor take over). Everything else on the wire never wakes the process. NDP
 * frames with extension headers are not expected (RFC 4861 messages carry none) and are filtered out.
 */
export const neighbourSolicitationFilter: Uint8Array = assembleBpf([
  { code: LDH_ABS, jt: 0, jf: 0, k: 12 }, // 0 EtherType
  { code: JEQ_K, jt: 6, jf: 0, k: 0x0806 }, // 1 ARP -> accept
  { code: JEQ_K, jt: 0, jf: 6, k: 0x86dd }, // 2 not IPv6 -> drop
  { code: LDB_ABS, jt: 0, jf: 0, k: 20 }, // 3 IPv6 next header
  { code: JEQ_K, jt: 0, jf: 4, k: 58 }, // 4 not ICMPv6 -> drop
  { code: LDB_ABS, jt: 0, jf: 0, k: 54 }, // 5 ICMPv6 type
  { code: JEQ_K, jt: 1, jf: 0, k: 135 }, // 6 NS -> accept
  { code: JEQ_K, jt: 0, jf: 1, k: 136 }, // 7 not NA -> drop
  { code: RET_K, jt: 0, jf: 0, k: 0xffff }, // 8 accept
  { code: RET_K, jt: 0, jf: 0, k: 0 }, // 9 drop
]);
