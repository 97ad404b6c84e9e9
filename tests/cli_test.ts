// Tests of the pigeonhole-cp CLI (cli/pigeonhole_cp.ts) against the fake
// daemon over TCP: every subcommand, upstream format compatibility, resume,
// cancellation, progress, and every bad input → one line + its exit code.
import { concatBytes } from "../lib/_bytes.ts";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import { ProtocolError } from "../lib/errors.ts";
import { main, type PigeonholeCpDeps } from "../cli/pigeonhole_cp.ts";
import {
  cborItemLength,
  decodeHeader,
  encodeHeader,
  nameProblem,
  streamLayout,
} from "../cli/_format.ts";
import { parseCapText } from "../cli/_caps_input.ts";
import { Progress } from "../cli/_progress.ts";
import { CallTimings } from "../cli/_timings.ts";
import type { CallRecord } from "../mod.ts";
import {
  FakeDaemon,
  type FakeDaemonOptions,
  fakeKeypair,
  fakeNextIndex,
} from "../testing/mod.ts";

const MAX = 1549; // default geometry of the fake daemon
const dec = new TextDecoder();

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return crypto.subtle.digest("SHA-256", bytes.slice()).then((d) =>
    new Uint8Array(d)
  );
}

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

function collector(): { stream: WritableStream<Uint8Array>; text(): string } {
  const chunks: Uint8Array[] = [];
  return {
    stream: new WritableStream({
      write(c) {
        chunks.push(c.slice());
      },
    }),
    text: () => chunks.map((c) => dec.decode(c, { stream: true })).join(""),
  };
}

function collectBytes(): {
  stream: WritableStream<Uint8Array>;
  bytes(): Uint8Array;
} {
  const chunks: Uint8Array[] = [];
  return {
    stream: new WritableStream({
      write(c) {
        chunks.push(c.slice());
      },
    }),
    bytes: () => {
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    },
  };
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  out: Uint8Array;
}

interface RunOptions {
  stdin?: Uint8Array | string;
  env?: Record<string, string>;
  signal?: AbortSignal;
  isTerminal?: boolean;
}

interface Harness extends AsyncDisposable {
  daemon: FakeDaemon;
  dir: string;
  config: string;
  state: string;
  run(args: string[], options?: RunOptions): Promise<RunResult>;
  /** Common options: --config and --state. */
  c: string[];
}

