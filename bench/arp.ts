// bench:arp: how fast the announcer answers ARP under a flood. A bridge with an announcer namespace (running
// `lodestone announce` for 1,000 IPs: 650 IPv4 + 350 IPv6) and a client namespace sending 5,000 ARP requests/s
// for 10 s (50,000, bounded) for the 650 IPv4 ones. Latency is measured twice: by the sender (request sent ->
// reply read, includes the client's own event loop) and on the wire (tcpdump timestamps at the client's veth).
// Announcer CPU from /proc/<pid>/stat over the flood. Root only; documentation addresses only.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createLab, labUnavailable } from "../src/lab/netns.ts";
import { removeCapture, startCapture, tsharkFields } from "../test/lab/helpers.ts";

const RATE = 5000;
const SECONDS = 10;
const skip = labUnavailable(["tcpdump", "tshark"]);
if (skip !== undefined) {
  console.error(`bench:arp: ${skip}`);
  process.exit(1);
}

const v4 = [
  ...Array.from({ length: 250 }, (_, i) => `198.51.100.${i + 1}`),
  ...Array.from({ length: 250 }, (_, i) => `203.0.113.${i + 1}`),
  ...Array.from({ length: 150 }, (_, i) => `192.0.2.${i + 100}`),
];
const v6 = Array.from({ length: 350 }, (_, i) => `2001:db8::1:${(i + 1).toString(16)}`);

const cpuTicks = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, fields 14 and 15 of proc(5)
};
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

const lab = createLab("netbench");
try {
  const ann = await lab.host("ann", { addresses: ["192.0.2.1/24", "2001:db8::1/64"], mac: "02:00:00:00:0a:01" });
  const client = await lab.host("client", { addresses: ["192.0.2.10/24"], mac: "02:00:00:00:0c:10" });
  // --realtime: run the announcer under SCHED_FIFO (chrt), i.e. as if it had a core to itself; on a shared,
  // overloaded machine the tail latency is otherwise the scheduler's, not the announcer's.
  const realtime = process.argv.includes("--realtime") ? ["chrt", "-f", "10"] : [];
  const announcer = lab.spawn(ann.ns, [
    ...realtime,
    process.execPath,
    "bin/lodestone.js",
    "announce",
    "--interface",
    "eth0",
    "--count",
    "1",
    "--log-level",
    "warn",
    ...v4,
    ...v6,
  ]);
  let out = "";
  announcer.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  announcer.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
  const deadline = Date.now() + 15_000;
  while ((out.match(/^announcing /gm) ?? []).length < v4.length + v6.length) {
    if (Date.now() > deadline || announcer.exitCode !== null) throw new Error(`announcer did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 1000)); // let the takeover burst (2,000 frames) pass

  const capture = await startCapture(lab, client.ns, "eth0", "arp");
  const cpuBefore = cpuTicks(announcer.pid!);
  const t0 = Date.now();
  const flood = await lab.exec(
    client.ns,
    [
      process.execPath,
      "bench/arp-flood.ts",
      String(client.ifindex),
      client.mac,
      "192.0.2.10",
      String(RATE),
      String(SECONDS),
      ...v4,
    ],
    { timeoutMs: (SECONDS + 20) * 1000 },
  );
  const elapsed = (Date.now() - t0) / 1000;
  const cpuPercent = ((cpuTicks(announcer.pid!) - cpuBefore) / clockTicks / elapsed) * 100;
  const file = await capture.stop();
  if (flood.code !== 0) throw new Error(`flood failed: ${flood.stdout} ${flood.stderr}`);
  const client_ = JSON.parse(flood.stdout.trim().split("\n").at(-1)!) as Record<string, number>;

  // Wire latency: each reply against the latest request for the same IP, both as seen at the client's veth.
  const rows = tsharkFields(file, "arp", [
    "frame.time_epoch",
    "arp.opcode",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
  ]);
  removeCapture(file);
  const lastRequest = new Map<string, number>();
  const wire: number[] = [];
  for (const [time, op, src, dst] of rows) {
    if (op === "1") lastRequest.set(dst!, Number(time));
    else if (op === "2" && lastRequest.has(src!)) {
      wire.push((Number(time) - lastRequest.get(src!)!) * 1000);
      lastRequest.delete(src!);
    }
  }
  wire.sort((a, b) => a - b);
  const q = (p: number): number =>
    Number((wire[Math.min(wire.length - 1, Math.floor(p * wire.length))] ?? NaN).toFixed(3));

  announcer.kill("SIGTERM");
  await new Promise((r) => announcer.once("exit", r));
  const result = {
    realtime: realtime.length > 0,
    owned_ips: v4.length + v6.length,
    requests_sent: client_["sent"],
    replies: client_["replies"],
    unanswered: client_["unanswered"],
    rate_per_s: RATE,
    // The announcer's reply latency as its neighbours see it: on the wire, at the client's link.
    arp_reply_p50_ms: q(0.5),
    arp_reply_p99_ms: q(0.99),
    // The same seen by the sending process: adds the client's own scheduling delays.
    arp_reply_client_p50_ms: Number(client_["p50"]!.toFixed(3)),
    arp_reply_client_p99_ms: Number(client_["p99"]!.toFixed(3)),
    announcer_cpu_percent: Number(cpuPercent.toFixed(1)),
  };
  console.log(
    `announcer: ${result.owned_ips} owned IPs; ${out.split("\n").find((l) => l.includes(v4[0]!) && l.includes("requests")) ?? ""}`,
  );
  console.log(
    `flood: ${result.requests_sent} ARP requests at ${RATE}/s, ${result.replies} replies, ${result.unanswered} unanswered`,
  );
  console.log(
    `reply latency on the wire (tcpdump at the client): p50 ${result.arp_reply_p50_ms} ms, p99 ${result.arp_reply_p99_ms} ms`,
  );
  console.log(
    `reply latency seen by the sender process: p50 ${result.arp_reply_client_p50_ms} ms, p99 ${result.arp_reply_client_p99_ms} ms`,
  );
  const load = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  console.log(
    `announcer CPU: ${result.announcer_cpu_percent}% of one core; machine load ${load} (shared cores: noisy)`,
  );
  console.log(JSON.stringify(result));
} finally {
  await lab.destroy();
}
