/**
 * `pigeonhole-cp`: send a file over a Katzenpost Pigeonhole channel and
 * receive it on the other side, compatible with the upstream Rust tool's
 * on-channel format in both directions (see docs/pigeonhole-cp.md).
 *
 * - `genkey` makes a channel: a write capability (saved to a 0600 file),
 *   a read capability and the first index, plus a one-line share text.
 * - `send` uploads a file or standard input, by default with the courier
 *   copy command (atomic: the reader sees nothing until the whole file is
 *   there), or with `--stream` box by box with several boxes in flight.
 * - `receive` writes into a directory (safe name, private part file,
 *   fsync, no-clobber rename) or to standard output, and checks the size
 *   and the SHA-256 announced by the sender.
 *
 * Transfers are resumable (progress is kept in an SQLite state file), show
 * progress on stderr, stop cleanly on Ctrl-C (the daemon cancels what is in
 * flight), and fail with one line and a distinct exit code
 * ({@linkcode ExitCode}). Capabilities are read from files, environment
 * variables or standard input, never required on the command line.
 *
 * Run it with `deno run -A jsr:@katzenpost/thinclient/pigeonhole-cp`, or
 * install it with `deno install -g -A -n pigeonhole-cp jsr:@katzenpost/thinclient/pigeonhole-cp`.
 *
 * @example Usage
 * ```ts ignore
 * import { main } from "@katzenpost/thinclient/pigeonhole-cp";
 *
 * const code = await main([
 *   "send", "--config", "thinclient.toml", "--write-cap", "file:alice.key", "report.pdf",
 * ]);
 * if (code !== 0) Deno.exit(code);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ThinClient, ThinClientOptions } from "../lib/client.ts";
import { _checkLoadedDial, type ThinClientConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import type { Keypair } from "../lib/pigeonhole.ts";
import { formatShareText } from "../persistent/models.ts";
import { connect as connectDaemon, loadConfig } from "../transport/mod.ts";
import {
  loadReadSide,
  loadWriteSide,
  MAX_CAP_SOURCE,
  type SourceContext,
} from "./_caps_input.ts";
import type { CommandEnv } from "./_env.ts";
import {
  cancelReason,
  classify,
  CliError,
  ExitCode as EXIT,
  fsReason,
} from "./_errors.ts";
import { Output, readAll, toBase64 } from "./_io.ts";
import { Progress, type ProgressMode } from "./_progress.ts";
import { runReceive } from "./_receive.ts";
import { runSend } from "./_send.ts";
import { TransferStore } from "./_state.ts";
import packageJson from "../deno.json" with { type: "json" };

/**
 * Exit codes of `pigeonhole-cp`: 0 ok, 1 failure, 2 usage, 3 input missing
 * or unreadable, 4 bad capability, 5 bad config, 6 daemon unreachable,
 * 7 integrity failure, 8 too large for copy mode, 9 conflict (target exists,
 * other data in the channel), 124 timeout, 130 cancelled.
 *
 * @example Usage
 * ```ts
 * import { ExitCode } from "@katzenpost/thinclient/pigeonhole-cp";
 * console.log(ExitCode.Timeout); // 124
 * ```
 */
export const ExitCode: {
  readonly Ok: 0;
  readonly Failure: 1;
  readonly Usage: 2;
  readonly Input: 3;
  readonly Capability: 4;
  readonly Config: 5;
  readonly Unreachable: 6;
  readonly Integrity: 7;
  readonly TooLarge: 8;
  readonly Conflict: 9;
  readonly Timeout: 124;
  readonly Cancelled: 130;
} = EXIT;

/**
 * What {@linkcode main} uses from its surroundings; every field defaults to
 * the real process (Deno's stdio, environment, signals, the TCP/Unix
 * transports).
 *
 * @example Usage
 * ```ts ignore
 * const ctl = new AbortController();
 * const code = await main(["receive", "-r", "env:SHARE", "-"], {
 *   env: { SHARE: shareText },
 *   stdout: myWritable,
 *   signal: ctl.signal,
 * });
 * ```
 */
