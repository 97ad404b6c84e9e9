// Type-checks every ```ts block of README.md against the local sources, so
// the README cannot show an API that does not exist. Each block becomes a
// module in a temporary directory: imports of the package are mapped to the
// files its deno.json exports, and names a fragment uses without defining
// (`client`, `signal`, …) are declared in front of it.
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);
const PACKAGE = JSON.parse(
  await Deno.readTextFile(new URL("deno.json", ROOT)),
) as { name: string; exports: Record<string, string> };

/** One fenced block: its info string, first line number and code. */
interface Block {
  info: string;
  line: number;
  code: string;
}

/** The fenced code blocks of a Markdown text. */
function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  let open: Block | null = null;
  lines.forEach((text, i) => {
    if (open === null) {
      const m = /^```(\S.*)?$/.exec(text);
      if (m !== null) {
        open = { info: (m[1] ?? "").trim(), line: i + 2, code: "" };
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

/** The block as a module that type-checks on its own. */
function moduleOf(code: string): string {
  const head: string[] = [];
  for (const [name, declaration] of Object.entries(CONTEXT)) {
    if (new RegExp(`\\b${name}\\b`).test(code) && !defines(code, name)) {
      head.push(declaration);
    }
  }
  if (head.some((d) => d.includes("ThinClient"))) {
    head.unshift(`import type { ThinClient } from "${PACKAGE.name}";`);
  }
  const body = `${head.join("\n")}\n${code}export {};\n`;
  // "@katzenpost/thinclient" and its subpaths → the files deno.json exports.
  return body.replace(
    new RegExp(`(["'])${PACKAGE.name}(/[a-z-]+)?\\1`, "g"),
    (_all, quote: string, sub: string | undefined) => {
      const target = PACKAGE.exports[sub === undefined ? "." : `.${sub}`];
      assert.ok(target, `README imports unknown entry '${PACKAGE.name}${sub}'`);
      return `${quote}${new URL(target, ROOT).href}${quote}`;
    },
  );
}

const README = await Deno.readTextFile(new URL("README.md", ROOT));
const TS_BLOCKS = fencedBlocks(README).filter((b) => /^ts\b/.test(b.info));

Deno.test("README.md has TypeScript examples, none of them exempt from checking", () => {
  assert.ok(TS_BLOCKS.length >= 5, `only ${TS_BLOCKS.length} ts blocks found`);
  for (const b of TS_BLOCKS) {
    assert.equal(b.info, "ts", `README.md:${b.line}: block is '${b.info}'`);
  }
});

Deno.test("README.md TypeScript examples type-check against the sources", async () => {
  const dir = await Deno.makeTempDir({ prefix: "readme-test-" });
  try {
    const files: string[] = [];
    for (const b of TS_BLOCKS) {
      const file = `${dir}/readme_line_${b.line}.ts`;
      await Deno.writeTextFile(file, moduleOf(b.code));
      files.push(file);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "check",
        "--quiet",
        "--config",
        new URL("deno.json", ROOT).pathname,
        ...files,
      ],
      cwd: ROOT.pathname,
      stdin: "null",
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(120_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    // Name the README line rather than the temporary file.
    assert.equal(
      out.code,
      0,
      `README.md examples do not type-check:\n${
        stderr.replaceAll(`file://${dir}/`, "")
      }`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
