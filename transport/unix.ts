/**
 * The Unix domain socket transport: {@linkcode UnixDialer} dials a socket path,
 * or a Linux abstract socket written `@name`.
 *
 * @module
 */
import type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
import { type UnixDialConfig, validateDialConfig } from "../lib/config.ts";
import { ConnectionError } from "../lib/errors.ts";
import { _dialAbortable } from "./_errors.ts";
import { _socketBackend } from "./_runtime.ts";

/**
 * Dials the daemon over a Unix domain socket. An address starting with `@`
 * names a Linux abstract socket the way Go does: a NUL byte followed by the
 * name, with the address length covering exactly those bytes. Deno and
 * Node 22+ connect to such a name; Node 20 pads it (a different socket), so
 * it is refused there. Windows is not supported.
 *
 * @example Usage
 * ```ts ignore
 * import { UnixDialer } from "@katzenpost/thinclient/transport";
 * const dialer = new UnixDialer({ address: "/run/kpclientd/thin.sock" });
 * const conn = await dialer.dial({ signal: AbortSignal.timeout(5000) });
 * conn.close();
 * ```
 */
export class UnixDialer implements Dialer {
  /** `unix /path/to.sock` or `unix @name`. */
  readonly address: string;
  readonly #path: string;

  /**
   * Creates a dialer; nothing is opened until {@linkcode UnixDialer.dial}.
   *
   * @param config The socket path or `@name`.
   * @throws {ConfigError} When the configuration is invalid.
   */
  constructor(config: UnixDialConfig) {
    const { unix } = validateDialConfig({ unix: config }) as {
      unix: UnixDialConfig;
    };
    this.address = `unix ${unix.address}`;
    this.#path = unix.address;
  }

  /**
   * Opens a connection.
   *
   * @param options An abort signal.
   * @returns The connection.
   * @throws {ConnectionError} When the connection cannot be opened (missing
   * socket, refused, no permission, Windows, or an abstract name off Linux or
   * on Node 20); the runtime's error is the `cause`.
   * @throws {unknown} `signal.reason` when the signal aborts the dial.
   *
   * @example Usage
   * ```ts ignore
   * import { UnixDialer } from "@katzenpost/thinclient/transport";
   * const conn = await new UnixDialer({ address: "@kpclientd" }).dial();
   * conn.close();
   * ```
   */
  async dial(options?: DialOptions): Promise<Conn> {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const backend = await _socketBackend();
    const fail = (detail: string): ConnectionError =>
      new ConnectionError(`Cannot dial daemon at '${this.address}': ${detail}`);
    if (backend === undefined) {
      throw fail(
        "Unix sockets need Deno or Node; in a browser use the WebSocket transport",
      );
    }
    if (backend.platform === "windows") {
      throw fail("Unix sockets are not supported on Windows; use TCP");
    }
    let path = this.#path;
    if (path.startsWith("@")) {
      if (backend.platform !== "linux" && backend.platform !== "android") {
        throw fail(
          `abstract sockets ('@name') exist only on Linux, not on '${backend.platform}'`,
        );
      }
      path = "\0" + path.slice(1);
    }
    return await _dialAbortable(
      this.address,
      signal,
      () => backend.dialUnix(path, this.address, signal),
    );
  }
}
