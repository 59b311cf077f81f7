// Runs the announcer library inside a lab namespace (started with `ip netns exec`), driven by JSON lines on
// stdin, answering with JSON lines on stdout. Lets lab tests exercise reconcile/release/announceNow/telemetry
// on real interfaces while the test process itself stays in the machine's namespace.
import { createInterface } from "node:readline";
import { pino } from "pino";
import { formatIp, parseIp } from "../../src/core/ip.ts";
import { createAnnouncer, type Claim } from "../../src/net/announcer.ts";

interface WireClaim {
  key: string;
  ip: string;
  interfaces?: string[];
  gratuitous: { intervalMs: number; count: number; refreshSeconds?: number };
}
type Command =
  { op: "reconcile"; claims: WireClaim[] } | { op: "announceNow"; ip: string } | { op: "telemetry" } | { op: "close" };

const say = (msg: unknown): void => void process.stdout.write(JSON.stringify(msg) + "\n");
const created = await createAnnouncer({
  logger: pino({ level: process.env["LOG_LEVEL"] ?? "warn" }, pino.destination(2)),
});
if (!created.ok) {
  say({ op: "error", error: created.error });
  process.exit(1);
}
const announcer = created.value;
say({ op: "ready" });
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as Command;
  if (cmd.op === "reconcile") {
    const claims: Claim[] = cmd.claims.map((c) => ({ ...c, ip: parseIp(c.ip)! }));
    const report = announcer.reconcile(claims);
    say({
      op: "reconciled",
      at: Date.now(),
      announced: report.announced.map((a) => ({ ip: formatIp(a.ip), interfaces: a.interfaces })),
      unannounced: report.unannounced.map((u) => ({
        ip: formatIp(u.ip),
        code: u.error.code,
        message: u.error.message,
      })),
    });
  } else if (cmd.op === "announceNow") {
    say({ op: "announced", owned: announcer.announceNow(parseIp(cmd.ip)!) });
  } else if (cmd.op === "telemetry") {
    say({ op: "telemetry", ...announcer.telemetry() });
  } else {
    await announcer.close();
    say({ op: "closed" });
    process.exit(0);
  }
}
