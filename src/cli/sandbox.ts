import { type FlagSpecs, parseFlags } from "./flags.ts";
import type { Command } from "./main.ts";

const HELP = `Usage: lodestone sandbox [--port N] [--address A] [--kubeconfig PATH] [--rbac] [--tls[=false]]

Runs the embedded Kubernetes API server until SIGINT/SIGTERM and writes a kubeconfig for it.

  --port N           TCP port (default 6443; 0 = ephemeral)
  --address A        listen address (default 127.0.0.1)
  --kubeconfig PATH  where to write the kubeconfig (default: a file in the temp directory)
  --rbac             authenticate bearer tokens and enforce RBAC (ServiceAccount tokens via /_sandbox/tokens)
                     and list the requests it refused at GET /_sandbox/denials
  --tls              HTTPS with a self-signed certificate (default: on with --rbac, since kubectl sends no
                     credentials over plain HTTP; off otherwise)`;

interface Flags {
  port: number;
  address: string;
  kubeconfig: string | undefined;
  rbac: boolean;
  tls: boolean | undefined;
}

const FLAGS = {
  port: { type: "string" },
  address: { type: "string" },
  kubeconfig: { type: "string" },
  rbac: { type: "boolean" },
  tls: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies FlagSpecs;

/** Pure: the flags → options, "help", or the one-line reason they are wrong. */
export function parseSandboxFlags(args: readonly string[]): Flags | "help" | string {
  const parsed = parseFlags(args, FLAGS);
  if (!parsed.ok) return parsed.error;
  const { values } = parsed;
  if (values.help === true) return "help";
  const port = values.port === undefined ? 6443 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return `--port needs a number 0..65535, got ${values.port}`;
  if (values.address === "") return "--address needs an address";
  if (values.kubeconfig === "") return "--kubeconfig needs a path";
  return {
    port,
    address: values.address ?? "127.0.0.1",
    kubeconfig: values.kubeconfig,
    rbac: values.rbac ?? false,
    tls: values.tls,
  };
}

export const command: Command = {
  summary: "run the embedded Kubernetes API server (for tests, demos, trying a config)",
  run: async (args) => {
    const flags = parseSandboxFlags(args);
    if (flags === "help") {
      console.log(HELP);
      return 0;
    }
    if (typeof flags === "string") {
      console.error(`lodestone sandbox: ${flags}\n\n${HELP}`);
      return 2;
    }
    const { startSandbox } = await import("../sandbox/index.ts");
    let sandbox;
    try {
      sandbox = await startSandbox({
        port: flags.port,
        host: flags.address,
        rbac: flags.rbac,
        ...(flags.tls === undefined ? {} : { tls: flags.tls }),
        ...(flags.kubeconfig === undefined ? {} : { kubeconfigPath: flags.kubeconfig }),
      });
    } catch (err: unknown) {
      console.error(
        `lodestone sandbox: cannot listen on ${flags.address}:${flags.port}: ${err instanceof Error ? err.message : String(err)}`,
      );
      return 1;
    }
    console.log(`sandbox API server: ${sandbox.url}`);
    console.log(`kubeconfig: ${sandbox.kubeconfigPath}`);
    console.log(`try: kubectl --kubeconfig ${sandbox.kubeconfigPath} get namespaces`);
    const signal = await new Promise<string>((resolve) => {
      process.once("SIGINT", () => resolve("SIGINT"));
      process.once("SIGTERM", () => resolve("SIGTERM"));
    });
    console.log(`sandbox: ${signal}, stopping`);
    await sandbox.stop();
    return 0;
  },
};
