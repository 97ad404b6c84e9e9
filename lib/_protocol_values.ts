/**
 * The schema of lib/_protocol_schema.ts compiled into flat field tables,
 * once, when the module loads, and the checks of decoded field values
 * against them: the typed {@linkcode ProtocolError}s that name the field
 * and what it held.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import {
  type BaseName,
  HASH_LENGTH,
  ID_LENGTH,
  REQUESTS,
  RESPONSES,
  STRUCTS,
  type StructSpec,
  type TypeName,
  type VariantSpecs,
} from "./_protocol_schema.ts";

/** How a base type is checked. */
interface BaseSpec {
  readonly kind: "bytes" | "uint" | "u64" | "time" | "bool" | "text" | "struct";
  /** Exact length of a byte string. */
  readonly length?: number;
  /** Largest value of an unsigned integer. */
  readonly max?: number;
  /** The fields of a map. */
  readonly fields?: StructSpec;
  /** What an array of it is called in errors. */
  readonly array: string;
}

const BYTES = "an array of byte strings";
const MAPS = "an array of maps";
const ARRAY = "an array";

/** Every base type of the schema: the mapped type makes the list complete. */
const BASES: { readonly [K in BaseName]: BaseSpec } = {
  bytes: { kind: "bytes", array: BYTES },
  id: { kind: "bytes", length: ID_LENGTH, array: BYTES },
  hash: { kind: "bytes", length: HASH_LENGTH, array: BYTES },
  u8: { kind: "uint", max: 255, array: ARRAY },
  u32: { kind: "uint", max: 0xffff_ffff, array: ARRAY },
  uint: { kind: "uint", max: Number.MAX_SAFE_INTEGER, array: ARRAY },
  u64: { kind: "u64", array: ARRAY },
  time: { kind: "time", array: ARRAY },
  bool: { kind: "bool", array: ARRAY },
  text: { kind: "text", array: ARRAY },
  sphinxGeometry: {
    kind: "struct",
    fields: STRUCTS.sphinxGeometry,
    array: MAPS,
  },
  pigeonholeGeometry: {
    kind: "struct",
    fields: STRUCTS.pigeonholeGeometry,
    array: MAPS,
  },
  copyDestination: {
    kind: "struct",
    fields: STRUCTS.copyDestination,
    array: MAPS,
  },
  directoryAuthority: {
    kind: "struct",
    fields: STRUCTS.directoryAuthority,
    array: MAPS,
  },
};

/** One field of the schema, compiled. */
export interface Field {
  /** The TypeScript property. */
  readonly name: string;
  /** The CBOR map key. */
  readonly wire: string;
  /** `variant.wire_key`, as errors name the field. */
  readonly where: string;
  /** The base type. */
  readonly base: BaseSpec;
  /** An array of the base type. */
  readonly array: boolean;
  /** `null` stands for an absent field. */
  readonly nullable: boolean;
  /** Left out of a request when zero. */
  readonly omitEmpty: boolean;
  /** An absent byte string decodes as zero bytes. */
  readonly zero: boolean;
  /** The compiled fields of a map, or `null`. */
  readonly struct: readonly Field[] | null;
  /** For an array: its elements (the base type, required), else `null`. */
  readonly element: Field | null;
}

function compileField(
  name: string,
  spec: StructSpec[string],
  prefix: string,
): Field {
  const type: TypeName = spec.type;
  const nullable = type.endsWith("?");
  const bare = nullable ? type.slice(0, -1) : type;
  const array = bare.endsWith("[]");
  const base = BASES[(array ? bare.slice(0, -2) : bare) as BaseName];
  const field: Field = {
    name,
    wire: spec.wire,
    where: `${prefix}${spec.wire}`,
    base,
    array: false,
    nullable: false,
    omitEmpty: false,
    zero: false,
    struct: base.fields === undefined ? null : compileStruct(base.fields, ""),
    element: null,
  };
  if (!array && !nullable && spec.omitEmpty !== true && spec.zero !== true) {
    return field;
  }
  return {
    ...field,
    array,
    nullable,
    omitEmpty: spec.omitEmpty === true,
    zero: spec.zero === true,
    element: array ? field : null,
  };
}

