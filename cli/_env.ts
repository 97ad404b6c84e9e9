/**
 * What the send and receive commands get from `main`.
 *
 * @module
 */
import type { ThinClient } from "../lib/client.ts";
import type { Output } from "./_io.ts";
import type { Progress } from "./_progress.ts";
import type { TransferStore } from "./_state.ts";

/** The command's surroundings. */
export interface CommandEnv {
  /** Connects to the daemon (after local checks passed). */
  connect(): Promise<ThinClient>;
  /** Progress and notes on stderr. */
  progress: Progress;
  /** Standard output. */
  stdout: Output;
  /** Standard error. */
  stderr: Output;
  /** Standard input. */
  stdin: ReadableStream<Uint8Array>;
  /** Print results as JSON. */
  json: boolean;
  /** Cancels or times out the command. */
  signal: AbortSignal;
  /** Resume state, or `null` with `--no-state`. */
  store: TransferStore | null;
  /** Clock in milliseconds. */
  now(): number;
}

/** Prints the final result: a line of text, or one JSON object. */
export function printResult(
  out: CommandEnv["stdout"],
  json: boolean,
  text: string,
  result: Record<string, unknown>,
): void {
  out.text(json ? JSON.stringify(result) + "\n" : text + "\n");
}
