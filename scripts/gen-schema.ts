// Writes config/schema.json and config/bgp-schema.json from the zod schemas in src/core/config.ts and
// src/core/bgp-config.ts (unit tests fail when they drift).
import { writeFileSync } from "node:fs";
import { format } from "prettier";
import { poolsJsonSchema } from "../src/core/config.ts";
import { bgpJsonSchema } from "../src/core/bgp-config.ts";

const target = new URL("../config/schema.json", import.meta.url);
writeFileSync(target, await format(JSON.stringify(poolsJsonSchema()), { parser: "json", printWidth: 120 }));
console.log(`wrote ${target.pathname}`);
const bgpTarget = new URL("../config/bgp-schema.json", import.meta.url);
writeFileSync(bgpTarget, await format(JSON.stringify(bgpJsonSchema()), { parser: "json", printWidth: 120 }));
console.log(`wrote ${bgpTarget.pathname}`);
