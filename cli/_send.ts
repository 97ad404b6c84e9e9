/**
 * `pigeonhole-cp send`: copy mode (courier copy command, atomic) and stream
 * mode (box by box, pipelined), both resumable.
 *
 * @module
 */
import { basename } from "node:path";
import { MessageBoxIndex, type WriteCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";
import { MAX_COPY_PAYLOAD } from "../lib/pigeonhole.ts";
import { type CommandEnv, printResult } from "./_env.ts";
import { CliError, ExitCode, fsReason } from "./_errors.ts";
import { type FieldRule, recordFits } from "./_state.ts";
import { encodeHeader, nameProblem, streamLayout } from "./_format.ts";
import {
  BlockReader,
  hashFile,
  readAll,
  sha256Of,
  spool,
  toBase64,
} from "./_io.ts";
import { concatBytes, toHex } from "../lib/_bytes.ts";
import { writeBoxes, type WriteCursor } from "../lib/boxes.ts";
import { createCopyStream, uploadCopyStream } from "../lib/copy_stream.ts";
import { formatBytes } from "./_progress.ts";

/** Options of the send command. */
export interface SendOptions {
  /** A file path, or `-` for standard input. */
  input: string;
  /** The name announced in the header (default: the file's base name). */
  name: string | undefined;
  /** `copy` (default) or `stream`. */
  mode: "copy" | "stream";
  /** Boxes in flight. */
  window: number;
  /**
   * Stream mode: wait for the replica's verdict on every box, not only on
   * the first box of the run (slower: the daemon polls the courier until the
   * replica answers).
   */
  confirmAll: boolean;
  /** Forget saved progress of this transfer first. */
  fresh: boolean;
  /** Where to spool standard input in stream mode. */
  spoolDir: string | undefined;
}

/** What is being sent. */
interface Source {
  name: string;
  size: number;
  sha256: Uint8Array;
  /** Whole content (copy mode). */
  data: Uint8Array | null;
  /** File to read boxes from (stream mode). */
  path: string | null;
  /** Remove `path` when done (spooled stdin). */
  temporary: boolean;
}

function tooLarge(size: number, name: string): CliError {
  return new CliError(
    ExitCode.TooLarge,
    `Cannot send '${name}' in copy mode: ${
      formatBytes(size)
    } with its header exceeds the copy command limit of ${
      formatBytes(MAX_COPY_PAYLOAD)
    } (${MAX_COPY_PAYLOAD} bytes); rerun with --stream`,
  );
}

async function openSource(o: SendOptions, env: CommandEnv): Promise<Source> {
  const fromStdin = o.input === "-";
  const name = o.name ?? (fromStdin ? "stdin" : basename(o.input));
  const problem = nameProblem(name);
  if (problem !== null) {
    throw new CliError(
      ExitCode.Usage,
      `Cannot send: file name '${name}' is not acceptable: ${problem} (use --name)`,
    );
  }
  // Generous bound for the header: the name plus the fixed fields.
  const headerRoom = new TextEncoder().encode(name).length + 64;
  if (fromStdin) {
    if (o.mode === "copy") {
      const data = await readAll(
        env.stdin,
        MAX_COPY_PAYLOAD - headerRoom,
        (size) => tooLarge(size + headerRoom, name),
      );
      return inMemory(name, data);
    }
    const s = await spool(env.stdin, o.spoolDir);
    return { name, ...s, data: null, temporary: true };
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(o.input);
  } catch (err) {
    throw new CliError(
      ExitCode.Input,
      `Cannot send '${o.input}': ${fsReason(err)}`,
      { cause: err },
    );
  }
  if (!info.isFile) {
    throw new CliError(
      ExitCode.Input,
      `Cannot send '${o.input}': not a regular file`,
    );
  }
  try {
    if (o.mode === "copy") {
      if (info.size + headerRoom > MAX_COPY_PAYLOAD) {
        throw tooLarge(info.size + headerRoom, name);
      }
      const data = await Deno.readFile(o.input);
      return inMemory(name, data);
    }
    const { digest, size } = await hashFile(o.input);
    return {
      name,
      size,
      sha256: new Uint8Array(digest.digest()),
      data: null,
      path: o.input,
      temporary: false,
    };
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      ExitCode.Input,
      `Cannot read '${o.input}': ${fsReason(err)}`,
      { cause: err },
    );
  }
}

