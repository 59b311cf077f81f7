import { pino } from "pino";
import { defaultGratuitous } from "../core/gratuitous.ts";
import { formatIp, parseIp, type IpAddress } from "../core/ip.ts";
import { createAnnouncer, type Claim } from "../net/announcer.ts";
import { parseFlags } from "./flags.ts";
import type { Command } from "./main.ts";

const help = `Usage: lodestone announce [--interface IF]... [flags] IP...

Claims the IPs on this node's LAN until stopped (Ctrl-C / SIGTERM): answers ARP and NDP for them and sends
gratuitous announcements first. A troubleshooting tool: "does my LAN see this node for this IP?". It sends
frames on the LAN: never point it at an IP another host uses.

  --interface IF         announce on IF (repeatable); default: the interface whose subnet contains the IP,
                         else the default-route interface
  --interval-ms N        gratuitous interval (default ${defaultGratuitous.intervalMs})
  --count N              gratuitous rounds on takeover (default ${defaultGratuitous.count})
  --refresh-seconds N    one gratuitous round every N seconds after the burst (default: none)
  --for SECONDS          stop by itself after SECONDS
  --log-level LEVEL      pino level for the JSON log on stderr (default info)

Needs CAP_NET_RAW (root). Exit codes: 0 stopped, 1 could not announce, 2 usage error.`;

const positiveInt = (text: string | undefined, fallback: number): number | undefined => {
  if (text === undefined) return fallback;
  return /^\d+$/.test(text) ? Number(text) : undefined;
};

export const command: Command = {
  summary: "answer ARP/NDP for IPs on this node until stopped (LAN troubleshooting)",
  async run(args) {
    const parsed = parseFlags(
      args,
      {
        interface: { type: "string", multiple: true },
        "interval-ms": { type: "string" },
        count: { type: "string" },
        "refresh-seconds": { type: "string" },
        for: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      { positionals: true },
    );
    if (!parsed.ok) {
      console.error(`lodestone announce: ${parsed.error}\n\n${help}`);
      return 2;
    }
    const { positionals } = parsed;
    const values = { ...parsed.values, "log-level": parsed.values["log-level"] ?? "info" };
    if (values.help === true) {
      console.log(help);
      return 0;
    }
    const usage = (message: string): number => {
      console.error(`lodestone announce: ${message}\n\n${help}`);
      return 2;
    };
    if (positionals.length === 0) return usage("name at least one IP to announce");
    const ips: IpAddress[] = [];
    for (const text of positionals) {
      const ip = parseIp(text);
      if (ip === undefined) return usage(`"${text}" is not an IP address`);
      ips.push(ip);
    }
    const intervalMs = positiveInt(values["interval-ms"], defaultGratuitous.intervalMs);
    const count = positiveInt(values.count, defaultGratuitous.count);
    const refresh = positiveInt(values["refresh-seconds"], 0);
    const forSeconds = positiveInt(values.for, 0);
    if (intervalMs === undefined || intervalMs < 1) return usage("--interval-ms must be a positive integer");
    if (count === undefined) return usage("--count must be a whole number");
    if (refresh === undefined) return usage("--refresh-seconds must be a whole number");
    if (forSeconds === undefined) return usage("--for must be a whole number of seconds");
    const level = values["log-level"];
    if (!(level in pino.levels.values) && level !== "silent") return usage(`unknown --log-level "${level}"`);

    const logger = pino({ level, base: { component: "announce" } }, pino.destination(2));
    const created = await createAnnouncer({ logger });
    if (!created.ok) {
      console.error(`lodestone announce: ${created.error.code}: ${created.error.message}`);
      return 1;
    }
    const announcer = created.value;
    const gratuitous = { intervalMs, count, ...(refresh > 0 ? { refreshSeconds: refresh } : {}) };
    const claims: Claim[] = ips.map((ip) => ({
      key: `cli/${formatIp(ip)}`,
      ip,
      ...(values.interface === undefined ? {} : { interfaces: values.interface }),
      gratuitous,
    }));
    const report = announcer.reconcile(claims);
    for (const a of report.announced) console.log(`announcing ${formatIp(a.ip)} on ${a.interfaces.join(", ")}`);
    for (const u of report.unannounced) console.error(`lodestone announce: ${u.error.code}: ${u.error.message}`);
    if (report.announced.length === 0) {
      await announcer.close();
      return 1;
    }

    const signal = await new Promise<string>((resolve) => {
      const stop = (why: string) => () => resolve(why);
      process.once("SIGINT", stop("SIGINT"));
      process.once("SIGTERM", stop("SIGTERM"));
      if (forSeconds > 0) setTimeout(stop(`--for ${forSeconds}`), forSeconds * 1000);
    });
    announcer.reconcile([]);
    const { layer2, layer2Drops } = announcer.telemetry();
    await announcer.close();
    console.log(`stopped (${signal})`);
    for (const c of layer2) {
      console.log(
        `  ${c.ip} on ${c.interface}: ${c.requests} requests, ${c.replies} replies, ${c.gratuitous} gratuitous`,
      );
    }
    const drops = layer2Drops.filter((d) => d.count > 0).map((d) => `${d.interface} ${d.reason}=${d.count}`);
    if (drops.length > 0) console.log(`  not answered: ${drops.join(", ")}`);
    return 0;
  },
};
