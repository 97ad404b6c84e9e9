/**
 * The command line of pigeonhole-cp: option tables per command, and argv
 * parsed into typed options. Every mistake is a usage {@linkcode CliError}
 * (exit code 2) whose message ends with a pointer to `--help`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CliError, ExitCode } from "./_errors.ts";

const COMMON = {
  config: { type: "string", short: "c" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  timings: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const TRANSFER = {
  ...COMMON,
  index: { type: "string", short: "i" },
  window: { type: "string" },
  timeout: { type: "string" },
  state: { type: "string" },
  "no-state": { type: "boolean" },
  fresh: { type: "boolean" },
} as const;

const OPTIONS = {
  genkey: {
    ...COMMON,
    out: { type: "string", short: "o" },
    "print-write-cap": { type: "boolean" },
  },
  send: {
    ...TRANSFER,
    "write-cap": { type: "string", short: "w" },
    file: { type: "string", short: "f" },
    stream: { type: "boolean" },
    "no-copy": { type: "boolean" },
    "confirm-all": { type: "boolean" },
    name: { type: "string" },
  },
  receive: {
    ...TRANSFER,
    "read-cap": { type: "string", short: "r" },
    "dest-dir": { type: "string", short: "d" },
    "idle-timeout": { type: "string" },
    "max-size": { type: "string" },
  },
} as const;

/** A command that talks to the daemon. */
export type CommandName = keyof typeof OPTIONS;

/** Option values as `parseArgs` returns them. */
type Values = Record<string, string | boolean | undefined>;

/** What the command line asks for, before its options are checked. */
export type Invocation =
  | { kind: "usage" } // no command: usage on stderr, exit code 2
  | { kind: "help" }
  | { kind: "version" }
  | {
    kind: "run";
    command: CommandName;
    values: Values;
    positionals: string[];
  };

/** Options every command takes. */
export interface CommonOptions {
  /** `--config`, if given. */
  config: string | undefined;
  /** Results as JSON, progress as JSON lines. */
  json: boolean;
  /** No progress output. */
  quiet: boolean;
  /** Print the time per daemon call at the end. */
  timings: boolean;
  /** `--timeout` in milliseconds; 0 or `null` for none. */
  timeoutMs: number | null;
}

/** Options of `genkey`. */
export interface GenkeyOptions extends CommonOptions {
  /** The command. */
  command: "genkey";
  /** Where to write the key file. */
  out: string | undefined;
  /** Also print the write capability. */
  printWriteCap: boolean;
}

/** Options of `send` and `receive`. */
export interface TransferOptions extends CommonOptions {
  /** `--index` source. */
  index: string | undefined;
  /** Boxes in flight. */
  window: number;
  /** `--state` path, if given. */
  state: string | undefined;
  /** `--no-state`. */
  noState: boolean;
  /** Forget saved progress. */
  fresh: boolean;
}

/** Options of `send`. */
export interface SendOptions extends TransferOptions {
  /** The command. */
  command: "send";
  /** The file, or `-` for standard input. */
  input: string;
  /** `--write-cap` source. */
  writeCap: string | undefined;
  /** `--name`. */
  name: string | undefined;
  /** `--stream` or `--no-copy`. */
  stream: boolean;
  /** `--confirm-all` (checked by {@linkcode checkConfirmAll}). */
  confirmAll: boolean;
}

/** Options of `receive`. */
export interface ReceiveOptions extends TransferOptions {
  /** The command. */
  command: "receive";
  /** The directory, or `-` for standard output. */
  dest: string;
  /** `--read-cap` source. */
  readCap: string | undefined;
  /** `--idle-timeout` in milliseconds (0: never). */
  idleMs: number;
  /** `--max-size` in bytes, or `null`. */
  maxSize: number | null;
}

/** Checked options of any command. */
export type CommandOptions = GenkeyOptions | SendOptions | ReceiveOptions;

/** A usage error: exit code 2, with a pointer to `--help`. */
export function usage(message: string): CliError {
  return new CliError(
    ExitCode.Usage,
    `${message} (see 'pigeonhole-cp --help')`,
  );
}

/**
 * Reads the command and its options (without checking their values).
 *
 * @throws {CliError} Usage, for an unknown command or option.
 */
export function parseCommandLine(args: string[]): Invocation {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
      return { kind: "usage" };
    case "help":
    case "-h":
    case "--help":
      return { kind: "help" };
    case "--version":
      return { kind: "version" };
    case "genkey":
    case "send":
    case "receive":
      break;
    default:
      throw usage(`Unknown command '${command}'`);
  }
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: OPTIONS[command],
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] };
  } catch (err) {
    throw usage((err as Error).message.split(/\. To specify|\n/)[0]!);
  }
  if (parsed.values["help"] === true) return { kind: "help" };
  return { kind: "run", command, ...parsed };
}

