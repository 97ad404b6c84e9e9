/**
 * Transports of the thin client: dialers for TCP, Unix domain sockets
 * (including Linux abstract `@name` sockets) and WebSocket, and loading of
 * `thinclient.toml`. TCP and Unix sockets need Deno or Node 22+; the
 * WebSocket dialer also works in browsers.
 *
 * @example Usage
 * ```ts
 * import { dialerFromConfig, parseConfig } from "@katzenpost/thinclient/transport";
 * const config = parseConfig('[Dial.Tcp]\nAddress = "127.0.0.1:64331"\n');
 * const dialer = dialerFromConfig(config.dial);
 * console.log(dialer.address); // "tcp 127.0.0.1:64331"
 * ```
 *
 * @module
 */
export { connect, dialerFromConfig, loadConfig } from "./connect.ts";
export { TcpDialer } from "./tcp.ts";
export { UnixDialer } from "./unix.ts";
export { WebSocketDialer } from "./websocket.ts";
export {
  MAX_CONFIG_SIZE,
  parseConfig,
  parseTcpAddress,
  validateDialConfig,
} from "../lib/config.ts";
export type {
  DialConfig,
  ParseConfigOptions,
  TcpAddress,
  TcpDialConfig,
  ThinClientConfig,
  UnixDialConfig,
  WebSocketDialConfig,
} from "../lib/config.ts";
export type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
