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
import type { CallRecord } from "../lib/_options.ts";
import type { ThinClient } from "../lib/client.ts";
import type { Keypair } from "../lib/pigeonhole.ts";
import { formatShareText } from "../persistent/models.ts";
import { connect as connectDaemon } from "../transport/mod.ts";
import { loadReadSide, loadWriteSide } from "./_caps_input.ts";
import type { CommandEnv } from "./_env.ts";
import { classify, CliError, ExitCode as EXIT, fsReason } from "./_errors.ts";
import { toBase64 } from "./_io.ts";
import {
  checkConfirmAll,
  type CommandOptions,
  commandOptions,
  type GenkeyOptions,
  parseCommandLine,
  type ReceiveOptions,
  type SendOptions,
  type TransferOptions,
  usage,
} from "./_options.ts";
import {
  defaultStatePath,
  installSignals,
  type Io,
  makeIo,
  type PigeonholeCpDeps,
  readConfig,
  sourceContext,
} from "./_process.ts";
import { Progress, type ProgressMode } from "./_progress.ts";
import { startHeapTrim } from "./_heap.ts";
import { CallTimings } from "./_timings.ts";
import { runReceive } from "./_receive.ts";
import { runSend } from "./_send.ts";
import { TransferStore } from "./_state.ts";
import { USAGE, VERSION_LINE } from "./_usage.ts";

export type { PigeonholeCpDeps };

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
  let timings: CallTimings | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const invocation = parseCommandLine(args);
    switch (invocation.kind) {
      case "usage":
        io.stderr.text(USAGE);
        return EXIT.Usage;
      case "help":
        io.stdout.text(USAGE);
        return EXIT.Ok;
      case "version":
        io.stdout.text(`${VERSION_LINE}\n`);
        return EXIT.Ok;
    }
    json = invocation.values["json"] === true;
    const options = commandOptions(invocation);
    progress = new Progress(
      (t) => io.stderr.text(t),
      progressMode(options, io),
      io.now,
    );
    let runSignal = signal;
    if (options.timeoutMs !== null && options.timeoutMs > 0) {
      const t = new AbortController();
      timer = setTimeout(
        () => t.abort(new DOMException("Timed out", "TimeoutError")),
        options.timeoutMs,
      );
      runSignal = AbortSignal.any([signal, t.signal]);
    }
    if (options.timings) timings = new CallTimings();
    const onCall = timings?.record;
    const run: Run = {
      io,
      progress,
      signal: runSignal,
      connect: () => openClient(options, io, deps, runSignal, onCall),
    };
    return await runCommand(options, run);
  } catch (err) {
    return reportError(err, signal, io, json, progress);
  } finally {
    clearTimeout(timer);
    removeSignals();
    if (timings !== null) {
      io.stderr.text(json ? timings.json() : timings.table());
    }
    await io.stdout.release().catch(() => {});
    await io.stderr.release().catch(() => {});
  }
}

/** What a command runs with. */
interface Run {
  io: Io;
  progress: Progress;
  /** Cancellation and `--timeout`. */
  signal: AbortSignal;
  /** Loads the config and connects to the daemon. */
  connect(): Promise<ThinClient>;
}

function progressMode(options: CommandOptions, io: Io): ProgressMode {
  if (options.quiet) return "off";
  if (options.json) return "json";
  return io.isTerminal ? "tty" : "lines";
}

async function openClient(
  options: CommandOptions,
  io: Io,
  deps: PigeonholeCpDeps,
  signal: AbortSignal,
  onCall: ((record: CallRecord) => void) | undefined,
): Promise<ThinClient> {
  const config = await readConfig(options.config, io);
  return await (deps.connect ?? connectDaemon)(config, {
    signal,
    reconnect: { initialDelay: 500, maxDelay: 5000, maxAttempts: 10 },
    ...(onCall === undefined ? {} : { onCall }),
  });
}

function runCommand(options: CommandOptions, run: Run): Promise<number> {
  return options.command === "genkey"
    ? genkey(options, run)
    : options.command === "send"
    ? send(options, run)
    : receive(options, run);
}

/** Prints the error in one line (or as a JSON event) and returns its exit code. */
function reportError(
  err: unknown,
  signal: AbortSignal,
  io: Io,
  json: boolean,
  progress: Progress | null,
): number {
  const { exitCode, message } = classify(err, signal);
  if (json) {
    io.stderr.text(
      JSON.stringify({ event: "error", exit_code: exitCode, message }) + "\n",
    );
  } else {
    progress?.finish();
    io.stderr.text(`pigeonhole-cp: ${message}\n`);
  }
  return exitCode;
}

/** The state file of a transfer, or `null` without one. */
async function openStore(
  options: TransferOptions,
  io: Io,
): Promise<TransferStore | null> {
  const path = options.noState ? null : options.state ?? defaultStatePath(io);
  return path === null ? null : await TransferStore.open(path);
}

