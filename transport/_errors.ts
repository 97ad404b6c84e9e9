// Error helpers shared by the transports.
import type { Conn } from "../lib/conn.ts";
import { ConnectionError } from "../lib/errors.ts";

const CODE_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  ECONNABORTED: "Connection aborted",
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EPIPE: "Broken pipe",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENOTSOCK: "Not a socket",
  ENOTFOUND: "Host not found",
  EAI_AGAIN: "Temporary failure in name resolution",
};

/** A short, runtime-independent reason for a socket error. */
export function _reason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && CODE_TEXT[code] !== undefined) {
      return CODE_TEXT[code];
    }
    return err.message.replace(/\s*\(os error \d+\)$/, "");
  }
  return String(err);
}

/** The error of a failed dial: `Cannot dial daemon at '<label>': <reason>`. */
export function _dialError(label: string, err: unknown): ConnectionError {
  return new ConnectionError(
    `Cannot dial daemon at '${label}': ${_reason(err)}`,
    { cause: err },
  );
}

/**
 * Runs a socket dial for `label`: a failure becomes {@linkcode _dialError}
 * (or the signal's reason once aborted), and a connection that opens after
 * the abort is closed again.
 */
export async function _dialAbortable(
  label: string,
  signal: AbortSignal | undefined,
  dial: () => Promise<Conn>,
): Promise<Conn> {
  signal?.throwIfAborted();
  let conn: Conn;
  try {
    conn = await dial();
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw _dialError(label, err);
  }
  if (signal?.aborted) {
    conn.close();
    throw signal.reason;
  }
  return conn;
}

/** The error of a failed read or write on an open connection. */
export function _ioError(
  action: "read from" | "write to",
  label: string,
  err?: unknown,
): ConnectionError {
  if (err === undefined) {
    return new ConnectionError(
      `Cannot ${action} daemon at '${label}': connection closed`,
    );
  }
  return new ConnectionError(
    `Cannot ${action} daemon at '${label}': ${_reason(err)}`,
    { cause: err },
  );
}
