/**
 * Reading capabilities and indices without requiring them on the command
 * line. A source is `file:PATH` (or `@PATH`), `env:NAME`, `-` (standard
 * input) or the value itself. A value may be:
 *
 * - a key file written by `genkey --out` or `genkey --json` (JSON with
 *   `write_cap`, `read_cap`, `first_index`, `share`), or the JSON result of
 *   `send --json` (`next_index`);
 * - the output of upstream's `genkey` (the lines after "Read Capability",
 *   "Write Capability", "First Index");
 * - a share text `kpch1…` (read capability and start index) or `kprc1…`
 *   (read capability);
 * - base64 (standard or URL-safe, padding optional) of the raw bytes, as
 *   upstream prints them.
 *
 * @module
 */
import {
  MessageBoxIndex,
  parseShareText,
  ReadCap,
  WriteCap,
} from "../lib/caps.ts";
import { CliError, ExitCode, fsReason } from "./_errors.ts";
import { _denoBackend } from "../transport/_deno.ts";

/**
 * The most a capability source may hold: 64 KiB. A key file is about 1 KB;
 * a larger source (or `file:/dev/zero`) is not one, and is not read whole.
 */
export const MAX_CAP_SOURCE = 65_536;

/** The error for a source over {@linkcode MAX_CAP_SOURCE}. */
export function sourceTooLarge(what: string, label: string): CliError {
  return new CliError(
    ExitCode.Capability,
    `Cannot read ${what} from ${label}: it is larger than ${MAX_CAP_SOURCE} bytes (a key file is about 1 KB; is this the right file?)`,
  );
}

/** Environment variables read when an option is not given. */
export const ENV = {
  writeCap: "PIGEONHOLE_WRITE_CAP",
  readCap: "PIGEONHOLE_READ_CAP",
  index: "PIGEONHOLE_INDEX",
} as const;

/** What a source yielded. */
export interface CapBundle {
  /** A write capability, when present. */
  writeCap?: WriteCap;
  /** A read capability, when present. */
  readCap?: ReadCap;
  /** A start index, when present. */
  index?: MessageBoxIndex;
}

/** Where sources are read from. */
export interface SourceContext {
  /** Environment lookup. */
  env(name: string): string | undefined;
  /**
   * All of standard input as text (read once), or `null` when it holds more
   * than {@linkcode MAX_CAP_SOURCE} bytes.
   */
  stdin(): Promise<string | null>;
}

/** A resolved source: its text and how to name it in messages. */
interface Resolved {
  text: string;
  label: string;
  literal: boolean;
}

async function resolve(
  spec: string,
  what: string,
  ctx: SourceContext,
): Promise<Resolved> {
  if (spec === "-" || spec === "stdin") {
    const text = await ctx.stdin();
    if (text === null) throw sourceTooLarge(what, "standard input");
    return { text, label: "standard input", literal: false };
  }
  const file = spec.startsWith("file:")
    ? spec.slice(5)
    : spec.startsWith("@")
    ? spec.slice(1)
    : null;
  if (file !== null) {
    let text: string | null;
    try {
      text = await _denoBackend.readTextFile(file, MAX_CAP_SOURCE);
    } catch (err) {
      throw new CliError(
        ExitCode.Capability,
        `Cannot read ${what} from file '${file}': ${fsReason(err)}`,
        { cause: err },
      );
    }
    if (text === null) throw sourceTooLarge(what, `file '${file}'`);
    return { text, label: `file '${file}'`, literal: false };
  }
  if (spec.startsWith("env:")) {
    const name = spec.slice(4);
    const v = ctx.env(name);
    if (v === undefined || v.trim() === "") {
      throw new CliError(
        ExitCode.Capability,
        `Cannot read ${what}: environment variable '${name}' is not set`,
      );
    }
    return { text: v, label: `environment variable '${name}'`, literal: false };
  }
  return { text: spec, label: "the command line", literal: true };
}

