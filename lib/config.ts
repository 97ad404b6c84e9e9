/**
 * The thin client's configuration: which transport to dial and where. It is
 * read from the same `thinclient.toml` the Go thin client reads (a single
 * `[Dial]` table with exactly one of `[Dial.Tcp]`, `[Dial.Unix]` or
 * `[Dial.Ws]`), or built in code.
 *
 * This file is runtime-neutral: it parses text and checks objects; reading a
 * file and opening sockets happen in the `transport` module.
 *
 * @example Usage
 * ```ts
 * import { parseConfig } from "@katzenpost/thinclient/transport";
 * const config = parseConfig(`
 * [Dial]
 *   [Dial.Tcp]
 *     Address = "127.0.0.1:64331"
 *     Network = "tcp"
 * `);
 * console.log(config.dial); // { tcp: { address: "127.0.0.1:64331", network: "tcp" } }
 * ```
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { parseToml, TomlSyntaxError } from "./toml.ts";

/**
 * Dial the daemon over TCP (`[Dial.Tcp]`).
 *
 * @example Usage
 * ```ts
 * import type { TcpDialConfig } from "@katzenpost/thinclient/transport";
 * const tcp: TcpDialConfig = { address: "[::1]:64331", network: "tcp6" };
 * ```
 */
export interface TcpDialConfig {
  /** `host:port`; an IPv6 literal goes in brackets, as in `[::1]:64331`. */
  address: string;
  /**
   * `tcp` uses whatever address family the host name resolves to; `tcp4` and
   * `tcp6` restrict it to IPv4 or IPv6.
   *
   * @default {"tcp"}
   */
  network?: "tcp" | "tcp4" | "tcp6";
}

/**
 * Dial the daemon over a Unix domain socket (`[Dial.Unix]`).
 *
 * @example Usage
 * ```ts
 * import type { UnixDialConfig } from "@katzenpost/thinclient/transport";
 * const path: UnixDialConfig = { address: "/run/kpclientd/thin.sock" };
 * const abstract: UnixDialConfig = { address: "@kpclientd" };
 * ```
 */
export interface UnixDialConfig {
  /**
   * The socket's file-system path, or `@name` for a Linux abstract socket
   * (named exactly as Go names it: a NUL byte, then `name`, no padding).
   */
  address: string;
}

/**
 * Dial the daemon over a WebSocket (`[Dial.Ws]`).
 *
 * @example Usage
 * ```ts
 * import type { WebSocketDialConfig } from "@katzenpost/thinclient/transport";
 * const ws: WebSocketDialConfig = { address: "ws://127.0.0.1:64331/" };
 * ```
 */
export interface WebSocketDialConfig {
  /** A `ws://` or `wss://` URL (`http://` and `https://` are read as such too). */
  address: string;
  /**
   * Allow a plain `ws://` URL whose host is not a loopback address. The thin
   * protocol has no encryption or authentication of its own, so this is
   * refused unless set; `wss://` is allowed to any host. There is no TOML key
   * for it; set it in code.
   *
   * @default {false}
   */
  allowRemote?: boolean;
}

/**
 * Exactly one transport to dial.
 *
 * @example Usage
 * ```ts
 * import type { DialConfig } from "@katzenpost/thinclient/transport";
 * const dial: DialConfig = { unix: { address: "@kpclientd" } };
 * ```
 */
export type DialConfig =
  | { tcp: TcpDialConfig }
  | { unix: UnixDialConfig }
  | { ws: WebSocketDialConfig };

/**
 * The whole thin client configuration, as read from `thinclient.toml`.
 *
 * @example Usage
 * ```ts
 * import type { ThinClientConfig } from "@katzenpost/thinclient/transport";
 * const config: ThinClientConfig = { dial: { tcp: { address: "127.0.0.1:64331" } } };
 * ```
 */
export interface ThinClientConfig {
  /** Where the daemon listens. */
  dial: DialConfig;
}