/**
 * Checks the values of a command's options, in the order the command meets
 * them.
 *
 * @throws {CliError} Usage, for a bad value or a missing argument.
 */
export function commandOptions(
  run: Extract<Invocation, { kind: "run" }>,
): CommandOptions {
  const { values, positionals } = run;
  const text = (name: string): string | undefined =>
    values[name] as string | undefined;
  const flag = (name: string): boolean => values[name] === true;
  const timeout = text("timeout");
  const common: CommonOptions = {
    config: text("config"),
    json: flag("json"),
    quiet: flag("quiet"),
    timings: flag("timings"),
    timeoutMs: timeout === undefined
      ? null
      : parseDuration(timeout, "--timeout"),
  };
  if (run.command === "genkey") {
    return genkeyOptions(common, text("out"), flag("print-write-cap"), run);
  }
  const window = parseWindow(text("window"));
  if (flag("no-state") && text("state") !== undefined) {
    throw usage("--state and --no-state exclude each other");
  }
  const transfer: TransferOptions = {
    ...common,
    index: text("index"),
    window,
    state: text("state"),
    noState: flag("no-state"),
    fresh: flag("fresh"),
  };
  if (run.command === "send") {
    return {
      ...transfer,
      command: "send",
      input: onePositional(positionals, text("file"), "--file", "file to send"),
      writeCap: text("write-cap"),
      name: text("name"),
      stream: flag("stream") || flag("no-copy"),
      confirmAll: flag("confirm-all"),
    };
  }
  const dest = onePositional(
    positionals,
    text("dest-dir"),
    "--dest-dir",
    "destination directory",
  );
  const idle = text("idle-timeout");
  const max = text("max-size");
  return {
    ...transfer,
    command: "receive",
    dest,
    readCap: text("read-cap"),
    idleMs: idle === undefined
      ? 600_000
      : parseDuration(idle, "--idle-timeout"),
    maxSize: max === undefined ? null : parseSize(max, "--max-size"),
  };
}

function genkeyOptions(
  common: CommonOptions,
  out: string | undefined,
  printWriteCap: boolean,
  run: { positionals: string[] },
): GenkeyOptions {
  if (run.positionals.length > 0) {
    throw usage(`Unexpected argument '${run.positionals[0]}'`);
  }
  if (out === undefined && !printWriteCap) {
    throw usage(
      "genkey needs --out FILE (or --print-write-cap), else the write capability would be lost",
    );
  }
  return { ...common, command: "genkey", out, printWriteCap };
}

/**
 * `--confirm-all` applies to stream mode only. Checked after the
 * capabilities are loaded, as the command has always done.
 *
 * @throws {CliError} Usage, when given without `--stream`.
 */
export function checkConfirmAll(o: SendOptions): void {
  if (o.confirmAll && !o.stream) {
    throw usage(
      "--confirm-all applies to --stream only (a copy command is confirmed as a whole)",
    );
  }
}

/** `90`, `90s`, `1.5m`, `2h`, `500ms` → milliseconds. */
function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) {
    throw usage(
      `Invalid ${option} '${text}': expected a duration such as 30s, 10m or 1h`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

/** `1048576`, `100MiB`, `1G` → bytes. */
function parseSize(text: string, option: string): number {
  const m = /^(\d+)\s*(|B|K|KiB|M|MiB|G|GiB|T|TiB)$/i.exec(text.trim());
  if (m === null) {
    throw usage(
      `Invalid ${option} '${text}': expected a size such as 500000, 100MiB or 2GiB`,
    );
  }
  const unit = m[2]!.charAt(0).toUpperCase();
  const mult = {
    "": 1,
    B: 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
    T: 1024 ** 4,
  }[
    unit
  ]!;
  return Number(m[1]) * mult;
}

function parseWindow(text: string | undefined): number {
  if (text === undefined) return 8;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw usage(`Invalid --window '${text}': expected an integer from 1 to 64`);
  }
  return n;
}

function onePositional(
  positionals: string[],
  option: string | undefined,
  optionName: string,
  what: string,
): string {
  const all = option === undefined ? positionals : [option, ...positionals];
  if (all.length === 0) throw usage(`Missing ${what} (or ${optionName})`);
  if (all.length > 1) {
    throw usage(`Too many arguments: ${all.map((a) => `'${a}'`).join(", ")}`);
  }
  return all[0]!;
}
