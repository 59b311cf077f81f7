// docs/operations.md is the error-code reference: every code the daemon can report must be explained there. The
// codes come from the catalogue (src/core/errors.ts) and from any `LODESTONE_E_…` literal elsewhere in src/, so a
// code added outside the catalogue is caught too.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AllocationCodes, BgpCodes, ConfigCodes, ConfigWarningCodes, NetCodes } from "../../src/core/errors.ts";

const root = new URL("../../", import.meta.url).pathname;
const page = readFileSync(join(root, "docs/operations.md"), "utf8");

const literals = (readdirSync(join(root, "src"), { recursive: true, encoding: "utf8" }) as string[])
  .filter((f) => f.endsWith(".ts"))
  .flatMap((f) => readFileSync(join(root, "src", f), "utf8").match(/LODESTONE_E_[A-Z0-9_]+/g) ?? []);

const codes = [
  ...new Set([
    ...Object.values(ConfigCodes),
    ...Object.values(ConfigWarningCodes),
    ...Object.values(AllocationCodes),
    ...Object.values(NetCodes),
    ...Object.values(BgpCodes),
    ...literals,
  ]),
].sort();

describe("docs/operations.md error codes", () => {
  it("finds the catalogue", () => {
    expect(codes).toEqual(expect.arrayContaining(["LODESTONE_E_POOL_EXHAUSTED", "LODESTONE_E_NET_PERMISSION"]));
  });

  it.each(codes)("explains %s in a table row", (code) => {
    // A row of its own: `| \`CODE\` | means | what to do |`.
    expect(page).toMatch(new RegExp(`^\\| \`${code}\` \\| [^|]+ \\| [^|]+ \\|$`, "m"));
  });
});
