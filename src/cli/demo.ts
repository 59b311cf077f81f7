import { runDemo } from "../app/demo.ts";
import { runFailoverLab } from "../app/demo-lab.ts";
import { leaveSignalsToCaller } from "../lab/netns.ts";
import { parseFlags } from "./flags.ts";
import type { Command } from "./main.ts";

const help = `Usage: lodestone demo [--no-lab] [--timeout SECONDS]

Starts the embedded Kubernetes API server, declares a pool and LoadBalancer Services (IPv4, IPv6, dual-stack,
shared, MetalLB-annotated, refused), runs the daemon and prints what a user looks at: kubectl get/describe svc
and lodestone status. As root it then builds a three-node lab in network namespaces and measures failover.
Everything it creates is removed at the end, also on Ctrl-C.

  --no-lab            skip the failover lab even as root
  --timeout SECONDS   how long to wait for the allocations (default 60)`;

export const command: Command = {
  summary: "show Lodestone at work on the embedded API server (what `npm run demo` runs)",
  async run(args) {
    const parsed = parseFlags(args, {
      "no-lab": { type: "boolean" },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (!parsed.ok) {
      console.error(`lodestone demo: ${parsed.error}\n\n${help}`);
      return 2;
    }
    const values = { ...parsed.values, timeout: parsed.values.timeout ?? "60" };
    if (values.help === true) {
      console.log(help);
      return 0;
    }
    const timeout = Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) {
      console.error(`lodestone demo: --timeout needs a positive number of seconds, not "${values.timeout}"`);
      return 2;
    }
    const abort = new AbortController();
    const onSignal = (): void => {
      // A second Ctrl-C does not wait for the orderly clean-up (network namespaces still go, on exit).
      if (abort.signal.aborted) process.exit(130);
      console.log("\nInterrupted: cleaning up… (Ctrl-C again to quit at once)");
      abort.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    leaveSignalsToCaller();
    try {
      const code = await runDemo({
        print: (text) => console.log(text),
        signal: abort.signal,
        timeoutMs: timeout * 1000,
        lab: values["no-lab"] !== true,
        runLab: runFailoverLab,
      });
      return abort.signal.aborted ? 130 : code;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};