async function harness(options: FakeDaemonOptions = {}): Promise<Harness> {
  const daemon = await FakeDaemon.start({ transport: "tcp", ...options });
  const dir = await Deno.makeTempDir({ prefix: "pigeonhole-cp-test-" });
  const config = `${dir}/thinclient.toml`;
  await Deno.writeTextFile(
    config,
    `[Dial]\n  [Dial.Tcp]\n    Address = "${daemon.address}"\n    Network = "tcp"\n`,
  );
  const state = `${dir}/state/state.db`;
  return {
    daemon,
    dir,
    config,
    state,
    c: ["--config", config, "--state", state],
    async run(args, o = {}) {
      const out = collectBytes();
      const err = collector();
      const stdinBytes = typeof o.stdin === "string"
        ? new TextEncoder().encode(o.stdin)
        : o.stdin ?? new Uint8Array(0);
      const deps: PigeonholeCpDeps = {
        stdin: new Blob([stdinBytes.slice()]).stream(),
        stdout: out.stream,
        stderr: err.stream,
        env: { HOME: dir, ...o.env },
        signal: o.signal ?? new AbortController().signal,
        isTerminal: o.isTerminal ?? false,
      };
      const code = await main(args, deps);
      const bytes = out.bytes();
      return {
        code,
        stdout: dec.decode(bytes),
        stderr: err.text(),
        out: bytes,
      };
    },
    async [Symbol.asyncDispose]() {
      await daemon[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One line of error text, no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n").map((l) =>
    l.startsWith('{"event":"error"')
      ? `pigeonhole-cp: ${JSON.parse(l).message}`
      : l
  ).filter((l) =>
    l.startsWith("pigeonhole-cp: ") && !/^pigeonhole-cp: (warning|note)/.test(l)
  );
  const last = lines.at(-1) ?? "";
  assert.match(last, pattern, `stderr was: ${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
}

async function genkey(h: Harness, name = "key.json"): Promise<string> {
  const path = `${h.dir}/${name}`;
  const r = await h.run(["genkey", "--config", h.config, "--out", path]);
  assert.equal(r.code, 0, r.stderr);
  return path;
}

async function writeInput(h: Harness, size: number, name = "input.bin") {
  const data = random(size);
  const path = `${h.dir}/${name}`;
  await Deno.writeFile(path, data);
  return { data, path };
}

async function outDir(h: Harness, name = "out"): Promise<string> {
  const d = `${h.dir}/${name}`;
  await Deno.mkdir(d);
  return d;
}

function countKind(h: Harness, kind: string): number {
  return h.daemon.received.filter((r) => r.kind === kind).length;
}

/** Boxes of a stream, read from the fake replicas from `index` on. */
function boxesOf(
  h: Harness,
  readCap: Uint8Array,
  index: Uint8Array,
  count: number,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at: Uint8Array = index;
  for (let i = 0; i < count; i++) {
    const box = h.daemon.getBox(readCap, at);
    if (box === undefined || box.tombstone) break;
    out.push(box.plaintext);
    at = fakeNextIndex(at)!;
  }
  return out;
}

/** Writes `header ‖ data` in upstream's direct-mode layout. */
function putUpstream(
  h: Harness,
  seed: number,
  header: Uint8Array,
  data: Uint8Array,
  options: { boxes?: number } = {},
): { readCap: Uint8Array; index: Uint8Array } {
  const pair = fakeKeypair(new Uint8Array(32).fill(seed));
  const stream = concatBytes([header, data]);
  let at: Uint8Array = pair.firstMessageIndex;
  let n = 0;
  for (let off = 0; off < stream.length; off += MAX) {
    if (options.boxes !== undefined && n >= options.boxes) break;
    h.daemon.putBox(pair.writeCap, at, stream.subarray(off, off + MAX));
    at = fakeNextIndex(at)!;
    n++;
  }
  return { readCap: pair.readCap, index: pair.firstMessageIndex };
}

// ---------------------------------------------------------------------------
// Format helpers (no daemon)

Deno.test("cborItemLength() measures definite and indefinite items", () => {
  const h = encodeHeader({ name: "a.bin", size: 5, sha256: null });
  assert.equal(
    cborItemLength(concatBytes([h, new Uint8Array([1, 2, 3])])),
    h.length,
  );
  // {_ "name": "ab", "size": 1 } (indefinite map) + one byte of file
  const name = [0x64, 0x6e, 0x61, 0x6d, 0x65];
  const size = [0x64, 0x73, 0x69, 0x7a, 0x65];
  const indefMap = new Uint8Array([
    0xbf,
    ...name,
    0x62,
    0x61,
    0x62,
    ...size,
    0x01,
    0xff,
    0x99,
  ]);
  assert.equal(cborItemLength(indefMap), indefMap.length - 1);
  const d = decodeHeader(indefMap);
  assert.deepEqual(d.header, { name: "ab", size: 1, sha256: null });
  assert.deepEqual([...d.rest], [0x99]);
  // (_ "a", "b") as the name: measured, but refused as a header
  const indefText = new Uint8Array([
    0xa2,
    ...name,
    0x7f,
    0x61,
    0x61,
    0x61,
    0x62,
    0xff,
    ...size,
    0x01,
    0x99,
  ]);
  assert.equal(cborItemLength(indefText), indefText.length - 1);
  assert.throws(() => decodeHeader(indefText), /Cannot read file header/);
  assert.throws(
    () => cborItemLength(new Uint8Array([0xa2, 0x61])),
    ProtocolError,
  );
});

Deno.test("encodeHeader() writes upstream's keys first and decodeHeader() round-trips", () => {
  const digest = new Uint8Array(32).fill(9);
  const bytes = encodeHeader({ name: "f.txt", size: 70000, sha256: digest });
  assert.equal(bytes[0], 0xa3); // map of 3
  // "name" then "size", exactly as serde_cbor writes FileMetaData
  assert.deepEqual(
    [...bytes.subarray(1, 6)],
    [0x64, ...new TextEncoder().encode("name")],
  );
  const upstream = encodeCbor({ name: "f.txt", size: 70000 });
  assert.deepEqual(
    bytes.subarray(0, upstream.length).subarray(1),
    upstream.subarray(1),
  );
  const { header, rest } = decodeHeader(
    concatBytes([bytes, new Uint8Array([7])]),
  );
  assert.deepEqual(header, { name: "f.txt", size: 70000, sha256: digest });
  assert.deepEqual([...rest], [7]);
});

Deno.test("decodeHeader() rejects malformed headers", () => {
  for (
    const bad of [
      new Uint8Array([0x01]),
      encodeCbor({ name: 5, size: 1 }),
      encodeCbor({ name: "x", size: -1 }),
      encodeCbor({ name: "x", size: 1, sha256: new Uint8Array(5) }),
      new Uint8Array([0xa1, 0x61]),
    ]
  ) {
    assert.throws(() => decodeHeader(bad), /Cannot read file header/);
  }
});

Deno.test("nameProblem() applies upstream's file name rules", () => {
  assert.equal(nameProblem("report.pdf"), null);
  assert.equal(nameProblem("çà va.txt"), null);
  for (const bad of ["", ".", "..", "a/b", "a\\b", "a\nb", "x".repeat(256)]) {
    assert.notEqual(nameProblem(bad), null, bad);
  }
});

Deno.test("streamLayout() puts the header and the first bytes in box 0", () => {
  const l = streamLayout(5000, 49, 1549);
  assert.equal(l.firstRoom, 1500);
  assert.equal(l.boxes, 1 + Math.ceil(3500 / 1549));
  assert.equal(l.offset(1), 1500);
  assert.equal(l.length(0), 1500);
  assert.equal(l.length(l.boxes - 1), 3500 - 2 * 1549);
  assert.equal(streamLayout(0, 49, 1549).boxes, 1);
  assert.throws(() => streamLayout(1, 1549, 1549), /no room/);
});

Deno.test("parseCapText() reads upstream genkey output, key files and base64", () => {
  const pair = fakeKeypair(new Uint8Array(32).fill(3));
  const upstream = `Read Capability (share with recipient):\n${
    b64(pair.readCap)
  }\n\nWrite Capability (keep secret):\n${
    b64(pair.writeCap)
  }\n\nFirst Index:\n${b64(pair.firstMessageIndex)}\n`;
  const u = parseCapText(upstream, "write", "write capability", "t");
  assert.deepEqual(u.writeCap?.bytes, pair.writeCap);
  assert.deepEqual(u.readCap?.bytes, pair.readCap);
  assert.deepEqual(u.index?.bytes, pair.firstMessageIndex);
  const json = JSON.stringify({ write_cap: b64(pair.writeCap) });
  assert.deepEqual(
    parseCapText(json, "write", "write capability", "t").writeCap?.bytes,
    pair.writeCap,
  );
  const urlSafe = b64(pair.readCap).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
  assert.deepEqual(
    parseCapText(urlSafe, "read", "read capability", "t").readCap?.bytes,
    pair.readCap,
  );
  assert.throws(
    () => parseCapText(b64(pair.readCap), "write", "write capability", "t"),
    /decodes to 136 bytes.*looks like a read capability/,
  );
});

Deno.test("Progress draws bytes, boxes, rate and ETA on a terminal", () => {
  let t = 0;
  const out: string[] = [];
  const p = new Progress((s) => out.push(s), "tty", () => t);
  p.update({
    phase: "send",
    bytes: 0,
    totalBytes: 4096,
    boxes: 0,
    totalBoxes: 4,
  });
  t = 1000;
  p.update({
    phase: "send",
    bytes: 1024,
    totalBytes: 4096,
    boxes: 1,
    totalBoxes: 4,
  });
  p.finish();
  const text = out.join("");
  // deno-lint-ignore no-control-regex
  assert.match(text, /\r\x1b\[2K/);
  assert.match(
    text,
    /25%\s+1\.0 KiB\/4\.0 KiB\s+1\/4 boxes\s+1\.0 KiB\/s\s+ETA 0:03/,
  );
  assert.ok(text.endsWith("\n"));
});

// ---------------------------------------------------------------------------
// Usage

Deno.test("pigeonhole-cp without arguments prints usage and exits 2", async () => {
  await using h = await harness();
  const r = await h.run([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Usage:/);
});

Deno.test("pigeonhole-cp --help prints usage on stdout and exits 0", async () => {
  await using h = await harness();
  for (const args of [["--help"], ["help"], ["send", "--help"]]) {
    const r = await h.run(args);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Exit codes:/);
  }
});

Deno.test("pigeonhole-cp --version prints the package name and version from deno.json and exits 0", async () => {
  await using h = await harness();
  const pkg = JSON.parse(await Deno.readTextFile("deno.json"));
  const r = await h.run(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${pkg.name} ${pkg.version}\n`);
  assert.equal(r.stderr, "");
});

Deno.test("pigeonhole-cp rejects unknown commands, options and bad values with exit 2", async () => {
  await using h = await harness();
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /Unknown command 'frobnicate'/],
    [["send", "--frob", "x"], /Unknown option '--frob'/],
    [["send", ...h.c, "--window", "0", "x"], /Invalid --window '0'/],
    [["receive", ...h.c, "--timeout", "soon", "-"], /Invalid --timeout 'soon'/],
    [["receive", ...h.c, "--max-size", "big", "-"], /Invalid --max-size 'big'/],
    [["send", ...h.c], /Missing file to send/],
    [["send", ...h.c, "a", "b"], /Too many arguments/],
    [["receive", ...h.c], /Missing destination directory/],
    [["send", ...h.c, "x"], /no write capability/],
    [["receive", ...h.c, "-"], /no read capability/],
    [["genkey", ...h.c.slice(0, 2)], /genkey needs --out FILE/],
    [
      ["send", "--state", "x", "--no-state", "-c", h.config, "f"],
      /exclude each other/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await h.run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertOneLine(r.stderr, pattern);
  }
});

// ---------------------------------------------------------------------------
// genkey