/**
 * Options of {@linkcode parseConfig}.
 *
 * @example Usage
 * ```ts
 * import type { ParseConfigOptions } from "@katzenpost/thinclient/transport";
 * const options: ParseConfigOptions = { path: "thinclient.toml" };
 * ```
 */
export interface ParseConfigOptions {
  /** The file the text came from; error messages name it. */
  path?: string;
}

/**
 * A TCP address split into host and port.
 *
 * @example Usage
 * ```ts
 * import type { TcpAddress } from "@katzenpost/thinclient/transport";
 * const addr: TcpAddress = { hostname: "::1", port: 64331 };
 * ```
 */
export interface TcpAddress {
  /** Host name or IP literal, without brackets; empty means the local system. */
  hostname: string;
  /** Port number, 1 to 65535. */
  port: number;
}

/**
 * The largest `thinclient.toml` accepted: 64 KiB. The file holds one
 * `[Dial]` table of a line or two; a larger one is not a thin client
 * configuration, and parsing megabytes of TOML costs seconds and gigabytes.
 *
 * @example Usage
 * ```ts
 * import { MAX_CONFIG_SIZE } from "@katzenpost/thinclient/transport";
 * console.log(MAX_CONFIG_SIZE); // 65536
 * ```
 */
export const MAX_CONFIG_SIZE: number = 65_536;

type _Kind = "tcp" | "unix" | "ws";
type _Field = "address" | "network" | "allowRemote";

/** How keys are spelt in the source being checked (TOML file or code). */
interface _Naming {
  /** Error message start, without the colon. */
  prefix: string;
  /** Key path of the dial table itself (`Dial` or `` for code). */
  root: string;
  kinds: Record<_Kind, string>;
  /** Field names per kind; a field missing here is an unknown key. */
  fields: Record<_Kind, Partial<Record<_Field, string>>>;
  /** Names value types the way the source does (TOML or JavaScript). */
  toml: boolean;
}

const TOML_FIELDS: Record<_Kind, Partial<Record<_Field, string>>> = {
  tcp: { address: "Address", network: "Network" },
  unix: { address: "Address" },
  ws: { address: "Address" },
};

const CODE_FIELDS: Record<_Kind, Partial<Record<_Field, string>>> = {
  tcp: { address: "address", network: "network" },
  unix: { address: "address" },
  ws: { address: "address", allowRemote: "allowRemote" },
};

const KINDS: readonly _Kind[] = ["tcp", "unix", "ws"];
const NETWORKS: readonly string[] = ["tcp", "tcp4", "tcp6"];

/**
 * Parses the text of a `thinclient.toml` file, strictly, as the Go thin client
 * does: the only top-level table is `[Dial]`, which holds exactly one of
 * `[Dial.Tcp]` (`Address`, optional `Network`), `[Dial.Unix]` (`Address`) or
 * `[Dial.Ws]` (`Address`). Any other key or table is an error, including
 * geometry sections and the old flat `Network`/`Address` layout.
 *
 * The loopback rule for plain `ws://` addresses is not applied here, so that
 * code may still set `allowRemote`; {@linkcode validateDialConfig} and the
 * dialers apply it.
 *
 * @param tomlText The TOML source.
 * @param options The file name for error messages.
 * @returns The configuration, with keys in camelCase and an empty `Network`
 * left out.
 * @throws {ConfigError} When the text is longer than
 * {@linkcode MAX_CONFIG_SIZE} UTF-8 bytes (checked before parsing), is not
 * valid TOML (the parser's error, with line and column, is the `cause`), or
 * does not follow the rules above; `key` names the offending dotted key, for
 * example `Dial.Pipe`.
 *
 * @example Usage
 * ```ts
 * import { ConfigError } from "@katzenpost/thinclient";
 * import { parseConfig } from "@katzenpost/thinclient/transport";
 * try {
 *   parseConfig('[Dial.Pipe]\nAddress = "x"\n');
 * } catch (err) {
 *   console.log(err instanceof ConfigError && err.message);
 *   // "Cannot load config: unknown key 'Dial.Pipe'"
 * }
 * ```
 */
