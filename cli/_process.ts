/**
 * What pigeonhole-cp takes from the process it runs in: standard streams,
 * environment, signals, the config file and the default state path.
 *
 * @module
 */
import type { ThinClient, ThinClientOptions } from "../lib/client.ts";
import { _checkLoadedDial, type ThinClientConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { loadConfig } from "../transport/mod.ts";
import { MAX_CAP_SOURCE, type SourceContext } from "./_caps_input.ts";
import { cancelReason, CliError, ExitCode as EXIT } from "./_errors.ts";
import { Output, readAll } from "./_io.ts";

/**
 * What `main` uses from its surroundings; every field defaults to
 * the real process (Deno's stdio, environment, signals, the TCP/Unix
 * transports).
 *
 * @example Usage
 * ```ts ignore
 * import { main } from "@katzenpost/thinclient/pigeonhole-cp";
 *
 * const chunks: Uint8Array[] = [];
 * const code = await main(["receive", "-r", "env:SHARE", "-"], {
 *   env: { SHARE: shareText },
 *   stdout: new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
 *   signal: AbortSignal.timeout(600_000),
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

/** The process as a command sees it. */
export interface Io {
  /** Results. */
  stdout: Output;
  /** Progress, notes and errors. */
  stderr: Output;
  /** Standard input. */
  stdin: ReadableStream<Uint8Array>;
  /** An environment variable. */
  env(name: string): string | undefined;
  /** Whether stderr is a terminal. */
  isTerminal: boolean;
  /** Clock in milliseconds. */
  now(): number;
}

/** The process, with `deps` in place of what they replace. */
export function makeIo(deps: PigeonholeCpDeps): Io {
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

function configPath(config: string | undefined, io: Io): string {
  const given = config;
  if (given !== undefined) return given;
  const fromEnv = io.env("KATZENPOST_THINCLIENT_CONFIG");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return "thinclient.toml";
}

/**
 * Loads the config file (`--config`, else $KATZENPOST_THINCLIENT_CONFIG,
 * else ./thinclient.toml).
 *
 * @throws {CliError} Config, when no file was named and there is none here.
 * @throws {ConfigError} When the file is bad.
 */
export async function readConfig(
  config: string | undefined,
  io: Io,
): Promise<ThinClientConfig> {
  const path = configPath(config, io);
  const implicit = config === undefined &&
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

/** The state file when `--state` is not given, or `null` if none is known. */
export function defaultStatePath(io: Io): string | null {
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

/** Capability sources; `used` tells whether standard input was read. */
export function sourceContext(io: Io): SourceContext & { used: boolean } {
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
 * Makes SIGINT and SIGTERM cancel the command (a second one exits at once).
 *
 * @returns A function that removes the listeners.
 */
export function installSignals(ctl: AbortController): () => void {
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