Deno.test("pigeonhole-cp genkey --json --out writes a 0600 key file and prints no write capability", async () => {
  await using h = await harness();
  const out = `${h.dir}/alice.key`;
  const r = await h.run(["genkey", "-c", h.config, "--json", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const printed = JSON.parse(r.stdout);
  const file = JSON.parse(await Deno.readTextFile(out));
  assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
  assert.equal(printed.write_cap, undefined);
  assert.equal(printed.write_cap_file, out);
  assert.equal(printed.read_cap, file.read_cap);
  assert.equal(printed.first_index, file.first_index);
  assert.match(printed.share, /^kpch1/);
  assert.equal(atob(file.write_cap).length, 168);
  assert.ok(!r.stdout.includes(file.write_cap));
  assert.ok(!r.stderr.includes(file.write_cap));
});

Deno.test("pigeonhole-cp genkey --print-write-cap keeps upstream's labels", async () => {
  await using h = await harness();
  const r = await h.run(["genkey", "-c", h.config, "--print-write-cap"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const after = (label: string) =>
    lines[lines.findIndex((l) => l.startsWith(label)) + 1]!;
  assert.equal(atob(after("Read Capability")).length, 136);
  assert.equal(atob(after("Write Capability")).length, 168);
  assert.equal(atob(after("First Index")).length, 104);
});

Deno.test("pigeonhole-cp genkey never overwrites a key file (exit 9)", async () => {
  await using h = await harness();
  const out = `${h.dir}/k.json`;
  await Deno.writeTextFile(out, "precious");
  const r = await h.run(["genkey", "-c", h.config, "--out", out]);
  assert.equal(r.code, 9);
  assertOneLine(r.stderr, /already exists/);
  assert.equal(await Deno.readTextFile(out), "precious");
});

// ---------------------------------------------------------------------------
// send + receive

Deno.test("pigeonhole-cp send (copy) and receive round-trip a multi-box file", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { data, path } = await writeInput(h, 20_000, "report.bin");
  const s = await h.run(["send", ...h.c, "-w", `file:${key}`, path]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(
    s.stdout,
    /^sent 20000 bytes in \d+ box\(es\) \(copy\) in [\d.]+s: [\d.]+ boxes\/s, [\d.]+ KiB\/s\n$/,
  );
  assert.equal(countKind(h, "start_resending_copy_command"), 1);
  const dest = await outDir(h);
  const r = await h.run(["receive", ...h.c, "-r", `file:${key}`, dest]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `received 20000 bytes in 13 box(es) -> ${await Deno.realPath(
      dest,
    )}/report.bin\n`,
  );
  assert.deepEqual(await Deno.readFile(`${dest}/report.bin`), data);
  assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name), [
    "report.bin",
  ]);
});

Deno.test("CallTimings sums records per kind: failures, median, max, re-sends, costliest first", () => {
  const t = new CallTimings();
  assert.equal(t.table(), "pigeonhole-cp: timings: no daemon calls\n");
  const rec = (
    kind: CallRecord["kind"],
    durationMs: number,
    outcome: CallRecord["outcome"] = "ok",
    resent = 0,
  ) => t.record({ kind, durationMs, outcome, resent, errorCode: null });
  rec("encrypt_write", 10);
  rec("encrypt_write", 30);
  rec("start_resending_encrypted_message", 1000);
  rec("start_resending_encrypted_message", 4000, "error", 1);
  rec("start_resending_encrypted_message", 2000, "aborted", 2);
  assert.deepEqual(t.rows(), [
    {
      kind: "start_resending_encrypted_message",
      calls: 3,
      failed: 2,
      medianMs: 2000,
      maxMs: 4000,
      resent: 3,
    },
    {
      kind: "encrypt_write",
      calls: 2,
      failed: 0,
      medianMs: 20,
      maxMs: 30,
      resent: 0,
    },
  ]);
  assert.match(
    t.table(),
    /start_resending_encrypted_message +3 +2 +2\.00 s +4\.00 s +3\n/,
  );
});

Deno.test("pigeonhole-cp --timings prints the time per daemon call, as a table or a JSON line", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 5_000, "t.bin");
  const s = await h.run([
    "send",
    ...h.c,
    "-q",
    "--timings",
    "--stream",
    "-w",
    `file:${key}`,
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const boxes = countKind(h, "start_resending_encrypted_message");
  assert.ok(boxes >= 4, `${boxes} writes`);
  const lines = s.stderr.split("\n");
  assert.equal(lines[0], "pigeonhole-cp: time per daemon call");
  assert.match(lines[1]!, /^ {2}kind +calls +failed +median +max +re-sent$/);
  const writes = lines.find((l) =>
    l.startsWith("  start_resending_encrypted_message ")
  );
  assert.match(
    writes ?? "(no row)",
    new RegExp(
      `^  start_resending_encrypted_message +${boxes} +0 +\\d+ ms +\\d+ ms +0$`,
    ),
  );
  assert.ok(lines.some((l) => l.startsWith("  encrypt_write ")), s.stderr);
  // --json: one JSON line at the end of stderr, after the progress events.
  const dest = await outDir(h);
  const r = await h.run([
    "receive",
    ...h.c,
    "--json",
    "--timings",
    "-r",
    `file:${key}`,
    dest,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const last = JSON.parse(r.stderr.trimEnd().split("\n").at(-1)!);
  assert.equal(last.event, "timings");
  const reads = last.calls.find((c: { kind: string }) =>
    c.kind === "start_resending_encrypted_message"
  );
  assert.equal(reads.calls, boxes);
  assert.equal(reads.failed, 0);
  assert.ok(reads.median_ms >= 0 && reads.max_ms >= reads.median_ms);
});

Deno.test("pigeonhole-cp send --stream keeps several boxes in flight, within the window", async () => {
  await using h = await harness();
  let inflight = 0;
  let most = 0;
  h.daemon.script("start_resending_encrypted_message", async (req) => {
    if (req.body["write_cap"] === null) return "default" as const;
    inflight++;
    most = Math.max(most, inflight);
    await new Promise((r) => setTimeout(r, 50));
    inflight--;
    return "default" as const;
  });
  const key = await genkey(h);
  const { data, path } = await writeInput(h, 30_000);
  const s = await h.run([
    "send",
    ...h.c,
    "-w",
    `file:${key}`,
    "--stream",
    "--window",
    "4",
    "--json",
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const result = JSON.parse(s.stdout);
  assert.equal(result.mode, "stream");
  assert.equal(result.boxes, Math.ceil((30_000 + 48 + 44) / MAX));
  assert.ok(most >= 2 && most <= 4, `max in flight ${most}`);
  const dest = await outDir(h);
  const r = await h.run([
    "receive",
    ...h.c,
    "--json",
    "-r",
    `file:${key}`,
    dest,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).verified, "sha256");
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
});

Deno.test("pigeonhole-cp send --stream confirms the first box only, every box with --confirm-all", async () => {
  await using h = await harness();
  const confirmed = (): boolean[] =>
    h.daemon.received
      .filter((r) =>
        r.kind === "start_resending_encrypted_message" &&
        r.body["write_cap"] !== null
      )
      .map((r) => r.body["no_idempotent_box_already_exists"] === true);
  const { path } = await writeInput(h, 8000);
  const key = await genkey(h);
  const s = await h.run([
    "send",
    ...h.c,
    "-w",
    `file:${key}`,
    "--stream",
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const first = confirmed();
  assert.ok(first.length >= 5, `${first.length} writes`);
  assert.deepEqual(first, [true, ...first.slice(1).map(() => false)]);
  const key2 = await genkey(h, "k2.json");
  const s2 = await h.run([
    "send",
    ...h.c,
    "-w",
    `file:${key2}`,
    "--stream",
    "--confirm-all",
    path,
  ]);
  assert.equal(s2.code, 0, s2.stderr);
  const all = confirmed().slice(first.length);
  assert.equal(all.length, first.length);
  assert.ok(all.every((c) => c), "every box confirmed");
  const u = await h.run([
    "send",
    ...h.c,
    "-w",
    `file:${key2}`,
    "--confirm-all",
    path,
  ]);
  assert.equal(u.code, 2);
  assertOneLine(u.stderr, /--confirm-all.*--stream/);
});

Deno.test("pigeonhole-cp send - reads stdin and receive - writes stdout, in both modes", async () => {
  await using h = await harness();
  for (const mode of [[], ["--stream"]]) {
    const key = await genkey(h, `k${mode.length}.json`);
    const data = random(9000);
    const s = await h.run(
      [
        "send",
        ...h.c,
        "-w",
        `file:${key}`,
        ...mode,
        "--name",
        "piped.bin",
        "-",
      ],
      { stdin: data },
    );
    assert.equal(s.code, 0, s.stderr);
    const r = await h.run(["receive", ...h.c, "-r", `file:${key}`, "-"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.out, data);
    assert.match(r.stderr, /received 9000 bytes in \d+ box\(es\) -> -/);
  }
});

Deno.test("pigeonhole-cp reads capabilities from env:, the default variables and stdin", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const k = JSON.parse(await Deno.readTextFile(key));
  const { data, path } = await writeInput(h, 3000);
  const s = await h.run(["send", ...h.c, "-w", "env:MY_KEY", path], {
    env: { MY_KEY: k.write_cap, PIGEONHOLE_INDEX: k.first_index },
  });
  assert.equal(s.code, 0, s.stderr);
  const dest = await outDir(h);
  const r = await h.run(["receive", ...h.c, "-r", "-", dest], {
    stdin: k.share,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  const dest2 = await outDir(h, "out2");
  const r2 = await h.run(["receive", ...h.c, dest2], {
    env: { PIGEONHOLE_READ_CAP: k.read_cap, PIGEONHOLE_INDEX: k.first_index },
  });
  assert.equal(r2.code, 0, r2.stderr);
  // A write capability on argv works but warns.
  const key2 = JSON.parse(await Deno.readTextFile(await genkey(h, "k2.json")));
  const s2 = await h.run([
    "send",
    ...h.c,
    "-w",
    key2.write_cap,
    "-i",
    key2.first_index,
    path,
  ]);
  assert.equal(s2.code, 0, s2.stderr);
  assert.match(s2.stderr, /warning: a write capability on the command line/);
});

Deno.test("pigeonhole-cp send: the stream layout is upstream's (header in box 0, full boxes after)", async () => {
  await using h = await harness();
  const pair = fakeKeypair(new Uint8Array(32).fill(11));
  const { data, path } = await writeInput(h, 5000, "u.bin");
  const s = await h.run([
    "send",
    ...h.c,
    "--stream",
    "-w",
    b64(pair.writeCap),
    "-i",
    b64(pair.firstMessageIndex),
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const boxes = boxesOf(h, pair.readCap, pair.firstMessageIndex, 10);
  assert.equal(boxes.length, 4);
  assert.deepEqual(boxes.slice(0, 3).map((b) => b.length), [MAX, MAX, MAX]);
  // Upstream decodes one CBOR value {name, size, …} and ignores unknown keys.
  const headerLength = cborItemLength(boxes[0]!);
  const { header } = decodeHeader(boxes[0]!);
  assert.equal(header.name, "u.bin");
  assert.equal(header.size, 5000);
  assert.deepEqual(header.sha256, await sha256(data));
  assert.deepEqual(concatBytes(boxes).subarray(headerLength), data);
});

Deno.test("pigeonhole-cp send: copy mode writes header ‖ file into the destination boxes", async () => {
  await using h = await harness();
  const pair = fakeKeypair(new Uint8Array(32).fill(12));
  const { data, path } = await writeInput(h, 4096, "c.bin");
  const s = await h.run([
    "send",
    ...h.c,
    "-w",
    b64(pair.writeCap),
    "-i",
    b64(pair.firstMessageIndex),
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const all = concatBytes(boxesOf(h, pair.readCap, pair.firstMessageIndex, 10));
  const end = cborItemLength(all);
  assert.deepEqual(decodeHeader(all).header.size, 4096);
  assert.deepEqual(all.subarray(end), data);
});

Deno.test("pigeonhole-cp receive takes a file sent by upstream (no digest) and checks the size", async () => {
  await using h = await harness();
  const data = random(4096);
  const { readCap, index } = putUpstream(
    h,
    21,
    encodeCbor({ name: "upstream.bin", size: 4096 }),
    data,
  );
  const dest = await outDir(h);
  const r = await h.run([
    "receive",
    ...h.c,
    "--json",
    "-r",
    b64(readCap),
    "-i",
    b64(index),
    dest,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.verified, "size");
  assert.equal(result.boxes, 3);
  assert.match(r.stderr, /announced no SHA-256/);
  assert.deepEqual(await Deno.readFile(`${dest}/upstream.bin`), data);
});

Deno.test("pigeonhole-cp receive ignores bytes after the announced size", async () => {
  await using h = await harness();
  const data = random(100);
  const { readCap, index } = putUpstream(
    h,
    22,
    encodeHeader({ name: "t.bin", size: 100, sha256: await sha256(data) }),
    concatBytes([data, new Uint8Array([1, 2, 3])]),
  );
  const r = await h.run([
    "receive",
    ...h.c,
    "-r",
    b64(readCap),
    "-i",
    b64(index),
    "-",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.out, data);
});

// ---------------------------------------------------------------------------
// Integrity and conflicts

Deno.test("pigeonhole-cp receive exits 7 when the SHA-256 does not match, and keeps nothing", async () => {
  await using h = await harness();
  const data = random(3000);
  const { readCap, index } = putUpstream(
    h,
    31,
    encodeHeader({ name: "bad.bin", size: 3000, sha256: new Uint8Array(32) }),
    data,
  );
  const dest = await outDir(h);
  const r = await h.run([
    "receive",
    ...h.c,
    "-r",
    b64(readCap),
    "-i",
    b64(index),
    dest,
  ]);
  assert.equal(r.code, 7);
  assertOneLine(r.stderr, /Integrity check failed for 'bad.bin': SHA-256 is/);
  assert.deepEqual([...Deno.readDirSync(dest)], []);
});

Deno.test("pigeonhole-cp receive exits 7 on an unsafe name, a malformed header, a size over --max-size or a deleted box", async () => {
  await using h = await harness();
  const cases: [Uint8Array, Uint8Array, string[], RegExp][] = [
    [
      encodeCbor({ name: "../evil", size: 1 }),
      new Uint8Array([1]),
      [],
      /file name "..\/evil" is unsafe: it contains a path separator/,
    ],
    [new Uint8Array([0x82, 1, 2]), new Uint8Array(0), [], /not a map/],
    [
      encodeCbor({ name: "big", size: 10_000 }),
      new Uint8Array(10),
      ["--max-size", "1KiB"],
      /announced size 10000 exceeds --max-size 1024/,
    ],
  ];
  let seed = 40;
  for (const [header, data, extra, pattern] of cases) {
    const { readCap, index } = putUpstream(h, seed++, header, data);
    const r = await h.run([
      "receive",
      ...h.c,
      ...extra,
      "-r",
      b64(readCap),
      "-i",
      b64(index),
      "-",
    ]);
    assert.equal(r.code, 7, r.stderr);
    assertOneLine(r.stderr, pattern);
  }
  // A tombstone in the middle of the file.
  const pair = fakeKeypair(new Uint8Array(32).fill(49));
  const header = encodeCbor({ name: "t", size: 5000 });
  h.daemon.putBox(
    pair.writeCap,
    pair.firstMessageIndex,
    concatBytes([header, random(MAX - header.length)]),
  );
  h.daemon.putBox(
    pair.writeCap,
    fakeNextIndex(pair.firstMessageIndex)!,
    new Uint8Array(0),
  );
  const r = await h.run([
    "receive",
    ...h.c,
    "-r",
    b64(pair.readCap),
    "-i",
    b64(pair.firstMessageIndex),
    "-",
  ]);
  assert.equal(r.code, 7, r.stderr);
  assertOneLine(r.stderr, /box 1 of the transfer was deleted/);
});

Deno.test("pigeonhole-cp receive exits 9 before downloading when the target exists", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 5000, "same.bin");
  assert.equal(
    (await h.run(["send", ...h.c, "-w", `file:${key}`, path])).code,
    0,
  );
  const dest = await outDir(h);
  await Deno.writeTextFile(`${dest}/same.bin`, "mine");
  const reads = countKind(h, "start_resending_encrypted_message");
  const r = await h.run(["receive", ...h.c, "-r", `file:${key}`, dest]);
  assert.equal(r.code, 9);
  assertOneLine(r.stderr, /already exists/);
  assert.equal(countKind(h, "start_resending_encrypted_message"), reads + 1);
  assert.equal(await Deno.readTextFile(`${dest}/same.bin`), "mine");
});

Deno.test("pigeonhole-cp send exits 9 when the channel index already holds other data", async () => {
  await using h = await harness();
  for (const mode of [["--stream"], []]) {
    const key = await genkey(h, `k${mode.length}.json`);
    const a = await writeInput(h, 3000, "a.bin");
    const b = await writeInput(h, 3000, "b.bin");
    const first = await h.run([
      "send",
      ...h.c,
      ...mode,
      "-w",
      `file:${key}`,
      a.path,
    ]);
    assert.equal(first.code, 0, first.stderr);
    const second = await h.run([
      "send",
      "--config",
      h.config,
      ...mode,
      "--no-state",
      "-w",
      `file:${key}`,
      b.path,
    ]);
    assert.equal(second.code, 9, second.stderr);
    assertOneLine(second.stderr, /already holds other data at this index/);
  }
});

Deno.test("pigeonhole-cp send exits 8 above the copy limit and suggests --stream", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const path = `${h.dir}/huge.bin`;
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, 10 * 1024 * 1024);
  const r = await h.run(["send", ...h.c, "-w", `file:${key}`, path]);
  assert.equal(r.code, 8);
  assertOneLine(
    r.stderr,
    /exceeds the copy command limit .*rerun with --stream/,
  );
  const piped = await h.run(["send", ...h.c, "-w", `file:${key}`, "-"], {
    stdin: new Uint8Array(10 * 1024 * 1024),
  });
  assert.equal(piped.code, 8);
});

// ---------------------------------------------------------------------------
// Bad inputs

Deno.test("pigeonhole-cp exits 3 for a missing input file or destination", async () => {
  await using h = await harness();
  const key = await genkey(h);
  let r = await h.run([
    "send",
    ...h.c,
    "-w",
    `file:${key}`,
    `${h.dir}/nope.bin`,
  ]);
  assert.equal(r.code, 3);
  assertOneLine(
    r.stderr,
    /Cannot send '.*nope.bin': no such file or directory/,
  );
  r = await h.run(["send", ...h.c, "-w", `file:${key}`, h.dir]);
  assert.equal(r.code, 3);
  assertOneLine(r.stderr, /not a regular file/);
  r = await h.run(["receive", ...h.c, "-r", `file:${key}`, `${h.dir}/nodir`]);
  assert.equal(r.code, 3);
  assertOneLine(r.stderr, /Cannot receive into '.*nodir': no such file/);
  await Deno.writeTextFile(`${h.dir}/plain`, "x");
  r = await h.run(["receive", ...h.c, "-r", `file:${key}`, `${h.dir}/plain`]);
  assert.equal(r.code, 3);
  assertOneLine(r.stderr, /not a directory/);
});

Deno.test("pigeonhole-cp exits 4 for unreadable, malformed or wrong-length capabilities", async () => {
  await using h = await harness();
  const { path } = await writeInput(h, 10);
  const pair = fakeKeypair(new Uint8Array(32).fill(5));
  const cases: [string[], RegExp][] = [
    [
      ["-w", `file:${h.dir}/missing.key`],
      /Cannot read write capability from file '.*missing.key': no such file/,
    ],
    [["-w", "env:NOT_SET"], /environment variable 'NOT_SET' is not set/],
    [["-w", "not!base64"], /not base64/],
    [["-w", "alice.key"], /to read a file, write 'file:alice.key'/],
    [["-w", btoa("short")], /decodes to 5 bytes, a write capability has 168/],
    [["-w", b64(pair.readCap)], /this looks like a read capability/],
    [["-w", b64(pair.writeCap)], /no start index/],
    [
      ["-w", b64(pair.writeCap), "-i", b64(pair.writeCap)],
      /decodes to 168 bytes, a index has 104|index/,
    ],
    [["-w", "{oops"], /not valid JSON/],
  ];
  for (const [caps, pattern] of cases) {
    const r = await h.run(["send", ...h.c, ...caps, path]);
    assert.equal(r.code, 4, `${caps.join(" ")}: ${r.stderr}`);
    assertOneLine(r.stderr, pattern);
  }
  const r = await h.run(["receive", ...h.c, "-r", "kpch1AAAA", "-"]);
  assert.equal(r.code, 4);
  assertOneLine(r.stderr, /Cannot parse share text/);
  const both = await h.run(["send", ...h.c, "-w", "-", "-"], { stdin: "x" });
  assert.equal(both.code, 4);
});

Deno.test("pigeonhole-cp exits 2 when stdin would hold both the file and a capability", async () => {
  await using h = await harness();
  const key = JSON.parse(await Deno.readTextFile(await genkey(h)));
  const r = await h.run(["send", ...h.c, "-w", "-", "-"], {
    stdin: JSON.stringify(key),
  });
  assert.equal(r.code, 2);
  assertOneLine(r.stderr, /Standard input cannot hold both/);
});

Deno.test("pigeonhole-cp exits 5 for a missing, invalid or absent config", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const bad = `${h.dir}/bad.toml`;
  await Deno.writeTextFile(bad, "[Dial\nAddress = 1");
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["-c", `${h.dir}/none.toml`], {}, /Cannot load config '.*none.toml'/],
    [["-c", bad], {}, /config/i],
    [[], { KATZENPOST_THINCLIENT_CONFIG: bad }, /config/i],
  ];
  // The last fallback is ./thinclient.toml in the working directory.
  if (!(await Deno.stat("thinclient.toml").then(() => true, () => false))) {
    cases.push([[], {}, /No thinclient.toml: pass --config PATH/]);
  }
  for (const [cfg, env, pattern] of cases) {
    const r = await h.run(
      ["genkey", ...cfg, "--out", `${h.dir}/x.json`],
      { env },
    );
    assert.equal(r.code, 5, `${cfg.join(" ")}: ${r.stderr}`);
    assertOneLine(r.stderr, pattern);
    const s = await h.run(
      ["send", ...cfg, "--no-state", "-w", `file:${key}`, key],
      { env },
    );
    assert.equal(s.code, 5, s.stderr);
  }
});

Deno.test("pigeonhole-cp exits 6 when the daemon is unreachable", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 10);
  const down = await FakeDaemon.start({ transport: "tcp" });
  const address = down.address;
  await down[Symbol.asyncDispose]();
  const cfg = `${h.dir}/down.toml`;
  await Deno.writeTextFile(cfg, `[Dial.Tcp]\nAddress = "${address}"\n`);
  for (
    const args of [
      ["genkey", "-c", cfg, "--out", `${h.dir}/y.json`],
      ["send", "-c", cfg, "--no-state", "-w", `file:${key}`, path],
      ["receive", "-c", cfg, "--no-state", "-r", `file:${key}`, "-"],
    ]
  ) {
    const r = await h.run(args);
    assert.equal(r.code, 6, `${args[0]}: ${r.stderr}`);
    assertOneLine(r.stderr, /Cannot dial daemon .*is kpclientd running\?/);
  }
});

// ---------------------------------------------------------------------------
// Timeouts, cancellation, resume

Deno.test("pigeonhole-cp receive --timeout exits 124 when nothing was sent", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const r = await h.run([
    "receive",
    ...h.c,
    "--timeout",
    "200ms",
    "-r",
    `file:${key}`,
    "-",
  ]);
  assert.equal(r.code, 124);
  assertOneLine(r.stderr, /Timed out/);
  // Nothing is left waiting in the daemon: a read in flight was cancelled,
  // or the session closed (which ends its reads).
  await Promise.any([
    h.daemon.waitForRequest("cancel_resending_encrypted_message", {
      timeoutMs: 10_000,
    }),
    h.daemon.waitForRequest("thin_close", { timeoutMs: 10_000 }),
  ]);
});

Deno.test("pigeonhole-cp receive --idle-timeout exits 124 when the sender stops, and resumes later", async () => {
  await using h = await harness();
  const data = random(6000);
  const header = encodeHeader({
    name: "slow.bin",
    size: 6000,
    sha256: await sha256(data),
  });
  const pair = fakeKeypair(new Uint8Array(32).fill(61));
  const stream = concatBytes([header, data]);
  const idx = (k: number) => fakeNextIndex(pair.firstMessageIndex, k)!;
  for (let k = 0; k < 2; k++) {
    h.daemon.putBox(
      pair.writeCap,
      idx(k),
      stream.subarray(k * MAX, (k + 1) * MAX),
    );
  }
  const dest = await outDir(h);
  const args = [
    "receive",
    ...h.c,
    "--json",
    "-r",
    b64(pair.readCap),
    "-i",
    b64(pair.firstMessageIndex),
    dest,
  ];
  const r = await h.run([...args, "--idle-timeout", "300ms"]);
  assert.equal(r.code, 124, r.stderr);
  assert.match(r.stderr, /no box arrived for 0.3 s after box 2/);
  assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name).length, 1);
  for (let k = 2; k * MAX < stream.length; k++) {
    h.daemon.putBox(
      pair.writeCap,
      idx(k),
      stream.subarray(k * MAX, (k + 1) * MAX),
    );
  }
  const readsBefore = countKind(h, "encrypt_read");
  const again = await h.run(args);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).resumed, true);
  assert.equal(countKind(h, "encrypt_read") - readsBefore, 2); // boxes 2 and 3
  assert.deepEqual(await Deno.readFile(`${dest}/slow.bin`), data);
  assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name), [
    "slow.bin",
  ]);
});

