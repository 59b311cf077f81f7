// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "build/", "dist/", "deploy/", "coverage/"] },
  js.configs.recommended,
  { files: ["**/*.js"], languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } } },
  ...tseslint.configs.strict,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": "off",
    },
  },
  { files: ["test/**/*.ts", "bench/**/*.ts"], rules: { "@typescript-eslint/no-non-null-assertion": "off" } },
  {
    // The architecture of ../shared/STYLE.md: core is pure, adapters never import each other.
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/kube/**", "**/net/**", "**/sandbox/**", "**/http/**", "**/app/**", "**/cli/**"],
              message: "core/ is pure: it imports only core/.",
            },
            {
              group: [
                "@kubernetes/*",
                "pino",
                "prom-client",
                "node:fs",
                "node:net",
                "node:dgram",
                "node:http",
                "node:https",
                "node:child_process",
              ],
              message: "core/ does no I/O and no logging.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["src/kube/**/*.ts", "src/net/**/*.ts", "src/sandbox/**/*.ts", "src/http/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["../kube/**", "../net/**", "../sandbox/**", "../http/**", "../app/**", "../cli/**"],
              message: "an adapter imports core/ and its own library, never another adapter.",
            },
          ],
        },
      ],
    },
  },
);
