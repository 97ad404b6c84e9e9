/**
 * Resume state of pigeonhole-cp transfers (`--state`): the CLI side of the
 * state file whose SQL is in persistent/_transfer_store.ts.
 *
 * The file holds no capability, but it does hold box indices and the
 * temporary stream's seed: it is created with mode 0600 in a 0700 folder
 * (an existing file readable by others is made private). Another SQLite
 * file given as `--state` is refused before anything is written to it. A
 * saved record is checked field by field before it is used (see
 * {@linkcode recordFits}). Failures are one-line {@linkcode CliError}s.
 *
 * @module
 */
import { PersistentError } from "../persistent/errors.ts";
import {
  type StoredTransfer,
  TransferDb,
} from "../persistent/_transfer_store.ts";
import { CliError, ExitCode, fsReason } from "./_errors.ts";

export type { StoredTransfer };

/** What a field of a saved record must be. */
export type FieldRule =
  | "uint" // a safe non-negative integer
  | "string"
  | "index" // 104 bytes (a MessageBoxIndex)
  | "index?"
  | "32 bytes"
  | "32 bytes?"
  | "uints"; // an array of safe non-negative integers

function fits(value: unknown, rule: FieldRule): boolean {
  const optional = rule.endsWith("?");
  if (optional && (value === undefined || value === null)) return true;
  switch (optional ? rule.slice(0, -1) as FieldRule : rule) {
    case "uint":
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case "string":
      return typeof value === "string";
    case "index":
      return value instanceof Uint8Array && value.length === 104;
    case "32 bytes":
      return value instanceof Uint8Array && value.length === 32;
    case "uints":
      return Array.isArray(value) && value.length <= 65_536 &&
        value.every((x) => Number.isSafeInteger(x) && x >= 0);
  }
  return false;
}

/**
 * Whether a saved record has every field its rules ask for, of the right
 * type (a record edited by hand, cut short or from another version is not
 * trusted: it is dropped and the transfer starts over).
 */
export function recordFits(
  record: Record<string, unknown>,
  rules: Readonly<Record<string, FieldRule>>,
): boolean {
  for (const [key, rule] of Object.entries(rules)) {
    const value = Object.hasOwn(record, key) ? record[key] : undefined;
    if (!fits(value, rule)) return false;
  }
  return true;
}

/** The open state file; its writes fail with a one-line {@linkcode CliError}. */
export type TransferStore = TransferDb;

/** Opens the state file of pigeonhole-cp. */
export const TransferStore: {
  /**
   * Opens or creates the state file (and its folder, mode 0700). Another
   * SQLite file, or a file that is not one, is refused before anything is
   * written to it.
   *
   * @throws {CliError} Input, when it cannot be opened.
   */
  open(path: string): Promise<TransferStore>;
} = { open: openTransferStore };

async function openTransferStore(path: string): Promise<TransferStore> {
  const fail = (err: unknown): CliError =>
    new CliError(
      ExitCode.Input,
      err instanceof PersistentError
        ? err.message
        : `Cannot open state file '${path}': ${fsReason(err)}`,
      { cause: err },
    );
  const slash = path.lastIndexOf("/");
  if (path !== ":memory:" && slash > 0) {
    try {
      await Deno.mkdir(path.slice(0, slash), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fail(err);
    }
  }
  try {
    return await TransferDb.open(path, { writeError });
  } catch (err) {
    throw fail(err);
  }
}

/** A failed write (a full disk, say): the transfer itself goes on later. */
function writeError(err: PersistentError): CliError {
  return new CliError(
    ExitCode.Failure,
    `${err.message} (the transfer itself is not lost: free space or pass --no-state)`,
    { cause: err },
  );
}