export interface PigeonholeCpDeps {
  /** Standard input (files and capabilities given as `-`). */
  stdin?: ReadableStream<Uint8Array>;
  /** Standard output (results; received data with `receive -`). */
  stdout?: WritableStream<Uint8Array>;
  /** Standard error (progress, notes, errors). */
  stderr?: WritableStream<Uint8Array>;
  /** Environment variables; a function or a plain object. */
  env?:
    | ((name: string) => string | undefined)
    | Readonly<Record<string, string | undefined>>;
  /** Whether stderr is a terminal (draws the progress bar). */
  isTerminal?: boolean;
  /** Connects to the daemon. @default connect from ./transport */
  connect?: (
    config: ThinClientConfig,
    options: ThinClientOptions,
  ) => Promise<ThinClient>;
  /**
   * Cancels the command (like Ctrl-C: exit code 130). When omitted, SIGINT
   * and SIGTERM do that.
   */
  signal?: AbortSignal;
  /** Clock in milliseconds. @default Date.now */
  now?: () => number;
}

const USAGE = `pigeonhole-cp: send files over Katzenpost Pigeonhole channels

Usage:
  pigeonhole-cp genkey  --out FILE [--json] [--print-write-cap]
  pigeonhole-cp send    --write-cap SRC [--index SRC] [--stream] FILE|-
  pigeonhole-cp receive --read-cap SRC [--index SRC] [--timeout T] DIR|-
  pigeonhole-cp help
  pigeonhole-cp --version

A SRC is file:PATH (or @PATH), env:NAME, - (standard input) or the value
itself: a key file written by genkey, a kpch1… share text, or base64 (as the
upstream Rust tool prints it). Without --write-cap / --read-cap / --index the
variables PIGEONHOLE_WRITE_CAP / PIGEONHOLE_READ_CAP / PIGEONHOLE_INDEX are read.

Common options:
  -c, --config PATH     thinclient.toml (default: $KATZENPOST_THINCLIENT_CONFIG,
                        else ./thinclient.toml)
      --json            results as JSON on stdout, progress as JSON lines on stderr
  -q, --quiet           no progress output
  -h, --help            this help

genkey:
  -o, --out FILE        write the key file (write capability, read capability,
                        first index) there, created with mode 0600
      --print-write-cap also print the write capability (secret!)

send:
  -w, --write-cap SRC   the channel's write capability (genkey's key file)
  -i, --index SRC       start index (default: the key file's first index)
  -f, --file PATH       the file (or give it as the argument; - = stdin)
      --stream          write box by box (no size limit, not atomic) instead of
                        the courier copy command (atomic, up to 10 MiB);
                        --no-copy is the same
      --name NAME       file name announced to the receiver (default: base name;
                        "stdin" for -)
      --window N        boxes in flight (default 8, 1-64)
      --confirm-all     stream mode: wait for the replica's verdict on every
                        box (default: on the first box only, which catches a
                        reused channel; every box costs extra round trips)
      --timeout T       give up after T (e.g. 90s, 10m; default: no limit)
      --state PATH      resume state (default: $PIGEONHOLE_CP_STATE, else
                        ~/.local/state/pigeonhole-cp/state.db)
      --no-state        do not keep resume state
      --fresh           forget saved progress of this transfer and start over

receive:
  -r, --read-cap SRC    the read capability (kpch1… share text, key file, base64)
  -i, --index SRC       start index (default: from the share text / key file)
  -d, --dest-dir DIR    the directory (or give it as the argument; - = stdout)
      --timeout T       give up if the whole file has not arrived after T
      --idle-timeout T  give up if no box arrives for T once the header is in
                        (default 10m; 0 = never)
      --max-size SIZE   refuse files announced larger (e.g. 100MiB)
      --window N, --state PATH, --no-state, --fresh   as for send

Exit codes: 0 ok, 1 failure, 2 usage, 3 input missing/unreadable, 4 bad
capability, 5 bad config, 6 daemon unreachable, 7 integrity check failed,
8 too large for copy mode, 9 conflict (target exists, other data in the
channel), 124 timeout, 130 cancelled.
`;

/**
 * Prints the usage text to standard output.
 *
 * @example Usage
 * ```ts ignore
 * import { printUsage } from "@katzenpost/thinclient/pigeonhole-cp";
 * printUsage();
 * ```
 */
export function printUsage(): void {
  // deno-lint-ignore no-console
  console.log(USAGE.trimEnd());
}

/** What `--version` prints: the package name and version from deno.json. */
const VERSION_LINE = `${packageJson.name} ${packageJson.version}`;