Deno.test("pigeonhole-cp send exits 130 on cancel and the daemon stops resending", async () => {
  await using h = await harness({ arqDelayMs: 60_000 });
  const { path } = await writeInput(h, 8000);
  for (const mode of [["--stream"], []]) {
    const key = await genkey(h, `k${mode.length}.json`);
    const ctl = new AbortController();
    const running = h.run(
      ["send", ...h.c, ...mode, "-w", `file:${key}`, path],
      {
        signal: ctl.signal,
      },
    );
    await h.daemon.waitForRequest("start_resending_encrypted_message");
    ctl.abort(new DOMException("Cancelled", "AbortError"));
    const r = await running;
    assert.equal(r.code, 130, r.stderr);
    assertOneLine(r.stderr, /^pigeonhole-cp: Cancelled$/);
    await h.daemon.waitForRequest("cancel_resending_encrypted_message");
  }
});

/**
 * Makes the `n`-th box write (`write_cap`) or read (`read_cap`) fail with
 * error 4; returns how many have been seen.
 */
function failNth(
  h: Harness,
  field: "write_cap" | "read_cap",
  n: number,
): () => number {
  let seen = 0;
  h.daemon.script("start_resending_encrypted_message", (req) => {
    if (req.body[field] === null) return "default";
    return ++seen === n ? 4 : "default";
  });
  return () => seen;
}