function fromBase64(text: string): Uint8Array | null {
  const t = text.replace(/\s+/g, "");
  if (t === "" || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) return null;
  let s = t.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
  if (s.length % 4 === 1) return null;
  s += "=".repeat((4 - (s.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

const KIND_BY_LENGTH = new Map<number, string>([
  [WriteCap.LENGTH, "write capability"],
  [ReadCap.LENGTH, "read capability"],
  [MessageBoxIndex.LENGTH, "message box index"],
]);

function bytesAs(
  bytes: Uint8Array,
  want: "write" | "read" | "index",
  what: string,
  label: string,
): CapBundle {
  const length = want === "write"
    ? WriteCap.LENGTH
    : want === "read"
    ? ReadCap.LENGTH
    : MessageBoxIndex.LENGTH;
  if (bytes.length !== length) {
    const other = KIND_BY_LENGTH.get(bytes.length);
    throw new CliError(
      ExitCode.Capability,
      `Cannot use ${what} from ${label}: it decodes to ${bytes.length} bytes, a ${what} has ${length}${
        other === undefined ? "" : ` (this looks like a ${other})`
      }`,
    );
  }
  if (want === "write") return { writeCap: new WriteCap(bytes) };
  if (want === "read") return { readCap: new ReadCap(bytes) };
  return { index: new MessageBoxIndex(bytes) };
}

function field(
  obj: Record<string, unknown>,
  key: string,
  want: "write" | "read" | "index",
  what: string,
  label: string,
): CapBundle {
  const v = obj[key];
  if (v === undefined || v === null) return {};
  const bytes = typeof v === "string" ? fromBase64(v) : null;
  if (bytes === null) {
    throw new CliError(
      ExitCode.Capability,
      `Cannot use ${what} from ${label}: field '${key}' is not base64`,
    );
  }
  return bytesAs(bytes, want, key.replaceAll("_", " "), label);
}

function upstreamValue(text: string, labelPrefix: string): string | undefined {
  const lines = text.split(/\r?\n/);
  const i = lines.findIndex((l) => l.startsWith(labelPrefix));
  if (i < 0) return undefined;
  const v = lines[i + 1]?.trim();
  return v === "" ? undefined : v;
}

/**
 * Parses any of the accepted forms.
 *
 * @param text The source's text.
 * @param want Which value a bare base64 string must be.
 * @param what Name of the wanted value, for messages.
 * @param label Name of the source, for messages.
 * @throws {CliError} Capability, when nothing usable is there.
 */
export function parseCapText(
  text: string,
  want: "write" | "read" | "index",
  what: string,
  label: string,
): CapBundle {
  const t = text.trim();
  if (t === "") {
    throw new CliError(
      ExitCode.Capability,
      `Cannot use ${what} from ${label}: it is empty`,
    );
  }
  if (t.startsWith("{")) {
    let obj: unknown;
    try {
      obj = JSON.parse(t);
    } catch {
      throw new CliError(
        ExitCode.Capability,
        `Cannot use ${what} from ${label}: it starts with '{' but is not valid JSON`,
      );
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new CliError(
        ExitCode.Capability,
        `Cannot use ${what} from ${label}: JSON is not an object`,
      );
    }
    const o = obj as Record<string, unknown>;
    const share = typeof o["share"] === "string"
      ? parseCapText(o["share"], "read", what, label)
      : {};
    const index = field(o, "index", "index", what, label).index ??
      field(o, "next_index", "index", what, label).index ??
      field(o, "first_index", "index", what, label).index ?? share.index;
    const writeCap = field(o, "write_cap", "write", what, label).writeCap;
    const readCap = field(o, "read_cap", "read", what, label).readCap ??
      share.readCap;
    return {
      ...(writeCap === undefined ? {} : { writeCap }),
      ...(readCap === undefined ? {} : { readCap }),
      ...(index === undefined ? {} : { index }),
    };
  }
  if (/^(Read|Write) Capability|^First Index/m.test(t)) {
    const out: CapBundle = {};
    const w = upstreamValue(t, "Write Capability");
    const r = upstreamValue(t, "Read Capability");
    const i = upstreamValue(t, "First Index");
    const dec = (v: string, kind: "write" | "read" | "index", name: string) => {
      const b = fromBase64(v);
      if (b === null) {
        throw new CliError(
          ExitCode.Capability,
          `Cannot use ${what} from ${label}: the value after '${name}' is not base64`,
        );
      }
      return bytesAs(b, kind, name.toLowerCase(), label);
    };
    if (w !== undefined && fromBase64(w) !== null) {
      out.writeCap = dec(w, "write", "Write Capability").writeCap!;
    }
    if (r !== undefined) {
      out.readCap = dec(r, "read", "Read Capability").readCap!;
    }
    if (i !== undefined) out.index = dec(i, "index", "First Index").index!;
    return out;
  }
  if (t.startsWith("kpch1")) {
    try {
      const s = parseShareText(t);
      return { readCap: s.readCap, index: s.startIndex };
    } catch (err) {
      throw new CliError(
        ExitCode.Capability,
        `Cannot use ${what} from ${label}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  if (t.startsWith("kprc1")) {
    try {
      return { readCap: ReadCap.fromText(t) };
    } catch (err) {
      throw new CliError(
        ExitCode.Capability,
        `Cannot use ${what} from ${label}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  const bytes = fromBase64(t);
  if (bytes === null) {
    throw new CliError(
      ExitCode.Capability,
      `Cannot use ${what} from ${label}: not base64, a share text or a key file${
        t.length <= 64 && /^[\w./~-]+$/.test(t) && /[./]/.test(t)
          ? ` (to read a file, write 'file:${t}')`
          : ""
      }`,
    );
  }
  return bytesAs(bytes, want, what, label);
}

/** Reads a source and parses it. */
async function load(
  spec: string,
  want: "write" | "read" | "index",
  what: string,
  ctx: SourceContext,
): Promise<CapBundle & { literal: boolean }> {
  const r = await resolve(spec, what, ctx);
  return { ...parseCapText(r.text, want, what, r.label), literal: r.literal };
}

function specOrEnv(
  given: string | undefined,
  envName: string,
  ctx: SourceContext,
): string | undefined {
  if (given !== undefined) return given;
  return ctx.env(envName) === undefined ? undefined : `env:${envName}`;
}

async function loadIndex(
  given: string | undefined,
  fromCap: MessageBoxIndex | undefined,
  action: string,
  ctx: SourceContext,
): Promise<MessageBoxIndex> {
  if (given !== undefined) {
    const b = await load(given, "index", "index", ctx);
    if (b.index === undefined) {
      throw new CliError(
        ExitCode.Capability,
        `Cannot ${action}: the --index source holds no index`,
      );
    }
    return b.index;
  }
  if (fromCap !== undefined) return fromCap;
  const env = specOrEnv(undefined, ENV.index, ctx);
  if (env !== undefined) return await loadIndex(env, undefined, action, ctx);
  throw new CliError(
    ExitCode.Capability,
    `Cannot ${action}: no start index: the capability source has none; pass --index SRC or set ${ENV.index}`,
  );
}

/**
 * The write capability and start index for `send`.
 *
 * @param writeCap The `--write-cap` source, if given.
 * @param index The `--index` source, if given.
 * @param ctx Where to read.
 * @returns The values and whether the write capability came from argv.
 */
export async function loadWriteSide(
  writeCap: string | undefined,
  index: string | undefined,
  ctx: SourceContext,
): Promise<{ writeCap: WriteCap; index: MessageBoxIndex; onArgv: boolean }> {
  const spec = specOrEnv(writeCap, ENV.writeCap, ctx);
  if (spec === undefined) {
    throw new CliError(
      ExitCode.Usage,
      `Cannot send: no write capability: pass --write-cap SRC (file:PATH, env:NAME or -) or set ${ENV.writeCap}`,
    );
  }
  const b = await load(spec, "write", "write capability", ctx);
  if (b.writeCap === undefined) {
    throw new CliError(
      ExitCode.Capability,
      "Cannot send: the --write-cap source holds no write capability",
    );
  }
  return {
    writeCap: b.writeCap,
    index: await loadIndex(index, b.index, "send", ctx),
    onArgv: b.literal,
  };
}

/**
 * The read capability and start index for `receive`.
 *
 * @param readCap The `--read-cap` source, if given.
 * @param index The `--index` source, if given.
 * @param ctx Where to read.
 * @returns The values.
 */
export async function loadReadSide(
  readCap: string | undefined,
  index: string | undefined,
  ctx: SourceContext,
): Promise<{ readCap: ReadCap; index: MessageBoxIndex }> {
  const spec = specOrEnv(readCap, ENV.readCap, ctx);
  if (spec === undefined) {
    throw new CliError(
      ExitCode.Usage,
      `Cannot receive: no read capability: pass --read-cap SRC (a kpch1… share text, file:PATH, env:NAME or -) or set ${ENV.readCap}`,
    );
  }
  const b = await load(spec, "read", "read capability", ctx);
  if (b.readCap === undefined) {
    throw new CliError(
      ExitCode.Capability,
      "Cannot receive: the --read-cap source holds no read capability",
    );
  }
  return {
    readCap: b.readCap,
    index: await loadIndex(index, b.index, "receive", ctx),
  };
}
