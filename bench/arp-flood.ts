// The client side of bench:arp, run inside the client namespace: sends ARP requests for the given IPs at a fixed
// rate (bounded in count and time), matches each reply to its request, prints one JSON object with latencies.
// Usage: node bench/arp-flood.ts IFINDEX MAC SENDER_IP RATE_PER_S SECONDS IP...
import { arpFrame, ArpOp, decodeArpFrame } from "../src/core/frames/arp.ts";
import { BROADCAST_MAC, padFrame, parseMac } from "../src/core/frames/ethernet.ts";
import { formatIp, ipKey, parseIp } from "../src/core/ip.ts";
import { ETH_P_ALL, openPacketSocket } from "../src/net/packet-socket.ts";
import { assembleBpf } from "../src/net/packet-socket.ts";

const [ifindexText, macText, senderText, rateText, secondsText, ...targetTexts] = process.argv.slice(2);
const mac = parseMac(macText ?? "")!;
const sender = parseIp(senderText ?? "")!;
const rate = Math.min(Number(rateText), 20_000);
const seconds = Math.min(Number(secondsText), 30);
const targets = targetTexts.map((t) => parseIp(t)!);
const frames = targets.map((t) =>
  padFrame(
    arpFrame(
      { op: ArpOp.Request, senderMac: mac, senderIp: sender, targetMac: new Uint8Array(6), targetIp: t },
      BROADCAST_MAC,
    ),
  ),
);

// ARP replies only (EtherType 0x0806, opcode 2), so the flood's own broadcasts never wake us.
const filter = assembleBpf([
  { code: 0x28, jt: 0, jf: 0, k: 12 },
  { code: 0x15, jt: 0, jf: 3, k: 0x0806 },
  { code: 0x28, jt: 0, jf: 0, k: 20 },
  { code: 0x15, jt: 0, jf: 1, k: 2 },
  { code: 0x06, jt: 0, jf: 0, k: 0xffff },
  { code: 0x06, jt: 0, jf: 0, k: 0 },
]);
const opened = openPacketSocket({ ifindex: Number(ifindexText), protocol: ETH_P_ALL, filter });
if (!opened.ok) {
  console.log(JSON.stringify({ error: opened.error }));
  process.exit(1);
}
const socket = opened.value;
const outstanding = new Map<string, bigint>();
const latencies: number[] = [];
let sent = 0;
let sendErrors = 0;
let unanswered = 0;
let unexpected = 0;

socket.onFrame((frame) => {
  const at = process.hrtime.bigint();
  const d = decodeArpFrame(frame);
  if (!d.ok || d.value.op !== ArpOp.Reply) return;
  const key = ipKey(d.value.senderIp);
  const t0 = outstanding.get(key);
  if (t0 === undefined) {
    unexpected++;
    return;
  }
  outstanding.delete(key);
  latencies.push(Number(at - t0) / 1e6);
});

const total = Math.floor(rate * seconds);
const start = process.hrtime.bigint();
const deadline = start + BigInt(seconds * 1e9);
await new Promise<void>((resolve) => {
  const tick = (): void => {
    const now = process.hrtime.bigint();
    const due = Math.min(total, Math.floor((Number(now - start) / 1e9) * rate));
    while (sent < due) {
      const i = sent % frames.length;
      const key = ipKey(targets[i]!);
      if (outstanding.has(key)) unanswered++;
      outstanding.set(key, process.hrtime.bigint());
      if (!socket.send(frames[i]!).ok) sendErrors++;
      sent++;
    }
    if (sent >= total || now >= deadline) resolve();
    else setTimeout(tick, 1);
  };
  tick();
});
await new Promise((r) => setTimeout(r, 200)); // late replies
unanswered += outstanding.size;
socket.close();
latencies.sort((a, b) => a - b);
const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
console.log(
  JSON.stringify({
    sent,
    replies: latencies.length,
    unanswered,
    unexpected,
    sendErrors,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: latencies.at(-1) ?? NaN,
    firstTarget: formatIp(targets[0]!),
  }),
);