/** A stream send of 20,000 bytes that fails at its 6th box write. */
async function interruptedSend(h: Harness): Promise<
  { key: string; data: Uint8Array; args: string[]; stderr: string }
> {
  const key = await genkey(h);
  const { data, path } = await writeInput(h, 20_000);
  failNth(h, "write_cap", 6);
  const args = [
    "send",
    ...h.c,
    ...["--stream", "--window", "2", "--json", "-w", `file:${key}`, path],
  ];
  const first = await h.run(args);
  assert.equal(first.code, 1, first.stderr);
  return { key, data, args, stderr: first.stderr };
}

/** Receives the file sent with `key` into a new directory and compares it. */
async function receivedMatches(
  h: Harness,
  key: string,
  data: Uint8Array,
): Promise<void> {
  const dest = await outDir(h);
  const r = await h.run(["receive", ...h.c, "-r", `file:${key}`, dest]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
}

Deno.test("pigeonhole-cp send --stream resumes an interrupted send where it stopped", async () => {
  await using h = await harness();
  const { key, data, args, stderr } = await interruptedSend(h);
  assertOneLine(stderr, /Replica answered|Daemon refused/);
  const before = countKind(h, "encrypt_write");
  const second = await h.run(args);
  assert.equal(second.code, 0, second.stderr);
  const result = JSON.parse(second.stdout);
  assert.equal(result.resumed, true);
  const total = result.boxes as number;
  assert.ok(countKind(h, "encrypt_write") - before < total - 3);
  await receivedMatches(h, key, data);
});

Deno.test("pigeonhole-cp send (copy) resumes its upload and refuses another file without --fresh", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { data, path } = await writeInput(h, 20_000);
  let writes = 0;
  h.daemon.script("start_resending_encrypted_message", (req) => {
    if (req.body["write_cap"] === null) return "default";
    return ++writes === 8 ? 4 : "default";
  });
  const args = ["send", ...h.c, "--window", "1", "--json", "-w", `file:${key}`];
  const first = await h.run([...args, path]);
  assert.equal(first.code, 1, first.stderr);
  const other = await writeInput(h, 100, "other.bin");
  const refused = await h.run([...args, other.path]);
  assert.equal(refused.code, 9);
  assertOneLine(
    refused.stderr,
    /unfinished copy send of another file .*--fresh/,
  );
  const before = countKind(h, "create_courier_envelopes_from_payload");
  const second = await h.run([...args, path]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(JSON.parse(second.stdout).resumed, true);
  assert.equal(countKind(h, "create_courier_envelopes_from_payload"), before);
  await receivedMatches(h, key, data);
});

Deno.test("pigeonhole-cp receive resumes from its part file after a failure", async () => {
  await using h = await harness();
  const { data, dest, args, part, reads } = await interruptedReceive(h);
  assert.match(part, /\/\.pigeonhole-cp-[0-9a-f]{16}\.part$/);
  assert.equal((await Deno.stat(part)).mode! & 0o777, 0o600);
  const second = await h.run(args);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(JSON.parse(second.stdout).resumed, true);
  assert.ok(reads() < 9 + 20, `reads ${reads()}`);
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name), [
    "input.bin",
  ]);
});

