import { configDefaults, defineConfig } from "vitest/config";

const shared = { testTimeout: 60_000, hookTimeout: 120_000, pool: "forks" } as const;

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: "main",
          include: ["test/**/*.test.ts"],
          // The image build takes minutes: `npm run test:image` (vitest.image.config.ts). The lab is a group apart.
          exclude: [...configDefaults.exclude, "test/image/**", "test/lab/**", "test/contract/**"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          // The sandbox held to kube-apiserver, one behaviour per test, each naming the source it follows. In the
          // main group (same groupOrder: they run alongside), a project of its own so `--project contract` runs
          // just them.
          name: "contract",
          include: ["test/contract/**/*.test.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          // The lab measures failover in milliseconds with real packets: its files run as a group of their own
          // (another groupOrder: groups never run together; here the lab's runs first) and one at a time, so the
          // rest of the suite does not load the machine while it measures.
          name: "lab",
          include: ["test/lab/**/*.test.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
