// Type-checks every ```ts ignore example in the doc comments of the package's
// sources. `deno test --doc` skips them (they need a live daemon), so without
// this test they could drift from the API they document.
//
// Pass 1 checks each example as a module as written (package specifiers
// mapped to the local files) and collects the names it uses without defining.
// Pass 2 imports those names, as `deno test --doc` would, from the module the
// example documents when it exports them, else from tests/_doc_context.ts
// (`client`, `readCap`, `bytes`, …), and must find no error at all.
import assert from "node:assert/strict";
import {
  type Block,
  checkModules,
  type Diagnostic,
  jsdocExamples,
} from "./_doc_blocks.ts";
import { filesUnder, ROOT } from "./_files.ts";

const CONTEXT = "tests/_doc_context.ts";
/** Where the documented sources are: folders (searched in depth) and files. */
const SOURCES = ["lib", "transport", "persistent", "testing", "cli", "mod.ts"];

const FILES = await filesUnder(SOURCES, /\.ts$/);
const EXAMPLES: Block[] = [];
for (const file of FILES) {
  const source = await Deno.readTextFile(new URL(file, ROOT));
  EXAMPLES.push(...jsdocExamples(source, file));
}

/** The names each module exports (values and types), by `deno doc --json`. */
async function exportedNames(
  files: string[],
): Promise<Map<string, Set<string>>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...files],
    cwd: ROOT.pathname,
    stdin: "null",
    stderr: "inherit",
    signal: AbortSignal.timeout(120_000),
  }).output();
  assert.equal(out.code, 0, "deno doc --json failed");
  const doc = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    nodes: Record<string, { symbols?: { name: string }[] }>;
  };
  const names = new Map<string, Set<string>>();
  for (const file of files) {
    const node = doc.nodes[new URL(file, ROOT).href];
    assert.ok(node, `deno doc --json says nothing of ${file}`);
    names.set(file, new Set((node.symbols ?? []).map((s) => s.name)));
  }
  return names;
}

/** The name a "not defined" diagnostic is about, or null for other errors. */
function missingName(d: Diagnostic): string | null {
  if (!["TS2304", "TS2552", "TS18004"].includes(d.code)) return null;
  return /(?:Cannot find name|shorthand property) '([^']+)'/.exec(d.message)
    ?.[1] ?? null;
}

/** `import { a, b } from "<file's URL>";` */
function importLine(names: string[], file: string): string {
  return `import { ${names.join(", ")} } from "${new URL(file, ROOT).href}";`;
}

Deno.test("doc comments have ts ignore examples, all of them found", async () => {
  assert.ok(EXAMPLES.length >= 120, `only ${EXAMPLES.length} examples found`);
  // No example skipped by `deno test --doc` escapes this test: every
  // `ignore` fence, however written, is one the extractor returned.
  const found = new Set(EXAMPLES.map((b) => `${b.file}:${b.line - 1}`));
  for (const file of FILES) {
    const source = await Deno.readTextFile(new URL(file, ROOT));
    source.split("\n").forEach((text, i) => {
      if (/```\S* .*\bignore\b/.test(text)) {
        assert.ok(found.has(`${file}:${i + 1}`), `${file}:${i + 1}: ${text}`);
      }
    });
  }
});

Deno.test("doc-comment examples type-check against the sources", async () => {
  const files = [...new Set(EXAMPLES.map((b) => b.file))];
  const exports = await exportedNames([CONTEXT, ...files]);
  const context = exports.get(CONTEXT)!;

  // Pass 1: as written. Collect the names each example leaves undefined.
  const pass1 = await checkModules(
    EXAMPLES.map((block) => ({ block, head: [] })),
  );
  if (pass1.code !== 0 && pass1.diagnostics.length === 0) {
    assert.fail(`deno check failed without a diagnostic:\n${pass1.output}`);
  }
  const missing = new Map<Block, Map<string, string>>(); // name → where used
  for (const d of pass1.diagnostics) {
    const name = missingName(d);
    if (name === null || d.block === undefined) continue;
    const names = missing.get(d.block) ?? new Map<string, string>();
    if (!names.has(name)) names.set(name, d.at!.replace(/:\d+$/, ""));
    missing.set(d.block, names);
  }

  // Pass 2: those names imported from the documented module or the context.
  const problems: string[] = [];
  const unprovided = new Set<string>(); // "file:line name"
  const used = new Set<string>();
  const modules = EXAMPLES.map((block) => {
    const own: string[] = [];
    const ambient: string[] = [];
    for (const [name, where] of [...missing.get(block) ?? []].sort()) {
      if (exports.get(block.file)!.has(name)) own.push(name);
      else if (context.has(name)) ambient.push(name);
      else {
        problems.push(
          `${where}: example uses '${name}', which it does not define and ${CONTEXT} does not provide`,
        );
        unprovided.add(`${block.file}:${block.line} ${name}`);
      }
    }
    ambient.forEach((name) => used.add(name));
    const head: string[] = [];
    if (own.length > 0) head.push(importLine(own, block.file));
    if (ambient.length > 0) head.push(importLine(ambient, CONTEXT));
    return { block, head };
  });
  const pass2 = await checkModules(modules);
  for (const d of pass2.diagnostics) {
    const name = missingName(d);
    const where = d.block && `${d.block.file}:${d.block.line}`;
    if (!unprovided.has(`${where} ${name}`)) problems.push(d.text);
  }
  if (pass2.code !== 0 && pass2.diagnostics.length === 0) {
    problems.push(pass2.output);
  }
  if (problems.length > 0) {
    assert.fail(`doc-comment examples:\n\n${problems.join("\n\n")}`);
  }

  // The context holds only names some example uses.
  const unused = [...context].filter((name) => !used.has(name));
  assert.deepEqual(unused, [], `${CONTEXT} provides names no example uses`);
});
