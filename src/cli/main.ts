import { existsSync, readFileSync } from "node:fs";

/** A sub-command: parses its own flags and returns the process exit code (0 ok, 1 failure, 2 usage). */
export interface Command {
  readonly summary: string;
  readonly run: (args: readonly string[]) => Promise<number>;
}

/**
 * A development command (the demo, the embedded API server): it ships in the checkout, not in
 * the image. Its module is named through a URL so that the image's build, which compiles what the CLI imports,
 * leaves it and everything only it needs (the sandbox, the lab) out.
 */
const devCommand = (name: string): (() => Promise<Command>) | undefined => {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  const url = new URL(`./${name}${ext}`, import.meta.url);
  if (!existsSync(url)) return undefined;
  return async () => ((await import(url.href)) as { command: Command }).command;
};

/** Every sub-command, loaded lazily so `lodestone --help` never pays for the Kubernetes client. */
const commands: Readonly<Record<string, (() => Promise<Command>) | undefined>> = {
  demo: devCommand("demo"),
  status: () => import("./status.ts").then((m) => m.command),
  "check-config": () => import("./check-config.ts").then((m) => m.command),
  sandbox: devCommand("sandbox"),
  run: () => import("./run.ts").then((m) => m.command),
  announce: () => import("./announce.ts").then((m) => m.command),
};
const devCommands = new Set(["demo", "sandbox"]);

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
}

async function usage(): Promise<string> {
  const lines = ["Usage: lodestone <command> [flags]", "", "Commands:"];
  for (const [name, load] of Object.entries(commands)) {
    if (load !== undefined) lines.push(`  ${name.padEnd(14)} ${(await load()).summary}`);
  }
  lines.push("", "Run `lodestone <command> --help` for the flags of one command.");
  return lines.join("\n");
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(await usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "version") {
    console.log(`lodestone ${version()}`);
    return 0;
  }
  const load = commands[name];
  if (load === undefined && devCommands.has(name)) {
    console.error(
      `lodestone: "${name}" is a development command and not part of this installation (the image carries the ` +
        `daemon only); run it from a checkout (npm ci): npx lodestone ${name}`,
    );
    return 2;
  }
  if (load === undefined) {
    console.error(`lodestone: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  try {
    return await (await load()).run(rest);
  } catch (err: unknown) {
    // Commands report their own errors as data; reaching here is a bug, but the user still gets one line.
    console.error(`lodestone ${name}: internal error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
