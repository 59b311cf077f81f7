import { defineConfig } from "vitest/config";

// `npm run test:image`: builds the base images and the Dockerfile with buildah and runs `lodestone` inside.
// Minutes long and root-only, so it is not part of `npm test` (vitest.config.ts excludes test/image).
export default defineConfig({
  test: {
    include: ["test/image/**/*.test.ts"],
    testTimeout: 40 * 60_000,
    hookTimeout: 40 * 60_000,
    pool: "forks",
  },
});
