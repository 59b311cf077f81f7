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

function parseFlags(args: readonly string[]): Flags | string {
  const flags: Flags = { port: 6443, address: "127.0.0.1", kubeconfig: undefined, rbac: false, tls: undefined };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const [name, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = (): string | undefined => inline ?? args[++i];
    switch (name) {
      case "--port": {
        const v = value();
        const n = Number(v);
        if (v === undefined || !Number.isInteger(n) || n < 0 || n > 65535)
          return `--port needs a number 0..65535, got ${String(v)}`;
        flags.port = n;
        break;
      }
      case "--address": {
        const v = value();
        if (v === undefined || v === "") return "--address needs an address";
        flags.address = v;
        break;
      }
      case "--kubeconfig": {
        const v = value();
        if (v === undefined || v === "") return "--kubeconfig needs a path";
        flags.kubeconfig = v;
        break;
      }
      case "--rbac":
        flags.rbac = inline === undefined || inline === "true";
        break;
      case "--tls":
        flags.tls = inline === undefined || inline === "true";
        break;
      default:
        return `unknown flag ${arg}`;
    }
  }
  return flags;
}

export const command: Command = {
  summary: "run the embedded Kubernetes API server (for tests, demos, trying a config)",
  run: async (args) => {
    if (args.includes("--help") || args.includes("-h")) {
      console.log(HELP);
      return 0;
    }
    const flags = parseFlags(args);
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
