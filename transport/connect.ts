/**
 * Wiring from configuration to a {@linkcode Dialer}: {@linkcode dialerFromConfig}
 * picks the transport of a {@linkcode DialConfig}, {@linkcode loadConfig}
 * reads a `thinclient.toml` file.
 *
 * @module
 */
import { ThinClient, type ThinClientOptions } from "../lib/client.ts";
import type { Dialer } from "../lib/conn.ts";
import {
  _checkLoadedDial,
  type DialConfig,
  MAX_CONFIG_SIZE,
  parseConfig,
  type ThinClientConfig,
  validateDialConfig,
} from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { _reason } from "./_errors.ts";
import { _socketBackend } from "./_runtime.ts";
import { TcpDialer } from "./tcp.ts";
import { UnixDialer } from "./unix.ts";
import { WebSocketDialer } from "./websocket.ts";

/**
 * Creates the dialer for a dial configuration: a {@linkcode TcpDialer},
 * {@linkcode UnixDialer} or {@linkcode WebSocketDialer}. Nothing is opened yet.
 *
 * @param dial Exactly one transport, as in {@linkcode ThinClientConfig.dial}.
 * @returns The dialer.
 * @throws {ConfigError} When the configuration is invalid (see
 * {@linkcode validateDialConfig}).
 *
 * @example Usage
 * ```ts
 * import { dialerFromConfig } from "@katzenpost/thinclient/transport";
 * const dialer = dialerFromConfig({ tcp: { address: "127.0.0.1:64331" } });
 * console.log(dialer.address); // "tcp 127.0.0.1:64331"
 * ```
 */
export function dialerFromConfig(dial: DialConfig): Dialer {
  const checked = validateDialConfig(dial);
  if ("tcp" in checked) return new TcpDialer(checked.tcp);
  if ("unix" in checked) return new UnixDialer(checked.unix);
  return new WebSocketDialer(checked.ws);
}

/**
 * Reads and parses a `thinclient.toml` file (see {@linkcode parseConfig} for
 * the rules). Works in Deno (needs read permission for the file) and Node.
 *
 * @param path The file's path or `file:` URL.
 * @returns The configuration.
 * @throws {ConfigError} When the file cannot be read (the message names the
 * path; the runtime's error is the `cause`), is larger than
 * {@linkcode MAX_CONFIG_SIZE} (found before more than that is read), or its
 * contents are invalid.
 *
 * @example Usage
 * ```ts ignore
 * import { dialerFromConfig, loadConfig } from "@katzenpost/thinclient/transport";
 * const config = await loadConfig("testdata/thinclient.toml");
 * const dialer = dialerFromConfig(config.dial);
 * ```
 */
export async function loadConfig(
  path: string | URL,
): Promise<ThinClientConfig> {
  const name = typeof path === "string" ? path : path.href;
  const backend = await _socketBackend();
  if (backend === undefined) {
    throw new ConfigError(
      `Cannot load config '${name}': reading files needs Deno or Node; pass a config object instead`,
    );
  }
  let text: string | null;
  try {
    text = await backend.readTextFile(path, MAX_CONFIG_SIZE);
  } catch (err) {
    throw new ConfigError(`Cannot load config '${name}': ${_reason(err)}`, {
      cause: err,
    });
  }
  if (text === null) {
    throw new ConfigError(
      `Cannot load config '${name}': it is larger than ${MAX_CONFIG_SIZE} bytes; a thinclient.toml holds one [Dial] table (is this the right file?)`,
    );
  }
  return parseConfig(text, { path: name });
}

/**
 * Connects a {@linkcode ThinClient} from a `thinclient.toml` path, a parsed
 * configuration, or a bare dial configuration. Resolves when the handshake
 * with the daemon is complete.
 *
 * @param config A path or `file:` URL of a `thinclient.toml`, a
 *   {@linkcode ThinClientConfig}, or a {@linkcode DialConfig}.
 * @param options Options of {@linkcode ThinClient.connect}.
 * @returns The connected client.
 * @throws {ConfigError} When the configuration is invalid (for a file, the
 *   message names it and `key` is spelt as in the file, e.g. `Dial.Ws.Address`).
 * @throws {ConnectionError} When the daemon cannot be reached.
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 * await using client = await connect("testdata/thinclient.toml");
 * console.log(client.sphinxGeometry.userForwardPayloadLength);
 * ```
 */
export async function connect(
  config: string | URL | ThinClientConfig | DialConfig,
  options: ThinClientOptions = {},
): Promise<ThinClient> {
  let dial: DialConfig;
  if (typeof config === "string" || config instanceof URL) {
    const name = typeof config === "string" ? config : config.href;
    dial = _checkLoadedDial((await loadConfig(config)).dial, name);
  } else if ("dial" in config) {
    dial = config.dial;
  } else {
    dial = config;
  }
  return await ThinClient.connect(dialerFromConfig(dial), options);
}
