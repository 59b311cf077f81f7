import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The image build takes minutes: `npm run test:image` (vitest.image.config.ts).
    exclude: [...configDefaults.exclude, "test/image/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Lab tests share the kernel's network namespaces and the sandbox ports: run files one at a time there.
    fileParallelism: true,
    pool: "forks",
  },
});