/** Fields a saved stream-mode send must have (see cursorOf). */
const STREAM_RECORD: Readonly<Record<string, FieldRule>> = {
  mode: "string",
  name: "string",
  size: "uint",
  sha256: "32 bytes",
  max: "uint",
  low: "uint",
  lowIndex: "index",
  ahead: "uints",
};

/** Fields a saved copy-mode send must have. */
const COPY_RECORD: Readonly<Record<string, FieldRule>> = {
  mode: "string",
  name: "string",
  size: "uint",
  sha256: "32 bytes",
  phase: "string",
  tempSeed: "32 bytes",
  count: "uint",
  nextDestIndex: "index",
  destBoxes: "uint",
  low: "uint",
  ahead: "uints",
  lowIndex: "index?",
  lastIndex: "index?",
};

function sameBytes(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === b.length &&
    a.every((x, i) => x === b[i]);
}

function cursorOf(
  record: Record<string, unknown>,
  fallback: MessageBoxIndex,
): WriteCursor {
  const low = record["low"];
  const lowIndex = record["lowIndex"];
  const ahead = record["ahead"];
  return {
    low: typeof low === "number" ? low : 0,
    lowIndex: lowIndex instanceof Uint8Array
      ? new MessageBoxIndex(lowIndex)
      : fallback,
    ahead: new Set(
      Array.isArray(ahead) ? ahead.filter((x) => typeof x === "number") : [],
    ),
  };
}

function packElements(elements: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of elements) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, e.length);
    parts.push(len, e);
  }
  return concatBytes(parts);
}

function unpackElements(blob: Uint8Array): Uint8Array[] | null {
  const out: Uint8Array[] = [];
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return null;
    const len = view.getUint32(at);
    at += 4;
    if (at + len > blob.length) return null;
    out.push(blob.slice(at, at + len));
    at += len;
  }
  return out;
}

/**
 * Runs `send`.
 *
 * @returns The exit code.
 */
export async function runSend(
  o: SendOptions,
  caps: { writeCap: WriteCap; index: MessageBoxIndex },
  env: CommandEnv,
): Promise<number> {
  const src = await openSource(o, env);
  try {
    return await send(o, src, caps, env);
  } finally {
    if (src.temporary && src.path !== null) {
      await Deno.remove(src.path).catch(() => {});
    }
  }
}

async function send(
  o: SendOptions,
  src: Source,
  caps: { writeCap: WriteCap; index: MessageBoxIndex },
  env: CommandEnv,
): Promise<number> {
  const header = encodeHeader({
    name: src.name,
    size: src.size,
    sha256: src.sha256,
  });
  const key = "send:" + toHex(sha256Of(
    new TextEncoder().encode("pigeonhole-cp send\0"),
    caps.writeCap.bytes,
    caps.index.bytes,
  ));
  const store = env.store;
  if (o.fresh) store?.delete(key);
  let stored = store?.get(key);
  if (
    stored !== undefined && (!recordFits(
      stored.record,
      stored.record["mode"] === "copy" ? COPY_RECORD : STREAM_RECORD,
    ) || stored.record["max"] === 0)
  ) {
    env.progress.note(
      `the saved progress in '${store!.path}' is unreadable; starting over`,
    );
    store!.delete(key);
    stored = undefined;
  }
  if (stored !== undefined) {
    const r = stored.record;
    const same = r["mode"] === o.mode && r["name"] === src.name &&
      r["size"] === src.size && sameBytes(r["sha256"], src.sha256);
    if (!same) {
      throw new CliError(
        ExitCode.Conflict,
        `Cannot send '${src.name}': the state file '${
          store!.path
        }' has an unfinished ${String(r["mode"])} send of another file ('${
          String(r["name"])
        }') to this channel index; rerun with --fresh to start over`,
      );
    }
  }
  const started = env.now();
  const client = await env.connect();
  const job: SendJob = { o, src, header, caps, env, client, key };
  try {
    if (o.mode === "stream") {
      const max = client.pigeonholeGeometry.maxPlaintextPayloadLength;
      if (
        stored !== undefined &&
        !(typeof stored.record["max"] === "number" &&
          stored.record["max"] <= max)
      ) {
        store!.delete(key);
        stored = undefined;
        env.progress.note(
          "the daemon's box size shrank since the interrupted send; starting over",
        );
      }
      return await sendStream(job, {
        stored: stored?.record,
        max: stored === undefined ? max : stored.record["max"] as number,
        started,
      });
    }
    return await sendCopy(job, {
      stored,
      started,
    });
  } finally {
    await client.close();
  }
}

