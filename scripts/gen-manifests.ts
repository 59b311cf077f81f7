// npm run gen:manifests — copies the pool schema of config/schema.json into the chart's values.schema.json, then
// writes deploy/manifests/lodestone.yaml, the chart rendered with its default values.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import * as prettier from "prettier";
import {
  chartDigest,
  findHelmTemplate,
  manifestFromRender,
  manifestPath,
  renderChart,
  repoRoot,
  valuesSchemaWithPools,
  valuesSchemaPath,
} from "./lib/chart.ts";

const schema = JSON.stringify(valuesSchemaWithPools(), null, 2);
const options = (await prettier.resolveConfig(valuesSchemaPath)) ?? {};
writeFileSync(valuesSchemaPath, await prettier.format(schema, { ...options, parser: "json" }));

const tool = findHelmTemplate();
if (tool === undefined) {
  console.error(
    "gen:manifests: helm-template not found: set LODESTONE_HELM_TEMPLATE or provide ../shared/tools/helm-template/run",
  );
  process.exit(2);
}
const render = await renderChart(tool);
if (!render.ok) {
  console.error(`gen:manifests: the chart does not render:\n${render.error}`);
  process.exit(1);
}
mkdirSync(dirname(manifestPath), { recursive: true });
writeFileSync(manifestPath, manifestFromRender(render.yaml, chartDigest()));
console.log(`gen:manifests: wrote ${relative(repoRoot, manifestPath)}`);
