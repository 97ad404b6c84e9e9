/**
 * The TCP transport: {@linkcode TcpDialer} dials `host:port` with Deno's
 * socket API, or with node:net on Node.
 *
 * @module
 */
import type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
import {
  parseTcpAddress,
  type TcpDialConfig,
  validateDialConfig,
} from "../lib/config.ts";
import { ConnectionError } from "../lib/errors.ts";
import { _dialAbortable } from "./_errors.ts";
import { _socketBackend } from "./_runtime.ts";

/**
 * Dials the daemon over TCP, with `TCP_NODELAY` set. With network `tcp4` or
 * `tcp6` a host name is resolved to addresses of that family only, and an IP
 * literal of the other family is refused.
 *
 * @example Usage
 * ```ts ignore
 * import { TcpDialer } from "@katzenpost/thinclient/transport";
 * const dialer = new TcpDialer({ address: "127.0.0.1:64331" });
 * const conn = await dialer.dial({ signal: AbortSignal.timeout(5000) });
 * conn.close();
 * ```
 */
export class TcpDialer implements Dialer {
  /** `tcp 127.0.0.1:64331` (or `tcp4 …`, `tcp6 …`). */
  readonly address: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #family: 0 | 4 | 6;

  /**
   * Creates a dialer; nothing is opened until {@linkcode TcpDialer.dial}.
   *
   * @param config Address and optional network.
   * @throws {ConfigError} When the configuration is invalid.
   */
  constructor(config: TcpDialConfig) {
    const { tcp } = validateDialConfig({ tcp: config }) as {
      tcp: TcpDialConfig;
    };
    const network = tcp.network ?? "tcp";
    this.address = `${network} ${tcp.address}`;
    const { hostname, port } = parseTcpAddress(tcp.address);
    this.#family = network === "tcp4" ? 4 : network === "tcp6" ? 6 : 0;
    // Like Go, an empty host means the local system.
    this.#hostname = hostname !== ""
      ? hostname
      : this.#family === 6
      ? "::1"
      : "127.0.0.1";
    this.#port = port;
  }

  /**
   * Opens a connection.
   *
   * @param options An abort signal.
   * @returns The connection.
   * @throws {ConnectionError} When the connection cannot be opened, for
   * example `Cannot dial daemon at 'tcp 127.0.0.1:1': Connection refused`
   * (the runtime's error is the `cause`).
   * @throws {unknown} `signal.reason` when the signal aborts the dial.
   *
   * @example Usage
   * ```ts ignore
   * import { TcpDialer } from "@katzenpost/thinclient/transport";
   * const conn = await new TcpDialer({ address: "localhost:64331" }).dial();
   * conn.close();
   * ```
   */
  async dial(options?: DialOptions): Promise<Conn> {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const literal = this.#hostname.includes(":")
      ? 6
      : /^\d{1,3}(\.\d{1,3}){3}$/.test(this.#hostname)
      ? 4
      : 0;
    if (this.#family !== 0 && literal !== 0 && literal !== this.#family) {
      throw new ConnectionError(
        `Cannot dial daemon at '${this.address}': '${this.#hostname}' is not an IPv${this.#family} address`,
      );
    }
    const backend = await _socketBackend();
    if (backend === undefined) {
      throw new ConnectionError(
        `Cannot dial daemon at '${this.address}': TCP needs Deno or Node; in a browser use the WebSocket transport`,
      );
    }
    return await _dialAbortable(
      this.address,
      signal,
      () =>
        backend.dialTcp(
          this.#hostname,
          this.#port,
          this.#family,
          this.address,
          signal,
        ),
    );
  }
}
