// The docs are a set of pages that point at each other and at files of the repository: every relative link in
// README.md, CHANGELOG.md and docs/**/*.md must name a file or folder that exists (anchors are not checked).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;
const pages = [
  "README.md",
  "CHANGELOG.md",
  ...(readdirSync(join(root, "docs"), { recursive: true, encoding: "utf8" }) as string[])
    .filter((f) => f.endsWith(".md"))
    .map((f) => join("docs", f)),
];

/** Inline links `[text](target)` outside code blocks and code spans, with their target's path part. */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
  const targets = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] ?? "");
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith("#")).map((t) => t.split("#")[0] ?? "");
}

describe("relative links in the docs", () => {
  it("finds the pages", () => {
    expect(pages).toEqual(expect.arrayContaining(["README.md", join("docs", "configuration.md")]));
  });

  it.each(pages)("%s links only to files that exist", (page) => {
    const text = readFileSync(join(root, page), "utf8");
    const broken = relativeLinks(text).filter((t) => !existsSync(join(root, dirname(page), decodeURIComponent(t))));
    expect(broken).toEqual([]);
  });
});
