// The interface each runtime's socket code implements (transport/_deno.ts,
// transport/_node.ts); transport/_runtime.ts picks one when a dial happens.
import type { Conn } from "../lib/conn.ts";

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
