// Builds the AF_PACKET addon (native/packet_socket.c -> build/Release/lodestone_packet.node) with node-gyp.
// Runs as the npm `install` script, on whatever Node npm runs (Node 20 in CI, 24 elsewhere): the addon uses only
// N-API, so the headers of the project's own Node 24 (the `node` devDependency) serve every runtime, and no
// header download is needed. A failed build does not fail `npm ci` (the controller and the sandbox need no raw
// sockets): the announcer then reports LODESTONE_E_NET_ADDON_MISSING with the command to retry.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const candidates = [
  join(root, "node_modules", "node", "node_modules", `node-${process.platform}-${process.arch}`),
  dirname(dirname(process.execPath)),
];
const nodedir = candidates.find((dir) => existsSync(join(dir, "include", "node", "node_api.h")));
const gyp = createRequire(join(root, "package.json")).resolve("node-gyp/bin/node-gyp.js");
const args = [gyp, "rebuild", "--loglevel=warn", ...(nodedir === undefined ? [] : [`--nodedir=${nodedir}`])];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
if (result.status !== 0) {
  console.warn(
    "\nlodestone: could not build the AF_PACKET addon (needs python3, make and a C compiler); layer-2 " +
      "announcement stays unavailable until `node scripts/build-native.js` succeeds.\n",
  );
}
