/**
 * Exit codes of pigeonhole-cp and the mapping from any thrown value to one
 * line of text and one exit code (never a stack trace).
 *
 * @module
 */
import {
  ClientClosedError,
  ConfigError,
  ConnectionError,
  CopyCommandError,
  DaemonError,
  PayloadTooLargeError,
  ProtocolError,
  ReplicaError,
  ThinClientError,
} from "../lib/errors.ts";
import { isConflict } from "../lib/boxes.ts";

/**
 * Exit codes of `pigeonhole-cp`. 0, 1, 2 and 130 mean the same as in the
 * upstream Rust tool; the others are distinct so that scripts can react.
 */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** Any other failure (daemon or replica refused, I/O error while writing). */
  Failure: 1,
  /** Bad command line. */
  Usage: 2,
  /** The input file or destination directory is missing or unreadable. */
  Input: 3,
  /** A capability or index cannot be read, decoded, or has the wrong length. */
  Capability: 4,
  /** The thinclient.toml is missing or invalid. */
  Config: 5,
  /** The daemon cannot be reached (or was lost and not regained). */
  Unreachable: 6,
  /** The received data failed a check: digest, size, header, file name. */
  Integrity: 7,
  /** The file is too large for copy mode (use --stream). */
  TooLarge: 8,
  /** Something is already there: the target file, other data in the channel, other state. */
  Conflict: 9,
  /** `--timeout` or `--idle-timeout` expired. */
  Timeout: 124,
  /** Cancelled by Ctrl-C, SIGTERM or the caller's signal. */
  Cancelled: 130,
} as const;

/** One of the {@linkcode ExitCode} values. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** An error that carries its exit code and a message fit for the user. */
export class CliError extends Error {
  override readonly name = "CliError";
  /** The exit code. */
  readonly exitCode: ExitCodeValue;
  /**
   * @param exitCode The exit code.
   * @param message One line, sentence case, no final period.
   * @param options The cause.
   */
  constructor(
    exitCode: ExitCodeValue,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** The reason used when the user cancels (Ctrl-C, SIGTERM). */
export function cancelReason(): DOMException {
  return new DOMException("Cancelled", "AbortError");
}

/** Whether `err` is an abort reason of ours or of `AbortSignal.timeout`. */
function abortKind(err: unknown): "timeout" | "cancel" | null {
  if (err instanceof DOMException) {
    if (err.name === "TimeoutError") return "timeout";
    if (err.name === "AbortError") return "cancel";
  }
  return null;
}

/** A short reason for a runtime (file system) error. */
export function fsReason(err: unknown): string {
  if (typeof Deno !== "undefined") {
    if (err instanceof Deno.errors.NotFound) return "no such file or directory";
    if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
    if (err instanceof Deno.errors.AlreadyExists) return "already exists";
    if (err instanceof Deno.errors.IsADirectory) return "is a directory";
    if (err instanceof Deno.errors.NotADirectory) return "not a directory";
  }
  if (err instanceof Error) {
    return err.message.replace(/\s*\(os error \d+\)$/, "").replace(
      /:\s*(stat|open|lstat|readfile|realpath)\s+'.*'$/,
      "",
    );
  }
  return String(err);
}

/**
 * Turns anything thrown into an exit code and one line of text.
 *
 * @param err The thrown value.
 * @param signal The command's signal: when it fired, its reason wins over
 *   whatever error the aborted operation produced.
 * @returns The exit code and message.
 */
export function classify(
  err: unknown,
  signal?: AbortSignal,
): { exitCode: ExitCodeValue; message: string } {
  if (err instanceof CliError) {
    return { exitCode: err.exitCode, message: err.message };
  }
  const reason = signal?.aborted ? signal.reason : undefined;
  const kind = abortKind(err) ?? abortKind(reason);
  if (kind === "timeout") {
    return {
      exitCode: ExitCode.Timeout,
      message: "Timed out: the transfer did not finish within the time limit",
    };
  }
  if (kind === "cancel") {
    return { exitCode: ExitCode.Cancelled, message: "Cancelled" };
  }
  if (err instanceof ConfigError) {
    return { exitCode: ExitCode.Config, message: err.message };
  }
  if (err instanceof ConnectionError || err instanceof ClientClosedError) {
    const reason = err.cause instanceof Error ? fsReason(err.cause) : "";
    const cause = reason === "" ||
        err.message.toLowerCase().includes(reason.toLowerCase())
      ? ""
      : `: ${reason}`;
    return {
      exitCode: ExitCode.Unreachable,
      message: `${err.message}${cause} (is kpclientd running?)`,
    };
  }
  if (isConflict(err)) {
    return {
      exitCode: ExitCode.Conflict,
      message: `${
        (err as Error).message
      }: the channel already holds other data at this index (use a fresh channel, or the next index)`,
    };
  }
  if (err instanceof CopyCommandError || err instanceof ReplicaError) {
    return { exitCode: ExitCode.Failure, message: err.message };
  }
  if (err instanceof PayloadTooLargeError) {
    return { exitCode: ExitCode.TooLarge, message: err.message };
  }
  if (
    err instanceof DaemonError || err instanceof ProtocolError ||
    err instanceof ThinClientError
  ) {
    return { exitCode: ExitCode.Failure, message: err.message };
  }
  if (err instanceof Error) {
    return {
      exitCode: ExitCode.Failure,
      message: `Unexpected error: ${err.message.split("\n")[0]}`,
    };
  }
  return { exitCode: ExitCode.Failure, message: `Unexpected error: ${err}` };
}
