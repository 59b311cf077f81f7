import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const bin = new URL("../../../bin/lodestone.js", import.meta.url).pathname;

/** Runs the real `lodestone` binary; resolves with its exit code and output whatever the code. */
export async function lodestone(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
