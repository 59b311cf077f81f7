import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * The speakers' heartbeat datagram. Anyone on the LAN can send UDP, so every datagram is authenticated with
 * HMAC-SHA256 under the shared key of the `lodestone-memberlist` Secret; the key id (first 4 bytes of the
 * key's sha256) lets speakers accept the old and the new key while the Secret is rotated. Replays are refused by
 * the membership (incarnation + sequence must grow, timestamp within the allowed clock skew), not here.
 *
 *   0  "LSHB"            magic
 *   4  u8   version (1)
 *   5  u8   kind         1 alive, 2 leaving (graceful shutdown: successors take over at once)
 *   6  u8   flags        bit 0: apiOk (the sender renewed its Lease recently)
 *   7  u8   n            length of the node name (1..253)
 *   8  n    node name    UTF-8
 *   8+n     u64 incarnation (sender's start time, ms since epoch), u64 sequence, u64 sent at (ms since epoch)
 *   32+n    u32 key id
 *   36+n    32 bytes HMAC-SHA256 over bytes 0..36+n
 */
export interface Heartbeat {
  readonly node: string;
  readonly incarnation: number;
  readonly seq: number;
  readonly sentAtMs: number;
  readonly kind: "alive" | "leaving";
  readonly apiOk: boolean;
}

export interface HeartbeatKey {
  readonly id: number;
  readonly secret: Uint8Array;
}

export type HeartbeatDecodeError = "malformed" | "unknown-key" | "bad-mac";

const MAGIC = [0x4c, 0x53, 0x48, 0x42];
const MAC_LEN = 32;

/** A key from the Secret's bytes; the id is derived so that both sides agree without configuration. */
export function heartbeatKey(secret: Uint8Array): HeartbeatKey {
  const digest = createHash("sha256").update(secret).digest();
  return { id: digest.readUInt32BE(0), secret };
}

export function encodeHeartbeat(hb: Heartbeat, key: HeartbeatKey): Uint8Array {
  const name = Buffer.from(hb.node, "utf8");
  if (name.length < 1 || name.length > 253) throw new Error(`node name of ${name.length} bytes`);
  const body = Buffer.alloc(36 + name.length);
  body.set(MAGIC, 0);
  body[4] = 1;
  body[5] = hb.kind === "alive" ? 1 : 2;
  body[6] = hb.apiOk ? 1 : 0;
  body[7] = name.length;
  body.set(name, 8);
  const o = 8 + name.length;
  body.writeBigUInt64BE(BigInt(hb.incarnation), o);
  body.writeBigUInt64BE(BigInt(hb.seq), o + 8);
  body.writeBigUInt64BE(BigInt(hb.sentAtMs), o + 16);
  body.writeUInt32BE(key.id >>> 0, o + 24);
  const mac = createHmac("sha256", key.secret).update(body).digest();
  return Buffer.concat([body, mac]);
}

export type DecodeResult =
  { readonly ok: true; readonly value: Heartbeat } | { readonly ok: false; readonly error: HeartbeatDecodeError };

export function decodeHeartbeat(bytes: Uint8Array, keys: readonly HeartbeatKey[]): DecodeResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 + 36 || MAGIC.some((b, i) => buf[i] !== b) || buf[4] !== 1) return fail("malformed");
  const n = buf[7] ?? 0;
  if (n < 1 || buf.length !== 36 + n + MAC_LEN) return fail("malformed");
  const kindByte = buf[5];
  if (kindByte !== 1 && kindByte !== 2) return fail("malformed");
  const keyId = buf.readUInt32BE(32 + n);
  const key = keys.find((k) => k.id === keyId);
  if (key === undefined) return fail("unknown-key");
  const body = buf.subarray(0, 36 + n);
  const mac = createHmac("sha256", key.secret).update(body).digest();
  if (!timingSafeEqual(mac, buf.subarray(36 + n))) return fail("bad-mac");
  const o = 8 + n;
  return {
    ok: true,
    value: {
      node: buf.toString("utf8", 8, 8 + n),
      incarnation: Number(buf.readBigUInt64BE(o)),
      seq: Number(buf.readBigUInt64BE(o + 8)),
      sentAtMs: Number(buf.readBigUInt64BE(o + 16)),
      kind: kindByte === 1 ? "alive" : "leaving",
      apiOk: ((buf[6] ?? 0) & 1) === 1,
    },
  };
}

const fail = (error: HeartbeatDecodeError): DecodeResult => ({ ok: false, error });