const COMMON = {
  config: { type: "string", short: "c" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
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

type Values = Record<string, string | boolean | undefined>;

function usage(message: string): CliError {
  return new CliError(EXIT.Usage, `${message} (see 'pigeonhole-cp --help')`);
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

interface Io {
  stdout: Output;
  stderr: Output;
  stdin: ReadableStream<Uint8Array>;
  env(name: string): string | undefined;
  isTerminal: boolean;
  now(): number;
}

function makeIo(deps: PigeonholeCpDeps): Io {
  const e = deps.env;
  const env = typeof e === "function"
    ? e
    : e !== undefined
    ? (name: string) => e[name]
    : (name: string) => {
      try {
        return Deno.env.get(name);
      } catch {
        return undefined;
      }
    };
  return {
    stdout: new Output(deps.stdout ?? Deno.stdout.writable),
    stderr: new Output(deps.stderr ?? Deno.stderr.writable),
    stdin: deps.stdin ?? Deno.stdin.readable,
    env,
    isTerminal: deps.isTerminal ??
      (deps.stderr === undefined && Deno.stderr.isTerminal()),
    now: deps.now ?? Date.now,
  };
}

function configPath(values: Values, io: Io): string {
  const given = values["config"] as string | undefined;
  if (given !== undefined) return given;
  const fromEnv = io.env("KATZENPOST_THINCLIENT_CONFIG");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return "thinclient.toml";
}

async function readConfig(values: Values, io: Io): Promise<ThinClientConfig> {
  const path = configPath(values, io);
  const implicit = values["config"] === undefined &&
    !io.env("KATZENPOST_THINCLIENT_CONFIG");
  try {
    const config = await loadConfig(path);
    // The loopback rule of ws://, with keys named as in the file.
    _checkLoadedDial(config.dial, path);
    return config;
  } catch (err) {
    if (implicit && err instanceof ConfigError) {
      let missing = false;
      try {
        await Deno.stat(path);
      } catch {
        missing = true;
      }
      if (missing) {
        throw new CliError(
          EXIT.Config,
          "No thinclient.toml: pass --config PATH or set KATZENPOST_THINCLIENT_CONFIG (there is no ./thinclient.toml)",
        );
      }
    }
    throw err;
  }
}

function defaultStatePath(io: Io): string | null {
  const fromEnv = io.env("PIGEONHOLE_CP_STATE");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const xdg = io.env("XDG_STATE_HOME");
  const home = io.env("HOME");
  const base = xdg !== undefined && xdg !== ""
    ? xdg
    : home !== undefined && home !== ""
    ? `${home}/.local/state`
    : null;
  return base === null ? null : `${base}/pigeonhole-cp/state.db`;
}

function sourceContext(io: Io): SourceContext & { used: boolean } {
  let text: Promise<string | null> | null = null;
  const ctx = {
    used: false,
    env: io.env,
    stdin(): Promise<string | null> {
      ctx.used = true;
      const tooLarge = new Error("standard input is too large");
      text ??= readAll(io.stdin, MAX_CAP_SOURCE, () => tooLarge).then(
        (bytes) => new TextDecoder().decode(bytes),
        (err) => {
          if (err === tooLarge) return null;
          throw err;
        },
      );
      return text;
    },
  };
  return ctx;
}

/**
 * Runs `pigeonhole-cp` with `args` (without the program name) and returns
 * the exit code; never throws and never prints a stack trace.
 *
 * @param args The command line, e.g. `["send", "-w", "file:k.json", "a.pdf"]`.
 * @param deps Replacements for stdio, environment, signals and the daemon
 *   connection (tests, embedding).
 * @returns The exit code, one of {@linkcode ExitCode}.
 *
 * @example Usage
 * ```ts ignore
 * import { main } from "@katzenpost/thinclient/pigeonhole-cp";
 * Deno.exit(await main(["genkey", "--out", "alice.key", "--json"]));
 * ```
 */
export async function main(
  args: string[],
  deps: PigeonholeCpDeps = {},
): Promise<number> {
  const io = makeIo(deps);
  const ctl = new AbortController();
  const signal = deps.signal === undefined
    ? ctl.signal
    : AbortSignal.any([deps.signal, ctl.signal]);
  const removeSignals = deps.signal === undefined
    ? installSignals(ctl)
    : () => {};
  let json = args.includes("--json");
  let progress: Progress | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const [command, ...rest] = args;
    switch (command) {
      case undefined:
        io.stderr.text(USAGE);
        return EXIT.Usage;
      case "help":
      case "-h":
      case "--help":
        io.stdout.text(USAGE);
        return EXIT.Ok;
      case "--version":
        io.stdout.text(`${VERSION_LINE}\n`);
        return EXIT.Ok;
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
    const values = parsed.values;
    json = values["json"] === true;
    if (values["help"] === true) {
      io.stdout.text(USAGE);
      return EXIT.Ok;
    }
    const progressMode: ProgressMode = values["quiet"] === true
      ? "off"
      : json
      ? "json"
      : io.isTerminal
      ? "tty"
      : "lines";
    const bar = new Progress(
      (t) => io.stderr.text(t),
      progressMode,
      io.now,
    );
    progress = bar;
    let runSignal = signal;
    const timeoutText = values["timeout"] as string | undefined;
    if (timeoutText !== undefined) {
      const ms = parseDuration(timeoutText, "--timeout");
      if (ms > 0) {
        const t = new AbortController();
        timer = setTimeout(
          () => t.abort(new DOMException("Timed out", "TimeoutError")),
          ms,
        );
        runSignal = AbortSignal.any([signal, t.signal]);
      }
    }
    const connectFn = deps.connect ?? connectDaemon;
    const openClient = async (): Promise<ThinClient> => {
      const config = await readConfig(values, io);
      return await connectFn(config, {
        signal: runSignal,
        reconnect: { initialDelay: 500, maxDelay: 5000, maxAttempts: 10 },
      });
    };
    if (command === "genkey") {
      return await genkey(
        values,
        parsed.positionals,
        io,
        openClient,
        runSignal,
      );
    }
    const window = parseWindow(values["window"] as string | undefined);
    const caps = sourceContext(io);
    if (values["no-state"] === true && values["state"] !== undefined) {
      throw usage("--state and --no-state exclude each other");
    }
    const statePath = values["no-state"] === true
      ? null
      : (values["state"] as string | undefined) ?? defaultStatePath(io);
    const needStore = async (): Promise<TransferStore | null> =>
      statePath === null ? null : await TransferStore.open(statePath);

    if (command === "send") {
      const input = onePositional(
        parsed.positionals,
        values["file"] as string | undefined,
        "--file",
        "file to send",
      );
      // Early config check: a bad config should not wait for a big hash.
      await readConfig(values, io);
      const sideCaps = await loadWriteSide(
        values["write-cap"] as string | undefined,
        values["index"] as string | undefined,
        caps,
      );
      if (input === "-" && caps.used) {
        throw usage(
          "Standard input cannot hold both the file and a capability",
        );
      }
      if (sideCaps.onArgv) {
        bar.note(
          "warning: a write capability on the command line is visible to other users (ps) and in shell history; prefer file:PATH, env:NAME or -",
        );
      }
      const stream = values["stream"] === true || values["no-copy"] === true;
      if (values["confirm-all"] === true && !stream) {
        throw usage(
          "--confirm-all applies to --stream only (a copy command is confirmed as a whole)",
        );
      }
      using store = await needStore();
      return await runSend(
        {
          input,
          name: values["name"] as string | undefined,
          mode: stream ? "stream" : "copy",
          window,
          confirmAll: values["confirm-all"] === true,
          fresh: values["fresh"] === true,
          spoolDir: undefined,
        },
        sideCaps,
        env(io, bar, json, runSignal, store, openClient),
      );
    }
    const dest = onePositional(
      parsed.positionals,
      values["dest-dir"] as string | undefined,
      "--dest-dir",
      "destination directory",
    );
    const idleText = values["idle-timeout"] as string | undefined;
    const maxText = values["max-size"] as string | undefined;
    const idleMs = idleText === undefined
      ? 600_000
      : parseDuration(idleText, "--idle-timeout");
    const maxSize = maxText === undefined
      ? null
      : parseSize(maxText, "--max-size");
    await readConfig(values, io);
    const sideCaps = await loadReadSide(
      values["read-cap"] as string | undefined,
      values["index"] as string | undefined,
      caps,
    );
    using store = dest === "-" ? null : await needStore();
    return await runReceive(
      {
        dest,
        window,
        idleMs,
        maxSize,
        fresh: values["fresh"] === true,
      },
      sideCaps,
      env(io, bar, json, runSignal, store, openClient),
    );
  } catch (err) {
    const { exitCode, message } = classify(err, signal);
    if (json) {
      io.stderr.text(
        JSON.stringify({ event: "error", exit_code: exitCode, message }) +
          "\n",
      );
    } else {
      progress?.finish();
      io.stderr.text(`pigeonhole-cp: ${message}\n`);
    }
    return exitCode;
  } finally {
    clearTimeout(timer);
    removeSignals();
    await io.stdout.release().catch(() => {});
    await io.stderr.release().catch(() => {});
  }
}

function env(
  io: Io,
  progress: Progress,
  json: boolean,
  signal: AbortSignal,
  store: TransferStore | null,
  connect: () => Promise<ThinClient>,
): CommandEnv {
  return {
    connect,
    progress,
    stdout: io.stdout,
    stderr: io.stderr,
    stdin: io.stdin,
    json,
    signal,
    store,
    now: io.now,
  };
}

async function genkey(
  values: Values,
  positionals: string[],
  io: Io,
  openClient: () => Promise<ThinClient>,
  signal: AbortSignal,
): Promise<number> {
  if (positionals.length > 0) {
    throw usage(`Unexpected argument '${positionals[0]}'`);
  }
  const out = values["out"] as string | undefined;
  const printWriteCap = values["print-write-cap"] === true;
  if (out === undefined && !printWriteCap) {
    throw usage(
      "genkey needs --out FILE (or --print-write-cap), else the write capability would be lost",
    );
  }
  if (out !== undefined) {
    let taken = true;
    try {
      await Deno.lstat(out);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new CliError(
          EXIT.Input,
          `Cannot write key file '${out}': ${fsReason(err)}`,
          { cause: err },
        );
      }
      taken = false;
    }
    if (taken) {
      throw new CliError(
        EXIT.Conflict,
        `Cannot write key file '${out}': it already exists (keys are never overwritten)`,
      );
    }
  }
  const client = await openClient();
  let kp: Keypair;
  try {
    kp = await client.newKeypair(undefined, { signal });
  } finally {
    await client.close();
  }
  const readCap = toBase64(kp.readCap.bytes);
  const writeCap = toBase64(kp.writeCap.bytes);
  const first = toBase64(kp.firstMessageIndex.bytes);
  const share = formatShareText({
    readCap: kp.readCap,
    startIndex: kp.firstMessageIndex,
  });
  if (out !== undefined) {
    const keyFile = JSON.stringify(
      {
        type: "pigeonhole-cp key",
        write_cap: writeCap,
        read_cap: readCap,
        first_index: first,
        share,
      },
      null,
      2,
    ) + "\n";
    try {
      await Deno.writeTextFile(out, keyFile, { createNew: true, mode: 0o600 });
    } catch (err) {
      throw new CliError(
        err instanceof Deno.errors.AlreadyExists ? EXIT.Conflict : EXIT.Input,
        `Cannot write key file '${out}': ${fsReason(err)}`,
        { cause: err },
      );
    }
  }
  if (values["json"] === true) {
    io.stdout.text(
      JSON.stringify({
        read_cap: readCap,
        first_index: first,
        share,
        write_cap_file: out ?? null,
        ...(printWriteCap ? { write_cap: writeCap } : {}),
      }) + "\n",
    );
    return EXIT.Ok;
  }
  io.stdout.text(
    [
      "Read Capability (share with recipient):",
      readCap,
      "",
      ...(printWriteCap ? ["Write Capability (keep secret):", writeCap, ""] : [
        `Write Capability: saved to '${out}' (mode 0600; keep it secret)`,
        "",
      ]),
      "First Index:",
      first,
      "",
      "Share text (read capability and first index; give it to the receiver):",
      share,
      "",
    ].join("\n"),
  );
  return EXIT.Ok;
}

function installSignals(ctl: AbortController): () => void {
  if (
    typeof Deno === "undefined" || typeof Deno.addSignalListener !== "function"
  ) {
    return () => {};
  }
  let count = 0;
  const handler = (): void => {
    count++;
    if (count > 1) Deno.exit(EXIT.Cancelled);
    ctl.abort(cancelReason());
  };
  const installed: Deno.Signal[] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(sig, handler);
      installed.push(sig);
    } catch { /* not supported here (SIGTERM on Windows) */ }
  }
  return () => {
    for (const sig of installed) Deno.removeSignalListener(sig, handler);
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