// ---------------------------------------------------------------------------
// Progress output

Deno.test("pigeonhole-cp --json prints progress events on stderr and the result on stdout", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 10_000);
  const s = await h.run([
    "send",
    ...h.c,
    "--stream",
    "--json",
    "-w",
    `file:${key}`,
    path,
  ]);
  assert.equal(s.code, 0, s.stderr);
  const events = s.stderr.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(events.every((e) => e.event === "progress"));
  const last = events.at(-1);
  assert.equal(last.bytes, 10_000);
  assert.equal(last.total_boxes, last.boxes);
  const result = JSON.parse(s.stdout);
  assert.equal(result.event, "done");
  assert.equal(result.bytes, 10_000);
  assert.match(result.sha256, /^[0-9a-f]{64}$/);
  assert.equal(atob(result.next_index).length, 104);
  const bad = await h.run([
    "send",
    ...h.c,
    "--json",
    "-w",
    `file:${key}`,
    "nope",
  ]);
  assert.deepEqual(JSON.parse(bad.stderr.trim()), {
    event: "error",
    exit_code: 3,
    message: "Cannot send 'nope': no such file or directory",
  });
});

Deno.test("pigeonhole-cp draws a progress bar on a terminal and plain lines otherwise", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 12_000);
  const tty = await h.run([
    "send",
    ...h.c,
    "--stream",
    "-w",
    `file:${key}`,
    path,
  ], {
    isTerminal: true,
  });
  assert.equal(tty.code, 0, tty.stderr);
  // deno-lint-ignore no-control-regex
  assert.match(tty.stderr, /\r\x1b\[2Ksend\s+\[#+\]\s+100%.*ETA/);
  const key2 = await genkey(h, "k2.json");
  const plain = await h.run([
    "send",
    ...h.c,
    "--stream",
    "-w",
    `file:${key2}`,
    path,
  ]);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(plain.stderr, /\x1b/);
  const lines = plain.stderr.trim().split("\n");
  assert.ok(lines.length <= 6, plain.stderr);
  const quiet = await h.run([
    "send",
    ...h.c,
    "-q",
    "--stream",
    "-w",
    `file:${await genkey(h, "k3.json")}`,
    path,
  ]);
  assert.equal(quiet.stderr, "");
});

// ---------------------------------------------------------------------------
// As a real process

const ROOT = new URL("..", import.meta.url).pathname;

function spawnCli(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}cli/pigeonhole_cp.ts`,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

Deno.test("pigeonhole-cp as a process: SIGINT cancels in the daemon and exits 130", async () => {
  await using h = await harness({ arqDelayMs: 60_000 });
  const key = await genkey(h);
  const { path } = await writeInput(h, 8000);
  const child = spawnCli([
    "send",
    ...h.c,
    "--stream",
    "-w",
    `file:${key}`,
    path,
  ]);
  await h.daemon.waitForRequest("start_resending_encrypted_message", {
    timeoutMs: 60_000,
  });
  child.kill("SIGINT");
  const out = await child.output();
  const stderr = dec.decode(out.stderr);
  assert.equal(out.code, 130, stderr);
  assertOneLine(stderr, /^pigeonhole-cp: Cancelled$/);
  await h.daemon.waitForRequest("cancel_resending_encrypted_message");
});

Deno.test("pigeonhole-cp as a process: a bad input exits with its code and one line", async () => {
  const child = spawnCli(["send", "-c", "/nonexistent/thinclient.toml", "x"]);
  const out = await child.output();
  const stderr = dec.decode(out.stderr);
  assert.equal(out.code, 5, stderr);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(stderr, /^pigeonhole-cp: Cannot load config/);
});

Deno.test("pigeonhole-cp sends and receives an empty file in both modes", async () => {
  await using h = await harness();
  const path = `${h.dir}/empty`;
  await Deno.writeFile(path, new Uint8Array(0));
  for (const mode of [[], ["--stream"]]) {
    const key = await genkey(h, `k${mode.length}.json`);
    const s = await h.run(["send", ...h.c, ...mode, "-w", `file:${key}`, path]);
    assert.equal(s.code, 0, s.stderr);
    const dest = await outDir(h, `out${mode.length}`);
    const r = await h.run(["receive", ...h.c, "-r", `file:${key}`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^received 0 bytes in 1 box\(es\)/);
    assert.equal((await Deno.stat(`${dest}/empty`)).size, 0);
  }
});

// ---------------------------------------------------------------------------
// Hostile inputs: foreign state files, tampered records, links, a full disk

/** SHA-256 of a file, hex. */
async function fileDigest(path: string): Promise<string> {
  return Array.from(
    await sha256(await Deno.readFile(path)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Rewrites every saved record of a state file with `edit`. */
function editRecords(
  state: string,
  edit: (record: Record<string, unknown>) => void,
): void {
  const db = new DatabaseSync(state);
  try {
    const rows = db.prepare("SELECT key, record FROM pigeonhole_cp_transfers")
      .all() as { key: string; record: Uint8Array }[];
    assert.ok(rows.length > 0, "a saved record");
    for (const row of rows) {
      const record = decodeCbor(row.record) as Record<string, unknown>;
      edit(record);
      db.prepare("UPDATE pigeonhole_cp_transfers SET record = ? WHERE key = ?")
        .run(encodeCbor(record), row.key);
    }
  } finally {
    db.close();
  }
}

/** Sends 30,000 bytes, then starts a receive that fails at its 9th read. */
async function interruptedReceive(h: Harness): Promise<
  {
    data: Uint8Array;
    dest: string;
    args: string[];
    part: string;
    reads: () => number;
  }
> {
  const key = await genkey(h);
  const { data, path } = await writeInput(h, 30_000);
  const send = ["send", ...h.c, "--stream", "-w", `file:${key}`, path];
  const sent = await h.run(send);
  assert.equal(sent.code, 0, sent.stderr);
  const reads = failNth(h, "read_cap", 9);
  const dest = await outDir(h);
  const args = [
    "receive",
    ...h.c,
    ...["--window", "1", "--json", "-r", `file:${key}`, dest],
  ];
  const first = await h.run(args);
  assert.equal(first.code, 1, first.stderr);
  const parts = [...Deno.readDirSync(dest)].map((e) => `${dest}/${e.name}`);
  assert.equal(parts.length, 1);
  return { data, dest, args, part: parts[0]!, reads };
}

Deno.test("pigeonhole-cp refuses a --state file that is not its own and leaves it byte-identical", async () => {
  await using h = await harness();
  const key = await genkey(h);
  const { path } = await writeInput(h, 100);
  const foreign = `${h.dir}/app.db`;
  const db = new DatabaseSync(foreign);
  db.exec("CREATE TABLE settings (k TEXT, v TEXT)");
  db.exec("INSERT INTO settings VALUES ('theme', 'dark')");
  db.close();
  const notSqlite = `${h.dir}/notes.txt`;
  await Deno.writeTextFile(notSqlite, "remember the milk\n".repeat(300));
  for (
    const [state, re] of [
      [
        foreign,
        /it is not a state file of this library \(application_id 0x00000000, expected 0x6b706370; .*\); it was left unchanged$/,
      ],
      [notSqlite, /it is not an SQLite database/],
    ] as const
  ) {
    const before = await fileDigest(state);
    const r = await h.run([
      "send",
      "--config",
      h.config,
      "--state",
      state,
      "-w",
      `file:${key}`,
      path,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assertOneLine(r.stderr, new RegExp(`Cannot open state file '${state}': `));
    assertOneLine(r.stderr, re);
    assert.equal(await fileDigest(state), before, `${state} unchanged`);
    assert.equal(countKind(h, "encrypt_write"), 0, "nothing was sent");
  }
});

Deno.test("pigeonhole-cp receive never follows a saved record to another file", async () => {
  await using h = await harness();
  const { data, dest, args, part } = await interruptedReceive(h);
  const victim = `${h.dir}/victim.txt`;
  await Deno.writeTextFile(victim, "precious\n");
  // A record naming another file: resuming would truncate it, starting
  // over would delete it. Neither may happen.
  editRecords(h.state, (r) => {
    r["part"] = victim;
    r["bytes"] = 0;
  });
  const r = await h.run(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /saved progress .* is unreadable; starting over/);
  assert.equal(await Deno.readTextFile(victim), "precious\n");
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  assert.throws(() => Deno.statSync(part), Deno.errors.NotFound);
});

Deno.test("pigeonhole-cp receive starts over on a saved record of the wrong shape", async () => {
  for (
    const edit of [
      (r: Record<string, unknown>) => r["nextIndex"] = new Uint8Array(5),
      (r: Record<string, unknown>) => r["bytes"] = -1,
      (r: Record<string, unknown>) => r["bytes"] = 10 ** 9,
      (r: Record<string, unknown>) => r["capacity"] = 0,
      (r: Record<string, unknown>) => r["name"] = "../escape",
      (r: Record<string, unknown>) => r["sha256"] = "not bytes",
      (r: Record<string, unknown>) => delete r["part"],
    ]
  ) {
    await using h = await harness();
    const { data, dest, args } = await interruptedReceive(h);
    editRecords(h.state, edit);
    const r = await h.run(args);
    assert.equal(r.code, 0, `${edit}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).resumed, false);
    assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  }
});

