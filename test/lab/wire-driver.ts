// Runs the speaker's wire thread (src/app/wire.ts) inside a lab namespace, driven by JSON lines on stdin: claims
// to announce, and "block N" to hold the main thread in a synchronous loop for N ms, as a long plan or a full
// garbage collection would. Answers with JSON lines on stdout.
import { createInterface } from "node:readline";
import { pino } from "pino";
import { heartbeatKey } from "../../src/core/heartbeat-codec.ts";
import { parseIp } from "../../src/core/ip.ts";
import { startWire } from "../../src/app/wire.ts";

type Command =
  | { op: "claim"; ips: string[] }
  | { op: "beat"; peer: string; port: number }
  | { op: "block"; ms: number }
  | { op: "close" };

const say = (msg: unknown): void => void process.stdout.write(JSON.stringify(msg) + "\n");
const address = parseIp(process.argv[2] ?? "")!;
const started = await startWire({
  address,
  port: 7947,
  heartbeatIntervalMs: 150,
  mainSilentMs: Number(process.argv[3] ?? 5_000),
  logger: pino({ level: "warn" }, pino.destination(2)),
  keys: [heartbeatKey(new Uint8Array(32).fill(7))],
  onHeartbeat: () => undefined,
});
if (!started.ok) {
  say({ op: "error", error: started.error.message });
  process.exit(1);
}
const wire = started.value;
wire.onWithdrawn((silentMs) => say({ op: "withdrawn", silentMs }));
let seq = 0;
let beating: NodeJS.Timeout | undefined;
say({ op: "ready" });
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as Command;
  if (cmd.op === "claim") {
    const r = await wire.announcer.reconcile(
      cmd.ips.map((ip) => ({ key: `lab/${ip}`, ip: parseIp(ip)!, gratuitous: { intervalMs: 1_000, count: 1 } })),
    );
    say({ op: "claimed", unannounced: r.unannounced.length });
  } else if (cmd.op === "beat") {
    // What the speaker does: a heartbeat every interval from the main thread, which the wire thread repeats.
    const peers = [{ node: "observer", address: parseIp(cmd.peer)!, port: cmd.port }];
    const beat = (): void =>
      wire.transport.send(
        { node: "wired", incarnation: 1, seq: ++seq, sentAtMs: Date.now(), kind: "alive", apiOk: true },
        peers,
      );
    beat();
    beating = setInterval(beat, 150);
    say({ op: "beating" });
  } else if (cmd.op === "block") {
    const until = performance.now() + cmd.ms;
    while (performance.now() < until) {
      // A synchronous stretch: nothing else runs on this thread meanwhile.
    }
    say({ op: "unblocked" });
  } else {
    clearInterval(beating);
    await wire.close();
    say({ op: "closed" });
    process.exit(0);
  }
}
