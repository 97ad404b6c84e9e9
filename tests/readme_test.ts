// Type-checks every ```ts block of README.md against the local sources, so
// the README cannot show an API that does not exist. Each block becomes a
// module in a temporary directory: imports of the package are mapped to the
// files its deno.json exports, and names a fragment uses without defining
// (`client`, `signal`, …) are declared in front of it.
import assert from "node:assert/strict";
import { checkModules, fencedBlocks, PACKAGE } from "./_doc_blocks.ts";
import { ROOT } from "./_files.ts";

/**
 * Declarations for names README fragments take from their surroundings,
 * added only when a block uses the name without defining or importing it.
 */
const CONTEXT: Record<string, string> = {
  client: "declare const client: ThinClient;",
  otherClient: "declare const otherClient: ThinClient;",
  signal: "declare const signal: AbortSignal;",
  savedToken: "declare const savedToken: Uint8Array;",
  connect: `import { connect } from "${PACKAGE.name}/transport";`,
};

function defines(code: string, name: string): boolean {
  return new RegExp(
    `\\b(const|let|using|function|class)\\s+${name}\\b|import\\s*\\{[^}]*\\b${name}\\b`,
  ).test(code);
}

/** The lines that make the block a module that type-checks on its own. */
function headOf(code: string): string[] {
  const head: string[] = [];
  for (const [name, declaration] of Object.entries(CONTEXT)) {
    if (new RegExp(`\\b${name}\\b`).test(code) && !defines(code, name)) {
      head.push(declaration);
    }
  }
  if (head.some((d) => d.includes("ThinClient"))) {
    head.unshift(`import type { ThinClient } from "${PACKAGE.name}";`);
  }
  return head;
}

const README = await Deno.readTextFile(new URL("README.md", ROOT));
const TS_BLOCKS = fencedBlocks(README, "README.md").filter((b) =>
  /^ts\b/.test(b.info)
);

Deno.test("README.md has TypeScript examples, none of them exempt from checking", () => {
  assert.ok(TS_BLOCKS.length >= 5, `only ${TS_BLOCKS.length} ts blocks found`);
  for (const b of TS_BLOCKS) {
    assert.equal(b.info, "ts", `README.md:${b.line}: block is '${b.info}'`);
  }
});

Deno.test("README.md TypeScript examples type-check against the sources", async () => {
  const result = await checkModules(
    TS_BLOCKS.map((block) => ({ block, head: headOf(block.code) })),
  );
  // Locations name the README line rather than the temporary file.
  assert.equal(
    result.code,
    0,
    `README.md examples do not type-check:\n${result.output}`,
  );
});
