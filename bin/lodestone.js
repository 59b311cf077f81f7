#!/usr/bin/env -S node --disable-warning=ExperimentalWarning --optimize-for-size
// From a checkout Lodestone runs its TypeScript sources directly (Node >= 24 strips the types; no build step). The
// image holds only dist/, the same sources compiled by `npm run build`, so Node never loads its type stripper.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
const { main } = await import(existsSync(source) ? source.href : new URL("../dist/cli/main.js", import.meta.url).href);

process.exitCode = await main(process.argv.slice(2));