/** What both send modes work on. */
interface SendJob {
  o: SendOptions;
  src: Source;
  header: Uint8Array;
  caps: { writeCap: WriteCap; index: MessageBoxIndex };
  env: CommandEnv;
  client: ThinClient;
  key: string;
}

async function sendStream(
  job: SendJob,
  s: {
    stored: Record<string, unknown> | undefined;
    max: number;
    started: number;
  },
): Promise<number> {
  const { o, src, header, caps, env, client, key } = job;
  const layout = streamLayout(src.size, header.length, s.max);
  const cursor = s.stored === undefined
    ? { low: 0, lowIndex: caps.index, ahead: new Set<number>() }
    : cursorOf(s.stored, caps.index);
  const record: Record<string, unknown> = {
    v: 1,
    mode: "stream",
    name: src.name,
    size: src.size,
    sha256: src.sha256,
    max: s.max,
  };
  const save = (): void =>
    env.store?.put(key, "send", {
      ...record,
      low: cursor.low,
      lowIndex: cursor.lowIndex.bytes,
      ahead: [...cursor.ahead],
    });
  const resumed = s.stored !== undefined && cursor.low > 0;
  if (resumed) {
    env.progress.note(
      `resuming: ${cursor.low} of ${layout.boxes} boxes already sent`,
    );
  }
  save();
  let bytes = cursor.low === 0 ? 0 : layout.offset(cursor.low);
  let boxes = cursor.low;
  for (const k of cursor.ahead) {
    bytes += layout.length(k);
    boxes++;
  }
  const report = (): void =>
    env.progress.update({
      phase: "send",
      bytes,
      totalBytes: src.size,
      boxes,
      totalBoxes: layout.boxes,
    });
  report();
  let file: Deno.FsFile;
  try {
    file = await Deno.open(src.path!, { read: true });
  } catch (err) {
    throw new CliError(
      ExitCode.Input,
      `Cannot read '${src.path}': ${fsReason(err)}`,
      { cause: err },
    );
  }
  const blocks = new BlockReader(file);
  try {
    const payload = async (k: number): Promise<Uint8Array> => {
      const want = layout.length(k);
      let data: Uint8Array;
      try {
        data = await blocks.read(layout.offset(k), want);
      } catch (err) {
        throw new CliError(
          ExitCode.Input,
          `Cannot read '${src.path}': ${fsReason(err)}`,
          { cause: err },
        );
      }
      if (data.length !== want) {
        throw new CliError(
          ExitCode.Input,
          `Cannot send '${src.name}': the file shrank while it was being sent`,
        );
      }
      return k === 0 ? concatBytes([header, data]) : data;
    };
    const { next } = await writeBoxes(
      client,
      caps.writeCap,
      cursor,
      layout.boxes,
      payload,
      {
        window: o.window,
        confirm: o.confirmAll ? "all" : "first",
        signal: env.signal,
        onAck: (k) => {
          bytes += layout.length(k);
          boxes++;
          save();
          report();
        },
      },
    );
    env.progress.finish();
    env.store?.delete(key);
    return done(env, {
      mode: "stream",
      src,
      boxes: layout.boxes,
      destBoxes: layout.boxes,
      started: s.started,
      resumed,
      next,
    });
  } finally {
    file.close();
  }
}

