// The folder rules of README's "Layout": imports flow one way (lib/ at the
// bottom; transport/ on lib/; persistent/ and testing/ on both; cli/ on top),
// and no two modules import each other, directly or around a loop, type-only
// imports included.
import assert from "node:assert/strict";

import { filesUnder, ROOT } from "./_files.ts";
/** Which folders each folder may import from (besides itself). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  lib: [],
  transport: ["lib"],
  persistent: ["lib", "transport"],
  testing: ["lib", "transport"],
  cli: ["lib", "transport", "persistent"],
};

/** Relative import specifiers of a module: static, re-exports and dynamic. */
function specifiers(code: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*"(\.{1,2}\/[^"]+)"/gms,
    /^\s*import\s*"(\.{1,2}\/[^"]+)"/gm,
    /\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const m of code.matchAll(pattern)) found.push(m[1]!);
  }
  return found;
}

async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const folder of Object.keys(MAY_IMPORT)) {
    for await (const entry of Deno.readDir(new URL(`${folder}/`, ROOT))) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const file = `${folder}/${entry.name}`;
      const code = await Deno.readTextFile(new URL(file, ROOT));
      const targets = specifiers(code)
        .filter((s) => s.endsWith(".ts"))
        .map((s) =>
          new URL(s, new URL(file, ROOT)).href.slice(ROOT.href.length)
        );
      graph.set(file, targets);
    }
  }
  return graph;
}

Deno.test("imports flow one way between the folders", async () => {
  const wrong: string[] = [];
  for (const [file, targets] of await importGraph()) {
    const from = file.split("/")[0]!;
    for (const target of targets) {
      const to = target.split("/")[0]!;
      if (to === from || !(to in MAY_IMPORT)) continue;
      if (!MAY_IMPORT[from]!.includes(to)) wrong.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("no module imports itself around a loop", async () => {
  const graph = await importGraph();
  const state = new Map<string, "open" | "done">();
  const loops: string[] = [];
  const visit = (file: string, path: string[]): void => {
    state.set(file, "open");
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") {
        loops.push(
          [...path.slice(path.indexOf(next)), file, next].join(" -> "),
        );
      } else if (!state.has(next) && graph.has(next)) {
        visit(next, [...path, file]);
      }
    }
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file, []);
  assert.deepEqual(loops, []);
});

/** Folders of source files held to the size limit (tests/ is exempt). */
const SIZED = [
  "lib",
  "transport",
  "persistent",
  "testing",
  "cli",
  "scripts",
  "bench",
  "examples",
  ".ci",
];
const MAX_LINES = 700;

Deno.test(`no source file outside tests/ is over ${MAX_LINES} lines`, async () => {
  const over: string[] = [];
  const files = await filesUnder(
    ["mod.ts", ...SIZED],
    /(\.(ts|js|sh|py)|^run)$/,
  );
  assert.ok(files.includes("lib/client.ts"), "the scan found lib/client.ts");
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > MAX_LINES) over.push(`${file}: ${lines} lines`);
  }
  assert.deepEqual(over, []);
});

Deno.test("the layout check sees the imports it must see", async () => {
  // Guards the scanner itself: a known import of each kind is found.
  const graph = await importGraph();
  assert.ok(graph.get("lib/client.ts")!.includes("lib/client_core.ts"));
  assert.ok(graph.get("lib/client_core.ts")!.includes("lib/_session.ts"));
  assert.ok(graph.get("transport/connect.ts")!.includes("lib/client.ts"));
  assert.ok(graph.get("transport/_deno.ts")!.includes("transport/_backend.ts"));
  assert.deepEqual(
    specifiers(
      'const m = await import("./_node.ts");\nexport { a } from "./b.ts";',
    ),
    ["./b.ts", "./_node.ts"],
  );
});
