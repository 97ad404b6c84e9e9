// Chooses the socket implementation when a dial happens: Deno's own API when
// `globalThis.Deno` exists, otherwise node:net, loaded with a dynamic import so
// that a browser importing the transport module never loads node:* modules.
import type { Conn } from "../lib/conn.ts";
import { _denoBackend } from "./_deno.ts";

/** What the TCP and Unix dialers need from a runtime. */
export interface _SocketBackend {
  /** `linux`, `darwin`, `windows`, … (Deno's `Deno.build.os` spelling). */
  readonly platform: string;
  /** Opens a TCP connection; `family` 0 means any. Rejects with the raw error. */
  dialTcp(
    hostname: string,
    port: number,
    family: 0 | 4 | 6,
    label: string,
    signal: AbortSignal | undefined,
  ): Promise<Conn>;
  /** Opens a Unix socket connection; an abstract name starts with NUL. */
  dialUnix(
    path: string,
    label: string,
    signal: AbortSignal | undefined,
  ): Promise<Conn>;
  /**
   * Reads a UTF-8 text file of at most `maxBytes` bytes; `null` when it is
   * longer (no more than `maxBytes + 1` bytes are read to find out).
   */
  readTextFile(path: string | URL, maxBytes: number): Promise<string | null>;
}

let nodeBackend: Promise<_SocketBackend> | undefined;

/**
 * The socket backend of the running runtime, or `undefined` in a runtime that
 * has neither Deno's nor Node's socket API (a browser).
 */
export function _socketBackend(): Promise<_SocketBackend | undefined> {
  if (typeof (globalThis as { Deno?: unknown }).Deno === "object") {
    return Promise.resolve(_denoBackend);
  }
  const process = (globalThis as { process?: { versions?: { node?: string } } })
    .process;
  if (typeof process?.versions?.node === "string") {
    nodeBackend ??= import("./_node.ts").then((m) => m._nodeBackend);
    return nodeBackend;
  }
  return Promise.resolve(undefined);
}