async function sendCopy(
  job: SendJob,
  s: {
    stored:
      | { record: Record<string, unknown>; elements: Uint8Array | null }
      | undefined;
    started: number;
  },
): Promise<number> {
  const { o, src, header, caps, env, client, key } = job;
  const signal = env.signal;
  const store = env.store;
  let record: Record<string, unknown>;
  let elements: Uint8Array[] | null = null;
  if (s.stored !== undefined && s.stored.elements !== null) {
    record = s.stored.record;
    elements = unpackElements(s.stored.elements);
  } else record = {};
  if (
    elements === null || !(record["tempSeed"] instanceof Uint8Array) ||
    !(record["nextDestIndex"] instanceof Uint8Array) ||
    elements.length !== record["count"] ||
    (record["phase"] !== "upload" && record["phase"] !== "copy")
  ) {
    env.progress.update({
      phase: "prepare",
      bytes: 0,
      totalBytes: src.size,
      boxes: 0,
      totalBoxes: null,
    });
    const payload = concatBytes([header, src.data!]);
    const built = await createCopyStream(
      client,
      payload,
      caps.writeCap,
      caps.index,
      { signal },
    );
    elements = built.elements;
    record = {
      v: 1,
      mode: "copy",
      name: src.name,
      size: src.size,
      sha256: src.sha256,
      phase: "upload",
      tempSeed: crypto.getRandomValues(new Uint8Array(32)),
      count: elements.length,
      nextDestIndex: built.nextDestIndex.bytes,
      destBoxes: built.destBoxes,
      low: 0,
      ahead: [],
    };
    store?.put(key, "send", record, packElements(elements));
  } else if (record["phase"] === "upload") {
    env.progress.note(
      `resuming: ${
        record["low"]
      } of ${elements.length} temporary boxes already uploaded`,
    );
  } else {
    env.progress.note("resuming: upload complete, running the copy command");
  }
  const resumed = s.stored !== undefined;
  const temp = await client.newKeypair(record["tempSeed"] as Uint8Array, {
    signal,
  });
  const count = elements.length;
  const total = src.size;
  if (record["phase"] === "upload") {
    const cursor = cursorOf(record, temp.firstMessageIndex);
    let boxes = cursor.low + cursor.ahead.size;
    const report = (): void =>
      env.progress.update({
        phase: "upload",
        bytes: Math.round((total * boxes) / Math.max(1, count)),
        totalBytes: total,
        boxes,
        totalBoxes: count,
      });
    report();
    const stored = record["lastIndex"];
    await uploadCopyStream(client, temp, elements, {
      cursor,
      window: o.window,
      signal,
      ...(stored instanceof Uint8Array
        ? { lastIndex: new MessageBoxIndex(stored) }
        : {}),
      onAck: (k, index, c) => {
        boxes++;
        if (k === count - 1) record["lastIndex"] = index.bytes;
        record["low"] = c.low;
        record["lowIndex"] = c.lowIndex.bytes;
        record["ahead"] = [...c.ahead];
        store?.update(key, record);
        report();
      },
    });
    record["phase"] = "copy";
    store?.update(key, record);
  }
  env.progress.finish();
  env.progress.note(
    `upload complete; the courier is copying ${
      record["destBoxes"]
    } boxes into the channel`,
  );
  await client.startResendingCopyCommand(temp.writeCap, { signal });
  store?.delete(key);
  return done(env, {
    mode: "copy",
    src,
    boxes: count,
    destBoxes: record["destBoxes"] as number,
    started: s.started,
    resumed,
    next: new MessageBoxIndex(record["nextDestIndex"] as Uint8Array),
  });
}

function done(
  env: CommandEnv,
  r: {
    mode: "copy" | "stream";
    src: Source;
    boxes: number;
    destBoxes: number;
    started: number;
    resumed: boolean;
    next: MessageBoxIndex;
  },
): number {
  const secs = Math.max(0, (env.now() - r.started) / 1000);
  const boxesPerSec = secs > 0 ? r.boxes / secs : 0;
  const kibPerSec = secs > 0 ? r.src.size / secs / 1024 : 0;
  printResult(
    env.stdout,
    env.json,
    `sent ${r.src.size} bytes in ${r.boxes} box(es) (${r.mode}) in ${
      secs.toFixed(3)
    }s: ${boxesPerSec.toFixed(2)} boxes/s, ${kibPerSec.toFixed(1)} KiB/s`,
    {
      event: "done",
      command: "send",
      mode: r.mode,
      name: r.src.name,
      bytes: r.src.size,
      boxes: r.boxes,
      dest_boxes: r.destBoxes,
      seconds: Number(secs.toFixed(3)),
      sha256: toHex(r.src.sha256),
      resumed: r.resumed,
      next_index: toBase64(r.next.bytes),
    },
  );
  return ExitCode.Ok;
}

/** A source held in memory (copy mode: at most 10 MiB). */
function inMemory(name: string, data: Uint8Array): Source {
  return {
    name,
    size: data.length,
    sha256: sha256Of(data),
    data,
    path: null,
    temporary: false,
  };
}
