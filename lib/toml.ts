/**
 * TOML reading for the configuration loader. This is the only file that
 * knows the TOML library (`smol-toml`); everything else sees plain objects and
 * {@linkcode TomlSyntaxError}.
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";

/**
 * A TOML document could not be parsed. `line` and `column` are 1-based and
 * point at the place the parser stopped; `cause` is the parser's own error,
 * whose message shows the offending lines.
 *
 * @example Usage
 * ```ts
 * import { parseToml, TomlSyntaxError } from "./toml.ts";
 * try {
 *   parseToml("[Dial]\nAddress = \n");
 * } catch (err) {
 *   console.log(err instanceof TomlSyntaxError && err.line); // 2
 * }
 * ```
 */
export class TomlSyntaxError extends SyntaxError {
  /** Always `TomlSyntaxError`. */
  override readonly name: string = "TomlSyntaxError";
  /** 1-based line of the error. */
  readonly line: number;
  /** 1-based column of the error. */
  readonly column: number;
  /** What the parser objected to, without the location (for example `unfinished array`). */
  readonly reason: string;
  /**
   * Creates the error.
   *
   * @param reason What the parser objected to, without location.
   * @param line 1-based line.
   * @param column 1-based column.
   * @param options The parser's error as `cause`.
   */
  constructor(
    reason: string,
    line: number,
    column: number,
    options?: ErrorOptions,
  ) {
    super(`Invalid TOML at line ${line}, column ${column}: ${reason}`, options);
    this.reason = reason;
    this.line = line;
    this.column = column;
  }
}

/**
 * Parses a TOML document into plain objects. Tables become objects, arrays
 * become arrays, integers and floats become numbers and date-times become
 * `Date` instances.
 *
 * @param text The TOML source.
 * @returns The top-level table.
 * @throws {TomlSyntaxError} When the text is not valid TOML.
 *
 * @example Usage
 * ```ts
 * import { parseToml } from "./toml.ts";
 * const doc = parseToml('[Dial.Tcp]\nAddress = "127.0.0.1:64331"\n');
 * console.log(doc); // { Dial: { Tcp: { Address: "127.0.0.1:64331" } } }
 * ```
 */
export function parseToml(text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml appends a code excerpt after a blank line; keep the first line.
      const first = err.message.split("\n", 1)[0] ?? err.message;
      const detail = first.replace(/^Invalid TOML document:\s*/, "");
      throw new TomlSyntaxError(detail, err.line, err.column, { cause: err });
    }
    throw err;
  }
}