export function parseConfig(
  tomlText: string,
  options?: ParseConfigOptions,
): ThinClientConfig {
  const prefix = _configPrefix(options?.path);
  // A UTF-16 code unit is 1 to 3 UTF-8 bytes: only a text between a third
  // of the limit and the limit needs counting.
  if (
    tomlText.length > MAX_CONFIG_SIZE ||
    (tomlText.length > MAX_CONFIG_SIZE / 3 &&
      new TextEncoder().encode(tomlText).length > MAX_CONFIG_SIZE)
  ) {
    throw new ConfigError(
      `${prefix}: it is larger than ${MAX_CONFIG_SIZE} bytes; a thinclient.toml holds one [Dial] table (is this the right file?)`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(tomlText);
  } catch (err) {
    if (err instanceof TomlSyntaxError) {
      throw new ConfigError(
        `${prefix}: invalid TOML at line ${err.line}, column ${err.column}: ${err.reason}`,
        { cause: err },
      );
    }
    throw err;
  }
  for (const key of Object.keys(doc)) {
    if (key !== "Dial") {
      throw new ConfigError(`${prefix}: unknown key '${key}'`, { key });
    }
  }
  if (doc.Dial === undefined) {
    throw new ConfigError(`${prefix}: missing table 'Dial'`, { key: "Dial" });
  }
  return { dial: _checkDial(doc.Dial, _TOML_NAMING(prefix), false) };
}

function _configPrefix(path: string | undefined): string {
  return path === undefined
    ? "Cannot load config"
    : `Cannot load config '${path}'`;
}

const _TOML_NAMING = (prefix: string): _Naming => ({
  prefix,
  root: "Dial",
  kinds: { tcp: "Tcp", unix: "Unix", ws: "Ws" },
  fields: TOML_FIELDS,
  toml: true,
});

/**
 * Applies the checks of {@linkcode validateDialConfig} (the loopback rule
 * included) to a dial configuration read from a file by
 * {@linkcode parseConfig}, naming keys as the file spells them
 * (`Dial.Ws.Address`) and the file in the message. Internal to the
 * transport module.
 *
 * @param dial The configuration as parseConfig returned it.
 * @param path The file it came from.
 * @returns The configuration, checked.
 * @throws {ConfigError} When it breaks a rule.
 */
export function _checkLoadedDial(dial: DialConfig, path: string): DialConfig {
  const kinds: Record<_Kind, string> = { tcp: "Tcp", unix: "Unix", ws: "Ws" };
  const raw: Record<string, unknown> = {};
  for (const kind of KINDS) {
    const table = (dial as unknown as Record<
      string,
      Record<string, unknown> | undefined
    >)[kind];
    if (table === undefined) continue;
    const out: Record<string, unknown> = {};
    for (const [field, name] of Object.entries(TOML_FIELDS[kind])) {
      if (table[field] !== undefined) out[name] = table[field];
    }
    raw[kinds[kind]] = out;
  }
  _checkDial(raw, _TOML_NAMING(_configPrefix(path)), true);
  return dial;
}

/**
 * Checks a dial configuration built in code, with the same rules as
 * {@linkcode parseConfig} (keys in camelCase), plus the loopback rule: a plain
 * `ws://` address must name a loopback host (`127.0.0.0/8`, `::1` or
 * `localhost`) unless `allowRemote` is `true`.
 *
 * @param dial The configuration to check.
 * @returns A normalised copy (an empty `network` left out).
 * @throws {ConfigError} When the configuration is invalid; `key` names the
 * offending key, for example `tcp.address`.
 *
 * @example Usage
 * ```ts
 * import { validateDialConfig } from "@katzenpost/thinclient/transport";
 * const dial = validateDialConfig({ tcp: { address: "localhost:64331" } });
 * console.log(dial); // { tcp: { address: "localhost:64331" } }
 * ```
 */
export function validateDialConfig(dial: DialConfig): DialConfig {
  const naming: _Naming = {
    prefix: "Cannot use dial config",
    root: "",
    kinds: { tcp: "tcp", unix: "unix", ws: "ws" },
    fields: CODE_FIELDS,
    toml: false,
  };
  return _checkDial(dial, naming, true);
}

/**
 * Splits a TCP address of the form `host:port` or `[ipv6]:port`, as Go's
 * `net.SplitHostPort` does, and checks the port.
 *
 * @param address The address, for example `127.0.0.1:64331` or `[::1]:64331`.
 * @returns The host name (brackets removed) and the port number.
 * @throws {TypeError} When the address is not of that form or the port is not
 * a number from 1 to 65535.
 *
 * @example Usage
 * ```ts
 * import { parseTcpAddress } from "@katzenpost/thinclient/transport";
 * console.log(parseTcpAddress("[::1]:64331")); // { hostname: "::1", port: 64331 }
 * ```
 */
export function parseTcpAddress(address: string): TcpAddress {
  const result = _splitHostPort(address);
  if (typeof result === "string") {
    throw new TypeError(`Cannot parse TCP address '${address}': ${result}`);
  }
  return result;
}

// Whether a URL's hostname (as `URL.hostname` spells it) is a loopback
// address: `localhost`, `127.0.0.0/8`, `[::1]`, or IPv4-mapped `127.0.0.0/8`.
function _isLoopbackHostname(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || host === "[::1]") return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  return /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host);
}

