// Error helpers shared by the transports.
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