/**
 * Compiles the fields of a struct schema, in order.
 *
 * @param spec The fields by TypeScript name.
 * @param prefix What goes before the wire key in {@linkcode Field.where}.
 * @returns The compiled fields.
 */
export function compileStruct(
  spec: StructSpec,
  prefix: string,
): readonly Field[] {
  return Object.keys(spec).map((name) =>
    compileField(name, spec[name]!, prefix)
  );
}

function compileVariants<M extends VariantSpecs>(
  specs: M,
): { readonly [K in keyof M]: readonly Field[] } {
  const out: Record<string, readonly Field[]> = {};
  for (const kind of Object.keys(specs)) {
    out[kind] = compileStruct(specs[kind]!, `${kind}.`);
  }
  return out as { readonly [K in keyof M]: readonly Field[] };
}

/** The fields of every request variant. */
export const REQUEST_FIELDS: {
  readonly [K in keyof typeof REQUESTS]: readonly Field[];
} = compileVariants(REQUESTS);

/** The fields of every response variant. */
export const RESPONSE_FIELDS: {
  readonly [K in keyof typeof RESPONSES]: readonly Field[];
} = compileVariants(RESPONSES);

// ---------------------------------------------------------------------------
// Encoding

function isEmptyValue(v: unknown): boolean {
  return v === undefined || v === null || v === false || v === 0 ||
    (v instanceof Uint8Array && v.length === 0);
}

/** A nested map of a request, with its wire keys. */
function wireStruct(fields: readonly Field[], v: unknown): unknown {
  const source = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const value = source[f.name];
    if (f.omitEmpty && isEmptyValue(value)) continue;
    out[f.wire] = f.struct === null ? value : wireValue(f, value);
  }
  return out;
}

function wireValue(f: Field, v: unknown): unknown {
  const fields = f.struct!;
  if (f.nullable && (v === null || v === undefined)) return v;
  return f.array
    ? (v as unknown[]).map((item) => wireStruct(fields, item))
    : wireStruct(fields, v);
}

/**
 * The wire keys and values of a request, alternating, in Go declaration
 * order: `omitEmpty` fields left out when zero, `undefined` sent as `null`,
 * nested maps with their wire keys.
 *
 * @param fields The compiled fields of the variant.
 * @param request The request.
 * @returns Keys and values, alternating.
 */
export function wireEntries(
  fields: readonly Field[],
  request: object,
): unknown[] {
  const source = request as Record<string, unknown>;
  // Indexed loops: destructuring in a for-of allocates on every request.
  const entries: unknown[] = new Array(fields.length * 2);
  let n = 0;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    let value = source[f.name];
    if (f.omitEmpty && isEmptyValue(value)) continue;
    if (f.struct !== null) value = wireValue(f, value);
    entries[n++] = f.wire;
    entries[n++] = value === undefined ? null : value;
  }
  entries.length = n;
  return entries;
}

// ---------------------------------------------------------------------------
// Decoding

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return "byte string";
  if (Array.isArray(v)) return "array";
  if (typeof v === "bigint") return "integer";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "float";
  if (typeof v === "string") return "text string";
  if (typeof v === "object") return "map";
  return typeof v;
}

/**
 * The error of a field of the wrong type.
 *
 * @param where The field, as `variant.wire_key`.
 * @param expected What it should hold.
 * @param type What it holds.
 * @returns The error.
 */
export function badType(
  where: string,
  expected: string,
  type: string,
): ProtocolError {
  return new ProtocolError(
    `Cannot decode frame: field '${where}' is ${type}, expected ${expected}`,
  );
}

function bad(where: string, expected: string, v: unknown): ProtocolError {
  return badType(where, expected, typeName(v));
}

function isPlainMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    !(v instanceof Uint8Array) && !(v instanceof Map);
}

function byteString(length: number | undefined): string {
  return length === undefined ? "a byte string" : `a ${length}-byte string`;
}

/** The value of a field that is absent or `null`. */
function absent(where: string, f: Field, v: unknown): unknown {
  if (f.nullable) return null;
  if (f.array) return [];
  switch (f.base.kind) {
    case "bytes":
      if (f.zero) return new Uint8Array(f.base.length ?? 0);
      throw bad(where, byteString(f.base.length), v);
    case "uint":
    case "time":
      return 0;
    case "u64":
      return 0n;
    case "bool":
      return false;
    case "text":
      return "";
    case "struct":
      throw bad(where, "a map", v);
  }
}