Deno.test("pigeonhole-cp send starts over on a saved record of the wrong shape", async () => {
  await using h = await harness();
  const { key, data, args } = await interruptedSend(h);
  h.daemon.script("start_resending_encrypted_message", null);
  editRecords(h.state, (r) => {
    r["lowIndex"] = new Uint8Array(3);
  });
  const r = await h.run(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /is unreadable; starting over/);
  await receivedMatches(h, key, data);
});

Deno.test("pigeonhole-cp receive does not write through a link put in place of its part file", async () => {
  await using h = await harness();
  const { data, dest, args, part } = await interruptedReceive(h);
  const victim = `${h.dir}/victim.txt`;
  await Deno.writeTextFile(victim, "precious\n");
  await Deno.remove(part);
  await Deno.symlink(victim, part);
  const r = await h.run(args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await Deno.readTextFile(victim), "precious\n");
  assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  // Without saved progress too: the link is removed, not followed.
  const dest2 = await Deno.realPath(await outDir(h, "out2"));
  const keyFile = args[args.indexOf("-r") + 1]!.slice("file:".length);
  const k = JSON.parse(await Deno.readTextFile(keyFile));
  const unb64 = (t: string) => Uint8Array.from(atob(t), (c) => c.charCodeAt(0));
  const id = await sha256(concatBytes([
    new TextEncoder().encode("pigeonhole-cp receive\0"),
    unb64(k.read_cap),
    unb64(k.first_index),
    new TextEncoder().encode(dest2),
  ]));
  const hexId = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
  const part2 = `${dest2}/.pigeonhole-cp-${hexId.slice(0, 16)}.part`;
  await Deno.symlink(victim, part2);
  const noState = args.map((a) => a === dest ? dest2 : a);
  noState.splice(noState.indexOf("--state"), 2, "--no-state");
  const again = await h.run(noState);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await Deno.readTextFile(victim), "precious\n");
  assert.deepEqual(await Deno.readFile(`${dest2}/input.bin`), data);
  assert.deepEqual([...Deno.readDirSync(dest2)].map((e) => e.name), [
    "input.bin",
  ]);
});

