import { parentPort, workerData } from "node:worker_threads";
import { pino } from "pino";
import type { Heartbeat, HeartbeatKey } from "../core/heartbeat-codec.ts";
import { startLoopLagSampler } from "./loop-lag.ts";
import { createAnnouncer, type Announcer, type Claim, type ReconcileReport } from "../net/announcer.ts";
import { createHeartbeatTransport, type HeartbeatPeer, type HeartbeatTransport } from "../net/heartbeat.ts";
import type { FromWire, ToWire, WireStart } from "./wire-protocol.ts";

/**
 * The wire thread: the packet sockets with their ARP/NDP responder and gratuitous bursts, and the heartbeats,
 * on an event loop of their own. The speaker's planning, API traffic and garbage collections run on the main
 * thread and can take it for hundreds of milliseconds at 10,000 Services; here they hold back neither an answer
 * nor a heartbeat. Answers and heartbeats share this thread, so a node is alive to its peers exactly while it can
 * answer. The main thread says what to claim and what the heartbeats carry; when it falls silent for
 * `mainSilentMs` (hung), this thread withdraws every IP and stops the heartbeats, so its peers take over.
 */
const port = parentPort;
if (port === null) throw new Error("wire-worker: not started as a worker thread");
const start = workerData as WireStart;
const post = (m: FromWire): void => port.postMessage(m);
const logger = pino({ level: start.logLevel }, { write: (line: string) => post({ type: "log", line }) });
const at = (): number => performance.timeOrigin + performance.now();

let keys: readonly HeartbeatKey[] = [];
let template: { hb: Heartbeat; peers: readonly HeartbeatPeer[] } | undefined;
let seq = 0;
let heardFromMain = performance.now();
let withdrawn = false;
let closing = false;
const lag = startLoopLagSampler();
let announcer: Announcer | undefined;
let transport: HeartbeatTransport | undefined;
let beats: NodeJS.Timeout | undefined;

function beatNow(): void {
  if (transport === undefined || template === undefined || withdrawn) return;
  // This thread's own sequence and clock: a beat it repeats while the main thread is busy is a fresh one.
  transport.send({ ...template.hb, seq: ++seq, sentAtMs: Date.now() }, template.peers);
}

let foreign: (FromWire & { type: "foreign" })["seen"][number][] = [];
function flushForeign(): void {
  if (foreign.length === 0) return;
  post({ type: "foreign", seen: foreign });
  foreign = [];
}

/**
 * Changed claims applied per event-loop turn. Applying a takeover of thousands of IPs at once (sockets, groups,
 * bursts for each) held this thread for a second at 10,000 Services — long enough for the peers to declare the
 * node dead while it took over. Releases go first, then gains; the heartbeats and answers run between steps, and
 * each step costs what it changes (Announcer.update).
 */
const CLAIMS_PER_STEP = 256;
const jobs: { id: number; removes: string[]; upserts: Claim[] }[] = [];
let applying = false;

function applyStep(): void {
  const job = jobs[0];
  if (job === undefined || closing || announcer === undefined) {
    applying = false;
    return;
  }
  const removes = job.removes.splice(0, CLAIMS_PER_STEP);
  const upserts = job.upserts.splice(0, CLAIMS_PER_STEP - removes.length);
  const report = announcer.update(upserts, removes);
  if (job.removes.length === 0 && job.upserts.length === 0) {
    jobs.shift();
    post({ type: "reconciled", id: job.id, unannounced: unannouncedOf(report) });
  }
  setImmediate(applyStep);
}

const unannouncedOf = (r: Pick<ReconcileReport, "unannounced">) =>
  r.unannounced.map((u) => ({ key: u.key, ip: u.ip, message: u.error.message }));

/** Everything withdrawn at once (the main thread fell silent, or closing). */
function withdrawAll(): void {
  announcer?.reconcile([]);
}

async function main(): Promise<void> {
  const t = await createHeartbeatTransport({
    address: start.address,
    port: start.port,
    logger,
    keys: () => keys,
    onHeartbeat: (hb) => post({ type: "heartbeat", hb, at: at() }),
  });
  if (!t.ok) {
    post({ type: "failed", message: t.error.message });
    return;
  }
  transport = t.value;
  const a = await createAnnouncer({ logger: logger.child({ component: "announcer" }) });
  if (!a.ok) {
    await transport.close();
    post({ type: "failed", message: `announcer: ${a.error.message}` });
    return;
  }
  announcer = a.value;
  announcer.onForeignAnnouncement((seen) => {
    // Batched: in a disagreement over thousands of IPs the sightings come by thousands a second.
    if (foreign.length === 0) setTimeout(flushForeign, 10);
    foreign.push(seen);
  });
  beats = setInterval(() => {
    const silent = performance.now() - heardFromMain;
    if (!withdrawn && silent > start.mainSilentMs) {
      withdrawn = true;
      for (const job of jobs) post({ type: "reconciled", id: job.id, unannounced: [] });
      jobs.length = 0;
      withdrawAll();
      post({ type: "withdrawn", silentMs: Math.round(silent) });
      return;
    }
    beatNow();
  }, start.heartbeatIntervalMs);
  post({ type: "ready", port: transport.port });
}

port.on("message", (m: ToWire) => {
  heardFromMain = performance.now();
  switch (m.type) {
    case "keys":
      keys = m.keys;
      return;
    case "beat": {
      const before = template?.hb;
      template = { hb: m.hb, peers: m.peers };
      if (withdrawn) return; // until the main thread has handled "withdrawn" (a reconcile with reset)
      // What peers act on at once goes out at once; the periodic beat carries the rest.
      if (before === undefined || m.hb.kind === "leaving" || before.apiOk !== m.hb.apiOk) beatNow();
      return;
    }
    case "reconcile": {
      if (m.reset) {
        for (const job of jobs) post({ type: "reconciled", id: job.id, unannounced: [] });
        jobs.length = 0;
        withdrawAll();
        withdrawn = false;
      } else if (withdrawn) {
        // Sent before the main thread saw "withdrawn": claims relative to what this thread no longer holds.
        post({ type: "reconciled", id: m.id, unannounced: [] });
        return;
      }
      jobs.push({ id: m.id, removes: [...m.removes], upserts: [...m.upserts] });
      if (!applying) {
        applying = true;
        setImmediate(applyStep);
      }
      return;
    }
    case "announce":
      announcer?.announceNow(m.ip, { once: m.once });
      return;
    case "telemetry": {
      const l2 = announcer?.telemetry() ?? { layer2: [], layer2Drops: [] };
      post({
        type: "telemetry",
        telemetry: { ...l2, loopLag: lag.snapshot(), heartbeatsRejected: transport?.rejected() ?? {} },
      });
      return;
    }
    case "close":
      if (closing) return;
      closing = true;
      void (async () => {
        clearInterval(beats);
        withdrawAll();
        await announcer?.close();
        await transport?.close();
        lag.stop();
        post({ type: "closed" });
        process.exit(0);
      })();
      return;
  }
});

main().catch((err: unknown) => post({ type: "failed", message: err instanceof Error ? err.message : String(err) }));