/** Checks one present value of a base type. */
function decodeBase(
  where: string,
  base: BaseSpec,
  struct: readonly Field[] | null,
  v: unknown,
): unknown {
  switch (base.kind) {
    case "bytes":
      if (!(v instanceof Uint8Array)) throw bad(where, "a byte string", v);
      if (base.length !== undefined && v.length !== base.length) {
        throw new ProtocolError(
          `Cannot decode frame: field '${where}' has ${v.length} bytes, expected ${base.length}`,
        );
      }
      return v;
    case "uint": {
      const max = base.max!;
      if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max) {
        return v;
      }
      throw bad(where, `an unsigned integer ≤ ${max}`, v);
    }
    case "u64":
      if (typeof v === "number" && Number.isInteger(v) && v >= 0) {
        return BigInt(v);
      }
      if (typeof v === "bigint" && v >= 0n && v < 1n << 64n) return v;
      throw bad(where, "an unsigned 64-bit integer", v);
    case "time":
      // Go's time.Time: int64 seconds. Frames hold no floats (decodeCbor
      // refuses them), so a number here is an integer.
      if (typeof v === "number") return v;
      if (typeof v === "bigint" && v >= -(1n << 63n) && v < 1n << 63n) {
        return Number(v);
      }
      throw bad(where, "a time in seconds (a 64-bit integer)", v);
    case "bool":
      if (typeof v !== "boolean") throw bad(where, "a boolean", v);
      return v;
    case "text":
      if (typeof v !== "string") throw bad(where, "a text string", v);
      return v;
    case "struct": {
      if (!isPlainMap(v)) throw bad(where, "a map", v);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < struct!.length; i++) {
        const f = struct![i]!;
        // Own keys only: never a value inherited from Object.prototype.
        const raw = Object.hasOwn(v, f.wire) ? v[f.wire] : undefined;
        out[f.name] = decodeValue(`${where}.${f.wire}`, f, raw);
      }
      return out;
    }
  }
}

/**
 * Checks one decoded field value against its field, and gives what the
 * client sees: Go zero values for absent fields, `null` for absent `?`
 * fields.
 *
 * @param where The field, as errors name it.
 * @param f The field.
 * @param v The decoded value (`undefined` when absent).
 * @returns The checked value.
 * @throws {ProtocolError} When the value has the wrong type or range.
 */
export function decodeValue(where: string, f: Field, v: unknown): unknown {
  if (v === null || v === undefined) return absent(where, f, v);
  if (!f.array) return decodeBase(where, f.base, f.struct, v);
  if (!Array.isArray(v)) throw bad(where, f.base.array, v);
  const element = f.element!;
  return v.map((item, i) =>
    // Text arrays name the array itself, as they always have.
    decodeValue(
      f.base.kind === "text" ? where : `${where}[${i}]`,
      element,
      item,
    )
  );
}

/** Returned by {@linkcode quickValue} when the full check must run. */
export const SLOW: unique symbol = Symbol("decode field the long way");

/**
 * The common, well-formed cases of {@linkcode decodeValue} without building
 * the field's name: a byte string of the right length, an unsigned integer
 * in range, or `null` for a `?` byte string. {@linkcode SLOW} for anything
 * else, which then gets the full check and, when wrong, the error naming
 * the field.
 *
 * @param f The field.
 * @param v The decoded value.
 * @returns The value, or {@linkcode SLOW}.
 */
export function quickValue(f: Field, v: unknown): unknown {
  if (f.array) return SLOW;
  const base = f.base;
  if (base.kind === "bytes") {
    if (v === null || v === undefined) return f.nullable ? null : SLOW;
    return v instanceof Uint8Array &&
        (base.length === undefined || v.length === base.length)
      ? v
      : SLOW;
  }
  if (base.kind === "uint" && base.max === 255) {
    return typeof v === "number" && (v & 0xff) === v ? v : SLOW;
  }
  return SLOW;
}