Deno.test(
  "pigeonhole-cp receive into a full disk fails in one line, keeps its progress and resumes",
  {
    ignore: Deno.build.os === "windows",
  },
  async () => {
    await using h = await harness();
    const key = await genkey(h);
    const { data, path } = await writeInput(h, 400_000);
    const sent = await h.run(["send", ...h.c, "-w", `file:${key}`, path]);
    assert.equal(sent.code, 0, sent.stderr);
    const dest = await outDir(h);
    const cli = new URL("../cli/pigeonhole_cp.ts", import.meta.url).pathname;
    const args = ["receive", ...h.c, "--json", "-r", `file:${key}`, dest];
    // Files may grow to 128 KiB only, and a write past that fails with EFBIG
    // ("File too large") instead of killing the process: a disk that is full
    // for this transfer.
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        'trap "" XFSZ; ulimit -f 128; exec "$0" "$@"',
        Deno.execPath(),
        "run",
        "-A",
        cli,
        ...args,
      ],
      env: { HOME: h.dir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 3, stderr);
    assertOneLine(
      stderr,
      /^pigeonhole-cp: Cannot write '.*\.part': File too large \(\d+ bytes received so far are kept: free some space and rerun to resume\)$/,
    );
    const [part] = [...Deno.readDirSync(dest)].map((e) => `${dest}/${e.name}`);
    assert.match(part!, /\.part$/);
    assert.ok((await Deno.stat(part!)).size <= 128 * 1024);
    // With room again, it resumes from what it kept.
    const r = await h.run(args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).resumed, true);
    assert.deepEqual(await Deno.readFile(`${dest}/input.bin`), data);
  },
);

Deno.test("pigeonhole-cp reads at most 64 KiB of a capability source", async () => {
  await using h = await harness();
  const { path } = await writeInput(h, 100);
  const big = `${h.dir}/big.json`;
  await Deno.writeTextFile(big, " ".repeat(70_000) + "{}");
  for (
    const [source, stdin, label] of [
      ["file:/dev/zero", undefined, "file '/dev/zero'"],
      [`file:${big}`, undefined, `file '${big}'`],
      ["-", "A".repeat(70_000), "standard input"],
    ] as const
  ) {
    const t0 = performance.now();
    const r = await h.run(
      ["send", ...h.c, "-w", source, path],
      stdin === undefined ? {} : { stdin },
    );
    assert.equal(r.code, 4, r.stderr);
    assertOneLine(
      r.stderr,
      new RegExp(
        `Cannot read write capability from ${
          label.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
        }: it is larger than 65536 bytes`,
      ),
    );
    assert.ok(performance.now() - t0 < 5000);
  }
});

Deno.test("pigeonhole-cp names a remote plain ws:// address as its config file spells it", async () => {
  await using h = await harness();
  const config = `${h.dir}/remote.toml`;
  await Deno.writeTextFile(
    config,
    '[Dial]\n  [Dial.Ws]\n    Address = "ws://192.0.2.9:64331/"\n',
  );
  const r = await h.run([
    "genkey",
    "--config",
    config,
    "--out",
    `${h.dir}/k.json`,
  ]);
  assert.equal(r.code, 5, r.stderr);
  assertOneLine(
    r.stderr,
    /Cannot load config '.*remote\.toml': key 'Dial\.Ws\.Address' names non-loopback host '192\.0\.2\.9' over plain ws:\/\//,
  );
});
