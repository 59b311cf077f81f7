// Writes config/schema.json from the zod schema in src/core/config.ts (a unit test fails when they drift).
import { writeFileSync } from "node:fs";
import { format } from "prettier";
import { poolsJsonSchema } from "../src/core/config.ts";

const target = new URL("../config/schema.json", import.meta.url);
writeFileSync(target, await format(JSON.stringify(poolsJsonSchema()), { parser: "json", printWidth: 120 }));
console.log(`wrote ${target.pathname}`);
