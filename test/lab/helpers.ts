// Shared by the net lab tests and the ARP bench: drive an announcer inside a namespace, capture frames.
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Lab } from "../../src/lab/netns.ts";

const driverPath = new URL("./announcer-driver.ts", import.meta.url).pathname;

export interface WireClaim {
  readonly key: string;
  readonly ip: string;
  readonly interfaces?: readonly string[];
  readonly gratuitous: { readonly intervalMs: number; readonly count: number; readonly refreshSeconds?: number };
}

export type DriverMessage = { readonly op: string } & Record<string, unknown>;

/** An announcer process inside a lab namespace, spoken to in JSON lines (see announcer-driver.ts). */
export class AnnouncerDriver {
  private readonly waiting: ((m: DriverMessage) => void)[] = [];
  private readonly queue: DriverMessage[] = [];
  readonly child: ChildProcess;
  stderr = "";

  /** `argv`: another driver speaking the same JSON lines (e.g. wire-driver.ts) and its arguments. */
  constructor(lab: Lab, ns: string, argv: readonly string[] = [driverPath]) {
    this.child = lab.spawn(ns, [process.execPath, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stderr?.on("data", (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const msg = JSON.parse(line) as DriverMessage;
      const w = this.waiting.shift();
      if (w === undefined) this.queue.push(msg);
      else w(msg);
    });
  }

  next(timeoutMs = 10_000): Promise<DriverMessage> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`announcer driver silent for ${timeoutMs} ms: ${this.stderr}`)),
        timeoutMs,
      );
      this.waiting.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }

  async ready(): Promise<void> {
    const m = await this.next();
    if (m.op !== "ready") throw new Error(`announcer driver: ${JSON.stringify(m)}`);
  }

  async send(cmd: Record<string, unknown>): Promise<DriverMessage> {
    this.child.stdin!.write(JSON.stringify(cmd) + "\n");
    return this.next();
  }

  reconcile(claims: readonly WireClaim[]): Promise<DriverMessage> {
    return this.send({ op: "reconcile", claims });
  }
}

/** tcpdump inside a namespace writing a pcap; stop() returns the file for tshark. */
export async function startCapture(
  lab: Lab,
  ns: string,
  ifname: string,
  filter: string,
): Promise<{ stop(): Promise<string> }> {
  const dir = mkdtempSync(join(tmpdir(), "ls-net-cap-"));
  const file = join(dir, "capture.pcap");
  const child = lab.spawn(ns, ["tcpdump", "--immediate-mode", "-i", ifname, "-U", "-n", "-w", file, filter]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("tcpdump did not start")), 5000);
    child.stderr?.on("data", (d: Buffer) => {
      if (d.toString().includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
      return file;
    },
  };
}

/** tshark field extraction: one row per frame, fields separated by "|". */
export function tsharkFields(file: string, display: string, fields: readonly string[]): string[][] {
  const out = execFileSync(
    "tshark",
    ["-r", file, "-Y", display, "-T", "fields", "-E", "separator=|", ...fields.flatMap((f) => ["-e", f])],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 256 << 20 },
  );
  return out
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => l.split("|"));
}

export function removeCapture(file: string): void {
  rmSync(join(file, ".."), { recursive: true, force: true });
}

/** Polls until `check` returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  stepMs = 25,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
