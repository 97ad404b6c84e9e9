// Shared by tests/readme_test.ts and tests/doc_examples_test.ts: find code
// examples (fenced blocks of Markdown, `ts ignore` examples of doc comments),
// turn them into modules that import the local sources instead of the
// published package, and type-check them all with one `deno check`, naming
// the example's own file and line in every message.
import assert from "node:assert/strict";

import { ROOT } from "./_files.ts";

/** The package's name and the files its deno.json exports. */
export const PACKAGE = JSON.parse(
  await Deno.readTextFile(new URL("deno.json", ROOT)),
) as { name: string; exports: Record<string, string> };

/** A code example and where it is. */
export interface Block {
  /** The file it is in, relative to the repository root. */
  file: string;
  /** Line (1-based) of its first code line in that file. */
  line: number;
  /** Characters each code line has in front of it there (` * ` in JSDoc). */
  indent: number;
  /** The fence's info string (`ts`, `ts ignore`, …). */
  info: string;
  /** The code, each line ending in "\n". */
  code: string;
}

/** The fenced code blocks of a Markdown text. */
export function fencedBlocks(markdown: string, file: string): Block[] {
  const blocks: Block[] = [];
  let open: Block | null = null;
  markdown.split("\n").forEach((text, i) => {
    if (open === null) {
      const m = /^```(\S.*)?$/.exec(text);
      if (m !== null) {
        const info = (m[1] ?? "").trim();
        open = { file, line: i + 2, indent: 0, info, code: "" };
      }
    } else if (text === "```") {
      blocks.push(open);
      open = null;
    } else {
      open.code += text + "\n";
    }
  });
  return blocks;
}

/**
 * The ```` ```ts ignore ```` examples of a module's doc comments: the lines
 * between ` * ```ts ignore` and ` * ``` `, without their leading ` * `.
 */
export function jsdocExamples(source: string, file: string): Block[] {
  const blocks: Block[] = [];
  let open: Block | null = null;
  source.split("\n").forEach((text, i) => {
    if (open === null) {
      const m = /^(\s*\* )```ts ignore\s*$/.exec(text);
      if (m !== null) {
        const indent = m[1]!.length;
        open = { file, line: i + 2, indent, info: "ts ignore", code: "" };
      }
    } else if (/^\s*\* ```\s*$/.test(text)) {
      blocks.push(open);
      open = null;
    } else {
      const m = /^\s*\*(?: |$)(.*)$/.exec(text);
      assert.ok(m, `${file}:${i + 1}: example line outside a doc comment`);
      open.code += m[1]! + "\n";
    }
  });
  const unclosed = open as Block | null; // (assigned in the callback)
  assert.equal(unclosed, null, `${file}:${unclosed?.line}: example not closed`);
  return blocks;
}

/**
 * The code with `@katzenpost/thinclient` and its subpaths replaced by the
 * URLs of the files deno.json exports for them.
 */
export function mapPackageSpecifiers(code: string, where: string): string {
  return code.replace(
    new RegExp(`(["'])${PACKAGE.name}(/[a-z-]+)?\\1`, "g"),
    (_all, quote: string, sub: string | undefined) => {
      const target = PACKAGE.exports[sub === undefined ? "." : `.${sub}`];
      assert.ok(
        target,
        `${where} imports unknown entry '${PACKAGE.name}${sub}'`,
      );
      return `${quote}${new URL(target, ROOT).href}${quote}`;
    },
  );
}

/** An example to check, with the lines to put in front of it. */
export interface ExampleModule {
  block: Block;
  head: string[];
}

/** One diagnostic of `deno check`, placed in the example's own file. */
export interface Diagnostic {
  /** The example it is about (undefined: not in any example). */
  block: Block | undefined;
  /** Its place in the example's file (`lib/client.ts:146:10`). */
  at: string | undefined;
  /** `TS2304`, … */
  code: string;
  /** The message's first line. */
  message: string;
  /** The whole diagnostic, with locations mapped to the examples' files. */
  text: string;
}

/** What one `deno check` over examples found. */
export interface CheckResult {
  /** Its exit code. */
  code: number;
  /** Its diagnostics. */
  diagnostics: Diagnostic[];
  /** Its stderr, with locations mapped to the examples' files. */
  output: string;
}

/**
 * Writes each example as a module (`head`, the code, `export {};`, package
 * specifiers mapped) to a temporary directory and runs one `deno check` over
 * all of them. Locations in the output name the example's file and line.
 */
export async function checkModules(
  modules: readonly ExampleModule[],
): Promise<CheckResult> {
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "doc-blocks-" }),
  );
  try {
    const byName = new Map<string, ExampleModule>();
    for (const m of modules) {
      const where = `${m.block.file}:${m.block.line}`;
      const name = `${where.replace(/[^A-Za-z0-9]/g, "_")}.ts`;
      const head = m.head.map((l) => l + "\n").join("");
      const text = `${head}${m.block.code}export {};\n`;
      await Deno.writeTextFile(
        `${dir}/${name}`,
        mapPackageSpecifiers(text, where),
      );
      byName.set(name, m);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "check",
        "--quiet",
        "--config",
        new URL("deno.json", ROOT).pathname,
        ...[...byName.keys()].map((name) => `${dir}/${name}`),
      ],
      cwd: ROOT.pathname,
      stdin: "null",
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(300_000),
    }).output();
    // file:///tmp/…/lib_client_ts_144.ts:3:7 → lib/client.ts:146:10
    const prefix = new URL(`file://${dir}/`).href;
    const located = new RegExp(
      `${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}([\\w.]+):(\\d+):(\\d+)`,
      "g",
    );
    const place = (text: string): string =>
      text.replace(located, (all, name: string, line: string, col: string) => {
        const m = byName.get(name);
        if (m === undefined) return all;
        const k = Number(line) - 1 - m.head.length; // 0-based, in the code
        if (k < 0) {
          return `${m.block.file}:${m.block.line} (added line ${line})`;
        }
        return `${m.block.file}:${m.block.line + k}:${
          Number(col) + m.block.indent
        }`;
      });
    const stderr = new TextDecoder().decode(out.stderr);
    const diagnostics: Diagnostic[] = [];
    const starts = [...stderr.matchAll(/^TS\d+ \[ERROR\]: /gm)].map((m) =>
      m.index
    );
    for (const [i, start] of starts.entries()) {
      const chunk = stderr.slice(start, starts[i + 1]);
      const [, code, message] = /^(TS\d+) \[ERROR\]: (.*)/.exec(chunk)!;
      const at = [...chunk.matchAll(located)][0]; // the first is its own
      diagnostics.push({
        block: at && byName.get(at[1]!)?.block,
        at: at && place(at[0]),
        code: code!,
        message: message!,
        text: place(chunk.replace(/\n(Found \d+ errors?|error: )[\s\S]*$/, ""))
          .trimEnd(),
      });
    }
    return { code: out.code, diagnostics, output: place(stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