function _splitHostPort(address: string): TcpAddress | string {
  let hostname: string;
  let portText: string;
  if (address.startsWith("[")) {
    const end = address.indexOf("]");
    if (end < 0) return "missing ']' in address";
    hostname = address.slice(1, end);
    const rest = address.slice(end + 1);
    if (!rest.startsWith(":")) return "missing port in address";
    portText = rest.slice(1);
  } else {
    const colon = address.lastIndexOf(":");
    if (colon < 0) return "missing port in address";
    hostname = address.slice(0, colon);
    if (hostname.includes(":")) {
      return "too many colons in address (put an IPv6 address in brackets)";
    }
    portText = address.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return `invalid port '${portText}'`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`;
  return { hostname, port };
}

function _describe(value: unknown, toml: boolean): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Date) return "datetime";
  if (typeof value === "number") {
    if (!toml) return "number";
    return Number.isInteger(value) ? "integer" : "float";
  }
  if (typeof value === "object") return toml ? "table" : "object";
  return typeof value;
}

function _isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof Date);
}

function _checkDial(
  raw: unknown,
  naming: _Naming,
  applyPolicy: boolean,
): DialConfig {
  const { prefix, toml } = naming;
  const tableWord = toml ? "a table" : "an object";
  const path = (...parts: string[]): string =>
    [naming.root, ...parts].filter((p) => p !== "").join(".");
  const fail = (detail: string, key?: string): ConfigError =>
    new ConfigError(
      `${prefix}: ${detail}`,
      key === undefined ? undefined : { key },
    );

  if (!_isTable(raw)) {
    const what = naming.root === "" ? "dial config" : `key '${naming.root}'`;
    throw fail(
      `${what} must be ${tableWord}, got ${_describe(raw, toml)}`,
      naming.root === "" ? undefined : naming.root,
    );
  }
  const kindByName = new Map<string, _Kind>(
    KINDS.map((k) => [naming.kinds[k], k]),
  );
  const present: _Kind[] = [];
  for (const [name, value] of Object.entries(raw)) {
    const kind = kindByName.get(name);
    if (kind === undefined) {
      throw fail(`unknown key '${path(name)}'`, path(name));
    }
    if (value === undefined) continue;
    if (!_isTable(value)) {
      throw fail(
        `key '${path(name)}' must be ${tableWord}, got ${
          _describe(value, toml)
        }`,
        path(name),
      );
    }
    const allowed = new Set(Object.values(naming.fields[kind]));
    for (const field of Object.keys(value)) {
      if (!allowed.has(field)) {
        throw fail(`unknown key '${path(name, field)}'`, path(name, field));
      }
    }
    present.push(kind);
  }
  const [kind, second] = present;
  if (kind === undefined) {
    const options = KINDS.map((k) =>
      toml ? `[${path(naming.kinds[k])}]` : `'${naming.kinds[k]}'`
    );
    throw fail(
      `no dial transport configured: add one of ${options.join(", ")}`,
      naming.root === "" ? undefined : naming.root,
    );
  }
  if (second !== undefined) {
    const names = present.map((k) => `'${path(naming.kinds[k])}'`);
    throw fail(
      `exactly one dial transport must be configured, found ${
        names.join(" and ")
      }`,
      naming.root === "" ? undefined : naming.root,
    );
  }

  const table = raw[naming.kinds[kind]] as Record<string, unknown>;
  const fieldKey = (field: _Field): string =>
    path(naming.kinds[kind], naming.fields[kind][field] ?? field);
  const fieldValue = (field: _Field): unknown => {
    const name = naming.fields[kind][field];
    return name === undefined ? undefined : table[name];
  };
  const stringField = (
    field: _Field,
    required: boolean,
  ): string | undefined => {
    const value = fieldValue(field);
    const key = fieldKey(field);
    if (value === undefined) {
      if (required) throw fail(`missing key '${key}'`, key);
      return undefined;
    }
    if (typeof value !== "string") {
      throw fail(
        `key '${key}' must be a string, got ${_describe(value, toml)}`,
        key,
      );
    }
    return value;
  };

  const address = stringField("address", true) as string;
  const addressKey = fieldKey("address");
  const badAddress = (detail: string): ConfigError =>
    fail(`key '${addressKey}' ${detail}`, addressKey);
  if (address === "") throw badAddress("must not be empty");

  switch (kind) {
    case "tcp": {
      const network = stringField("network", false);
      if (
        network !== undefined && network !== "" && !NETWORKS.includes(network)
      ) {
        const key = fieldKey("network");
        throw fail(
          `key '${key}' must be 'tcp', 'tcp4' or 'tcp6', got '${network}'`,
          key,
        );
      }
      const split = _splitHostPort(address);
      if (typeof split === "string") {
        throw badAddress(`must be 'host:port', got '${address}': ${split}`);
      }
      const tcp: TcpDialConfig = { address };
      if (network !== undefined && network !== "") {
        tcp.network = network as "tcp" | "tcp4" | "tcp6";
      }
      return { tcp };
    }
    case "unix": {
      if (address === "@") {
        throw badAddress("must name a socket: '@' alone has no name");
      }
      if (address.includes("\0")) {
        throw badAddress(
          "must not contain NUL bytes (write '@name' for an abstract socket)",
        );
      }
      return { unix: { address } };
    }
    case "ws": {
      let url: URL;
      try {
        url = new URL(address);
      } catch (err) {
        throw new ConfigError(
          `${prefix}: key '${addressKey}' must be a ws:// or wss:// URL, got '${address}'`,
          { key: addressKey, cause: err },
        );
      }
      if (!["ws:", "wss:", "http:", "https:"].includes(url.protocol)) {
        throw badAddress(`must be a ws:// or wss:// URL, got '${address}'`);
      }
      if (url.hash !== "") {
        throw badAddress(`must not contain a fragment, got '${address}'`);
      }
      const allowRemote = fieldValue("allowRemote");
      if (allowRemote !== undefined && typeof allowRemote !== "boolean") {
        const key = fieldKey("allowRemote");
        throw fail(
          `key '${key}' must be a boolean, got ${_describe(allowRemote, toml)}`,
          key,
        );
      }
      const plain = url.protocol === "ws:" || url.protocol === "http:";
      if (
        applyPolicy && plain && allowRemote !== true &&
        !_isLoopbackHostname(url.hostname)
      ) {
        throw badAddress(
          `names non-loopback host '${url.hostname}' over plain ws://, which would carry the thin protocol unencrypted: use wss:// or ${
            toml
              ? "pass a config object with 'ws.allowRemote' set to true (there is no TOML key for it)"
              : `set '${fieldKey("allowRemote")}' to true`
          }`,
        );
      }
      const ws: WebSocketDialConfig = { address };
      if (allowRemote !== undefined) ws.allowRemote = allowRemote;
      return { ws };
    }
  }
}