async function send(options: SendOptions, run: Run): Promise<number> {
  const caps = sourceContext(run.io);
  // Early config check: a bad config should not wait for a big hash.
  await readConfig(options.config, run.io);
  const sideCaps = await loadWriteSide(options.writeCap, options.index, caps);
  if (options.input === "-" && caps.used) {
    throw usage("Standard input cannot hold both the file and a capability");
  }
  if (sideCaps.onArgv) {
    run.progress.note(
      "warning: a write capability on the command line is visible to other users (ps) and in shell history; prefer file:PATH, env:NAME or -",
    );
  }
  checkConfirmAll(options);
  using store = await openStore(options, run.io);
  using _trim = startHeapTrim();
  return await runSend(
    {
      input: options.input,
      name: options.name,
      mode: options.stream ? "stream" : "copy",
      window: options.window,
      confirmAll: options.confirmAll,
      fresh: options.fresh,
      spoolDir: undefined,
    },
    sideCaps,
    commandEnv(run, options.json, store),
  );
}

async function receive(options: ReceiveOptions, run: Run): Promise<number> {
  const caps = sourceContext(run.io);
  await readConfig(options.config, run.io);
  const sideCaps = await loadReadSide(options.readCap, options.index, caps);
  using store = options.dest === "-" ? null : await openStore(options, run.io);
  using _trim = startHeapTrim();
  return await runReceive(
    {
      dest: options.dest,
      window: options.window,
      idleMs: options.idleMs,
      maxSize: options.maxSize,
      fresh: options.fresh,
    },
    sideCaps,
    commandEnv(run, options.json, store),
  );
}

function commandEnv(
  run: Run,
  json: boolean,
  store: TransferStore | null,
): CommandEnv {
  return {
    connect: run.connect,
    progress: run.progress,
    stdout: run.io.stdout,
    stderr: run.io.stderr,
    stdin: run.io.stdin,
    json,
    signal: run.signal,
    store,
    now: run.io.now,
  };
}

async function genkey(options: GenkeyOptions, run: Run): Promise<number> {
  const { out, printWriteCap } = options;
  if (out !== undefined) await checkKeyFileFree(out);
  const client = await run.connect();
  let kp: Keypair;
  try {
    kp = await client.newKeypair(undefined, { signal: run.signal });
  } finally {
    await client.close();
  }
  const keys: NewKeys = {
    readCap: toBase64(kp.readCap.bytes),
    writeCap: toBase64(kp.writeCap.bytes),
    first: toBase64(kp.firstMessageIndex.bytes),
    share: formatShareText({
      readCap: kp.readCap,
      startIndex: kp.firstMessageIndex,
    }),
  };
  if (out !== undefined) await writeKeyFile(out, keys);
  run.io.stdout.text(
    options.json
      ? JSON.stringify({
        read_cap: keys.readCap,
        first_index: keys.first,
        share: keys.share,
        write_cap_file: out ?? null,
        ...(printWriteCap ? { write_cap: keys.writeCap } : {}),
      }) + "\n"
      : keysText(keys, out, printWriteCap),
  );
  return EXIT.Ok;
}

/** A new channel's keys as genkey prints and saves them (base64). */
interface NewKeys {
  readCap: string;
  writeCap: string;
  first: string;
  share: string;
}

/** Refuses an existing key file before the daemon is asked for keys. */
async function checkKeyFileFree(out: string): Promise<void> {
  try {
    await Deno.lstat(out);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new CliError(
      EXIT.Input,
      `Cannot write key file '${out}': ${fsReason(err)}`,
      { cause: err },
    );
  }
  throw new CliError(
    EXIT.Conflict,
    `Cannot write key file '${out}': it already exists (keys are never overwritten)`,
  );
}

/** Writes the key file, created with mode 0600 (never over another file). */
async function writeKeyFile(out: string, keys: NewKeys): Promise<void> {
  const keyFile = JSON.stringify(
    {
      type: "pigeonhole-cp key",
      write_cap: keys.writeCap,
      read_cap: keys.readCap,
      first_index: keys.first,
      share: keys.share,
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

/** genkey's text output. */
function keysText(
  keys: NewKeys,
  out: string | undefined,
  printWriteCap: boolean,
): string {
  return [
    "Read Capability (share with recipient):",
    keys.readCap,
    "",
    ...(printWriteCap
      ? ["Write Capability (keep secret):", keys.writeCap, ""]
      : [
        `Write Capability: saved to '${out}' (mode 0600; keep it secret)`,
        "",
      ]),
    "First Index:",
    keys.first,
    "",
    "Share text (read capability and first index; give it to the receiver):",
    keys.share,
    "",
  ].join("\n");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
