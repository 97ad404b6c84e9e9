/**
 * `pigeonhole-cp receive`: reads the header from box 0, then the file with
 * pipelined reads, into a private part file (resumable) that is fsynced,
 * checked (size, SHA-256) and renamed without overwriting; or to stdout.
 *
 * @module
 */
import { join } from "node:path";
import { MessageBoxIndex, type ReadCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";
import { readBox } from "../lib/boxes.ts";
import { ReplicaError, ReplicaErrorCode } from "../lib/errors.ts";
import { type CommandEnv, printResult } from "./_env.ts";
import { CliError, ExitCode, fsReason } from "./_errors.ts";
import { decodeHeader, type FileHeader, nameProblem } from "./_format.ts";
import {
  BufferedWriter,
  hashFile,
  sha256,
  sha256Of,
  writeAllTo,
} from "./_io.ts";
import { toHex } from "../lib/_bytes.ts";
import { type FieldRule, recordFits } from "./_state.ts";
import { pipelinedRead } from "./_pipeline.ts";
import { formatBytes } from "./_progress.ts";

/** Options of the receive command. */
export interface ReceiveOptions {
  /** A directory, or `-` for standard output. */
  dest: string;
  /** Reads in flight. */
  window: number;
  /** Milliseconds allowed between boxes once the header arrived (0 = none). */
  idleMs: number;
  /** Refuse announced sizes above this. */
  maxSize: number | null;
  /** Forget saved progress first. */
  fresh: boolean;
}

const CHECKPOINT_MS = 1000;

/** Fields a saved receive must have. */
const RECEIVE_RECORD: Readonly<Record<string, FieldRule>> = {
  name: "string",
  size: "uint",
  sha256: "32 bytes?",
  part: "string",
  bytes: "uint",
  boxes: "uint",
  nextIndex: "index",
  capacity: "uint",
};

/**
 * Whether a saved receive can be trusted: every field of the right type, the
 * part file exactly where this transfer keeps it (a record naming any other
 * file would have it truncated or deleted), and the counts consistent.
 */
function usableRecord(r: Record<string, unknown>, part: string): boolean {
  return recordFits(r, RECEIVE_RECORD) && r["part"] === part &&
    (r["bytes"] as number) <= (r["size"] as number) &&
    (r["capacity"] as number) >= 1 &&
    nameProblem(r["name"] as string) === null;
}

/** Turns a failed write of received data into a one-line CliError. */
function writeFailed(where: string, bytes: number, err: unknown): CliError {
  if (err instanceof CliError) return err;
  return new CliError(
    ExitCode.Input,
    `Cannot write ${where}: ${fsReason(err)}${
      where === "to standard output"
        ? ""
        : ` (${bytes} bytes received so far are kept: free some space and rerun to resume)`
    }`,
    { cause: err },
  );
}

/**
 * Opens the part file of a resumed receive for writing, refusing anything
 * but a regular file (a symbolic link put in its place would redirect the
 * writes).
 */
async function openPart(part: string): Promise<Deno.FsFile> {
  const before = await Deno.lstat(part);
  if (!before.isFile) throw new Error("it is not a regular file");
  const file = await Deno.open(part, { read: true, write: true });
  const after = await file.stat();
  if (after.ino !== before.ino || after.dev !== before.dev) {
    file.close();
    throw new Error("it was replaced while being opened");
  }
  return file;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function deleted(box: number, err?: unknown): CliError {
  return new CliError(
    ExitCode.Integrity,
    `Cannot receive: box ${box} of the transfer was deleted (tombstone)`,
    err === undefined ? undefined : { cause: err },
  );
}

/**
 * Runs `receive`.
 *
 * @returns The exit code.
 */
export async function runReceive(
  o: ReceiveOptions,
  caps: { readCap: ReadCap; index: MessageBoxIndex },
  env: CommandEnv,
): Promise<number> {
  const toStdout = o.dest === "-";
  let dir = "";
  if (!toStdout) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(o.dest);
      dir = await Deno.realPath(o.dest);
    } catch (err) {
      throw new CliError(
        ExitCode.Input,
        `Cannot receive into '${o.dest}': ${fsReason(err)}`,
        { cause: err },
      );
    }
    if (!info.isDirectory) {
      throw new CliError(
        ExitCode.Input,
        `Cannot receive into '${o.dest}': not a directory`,
      );
    }
  }
  const key = "receive:" + toHex(sha256Of(
    new TextEncoder().encode("pigeonhole-cp receive\0"),
    caps.readCap.bytes,
    caps.index.bytes,
    new TextEncoder().encode(dir),
  ));
  const store = toStdout ? null : env.store;
  const part = toStdout
    ? ""
    : join(dir, `.pigeonhole-cp-${key.slice(8, 24)}.part`);
  let stored = store?.get(key)?.record;
  if (stored !== undefined) {
    let usable = false;
    if (!usableRecord(stored, part)) {
      env.progress.note(
        `the saved progress in '${store!.path}' is unreadable; starting over`,
      );
    } else if (!o.fresh) {
      try {
        const st = await Deno.lstat(part);
        usable = st.isFile && st.size >= (stored["bytes"] as number);
      } catch { /* gone */ }
      if (!usable) {
        env.progress.note("the partial file is gone; starting over");
      }
    }
    if (!usable) {
      // Only ever the part file of this transfer, whatever the record says.
      await Deno.remove(part).catch(() => {});
      store!.delete(key);
      stored = undefined;
    }
  }
  const started = env.now();
  const client = await env.connect();
  try {
    return await receive(o, caps, env, client, {
      key,
      dir,
      part,
      stored,
      started,
      store,
    });
  } finally {
    await client.close();
  }
}

async function receive(
  o: ReceiveOptions,
  caps: { readCap: ReadCap; index: MessageBoxIndex },
  env: CommandEnv,
  client: ThinClient,
  s: {
    key: string;
    dir: string;
    part: string;
    stored: Record<string, unknown> | undefined;
    started: number;
    store: CommandEnv["store"];
  },
): Promise<number> {
  const toStdout = o.dest === "-";
  const { signal } = env;
  const hash = sha256();
  let header: FileHeader;
  let file: Deno.FsFile | null = null;
  const part = s.part;
  let bytes = 0;
  let boxes: number;
  let next: MessageBoxIndex;
  let capacity: number;
  const resumed = s.stored !== undefined;
  /** Buffers writes to the part file once the first box is written. */
  let out: BufferedWriter | null = null;
  /** Writes received bytes to the part file or stdout. */
  const emit = async (data: Uint8Array): Promise<void> => {
    try {
      if (out !== null) await out.write(data);
      else if (file !== null) await writeAllTo(file, data);
      else await env.stdout.bytes(data);
    } catch (err) {
      throw writeFailed(
        file !== null ? `'${part}'` : "to standard output",
        bytes,
        err,
      );
    }
  };

  if (s.stored !== undefined) {
    const r = s.stored;
    header = {
      name: r["name"] as string,
      size: r["size"] as number,
      sha256: r["sha256"] instanceof Uint8Array ? r["sha256"] : null,
    };
    bytes = r["bytes"] as number;
    boxes = r["boxes"] as number;
    next = new MessageBoxIndex(r["nextIndex"] as Uint8Array);
    capacity = r["capacity"] as number;
    try {
      file = await openPart(part);
      await file.truncate(bytes);
      await file.seek(bytes, Deno.SeekMode.Start);
      const { size } = await hashFile(part, bytes, hash);
      if (size !== bytes) {
        throw new Error("partial file is shorter than recorded");
      }
    } catch (err) {
      file?.close();
      throw new CliError(
        ExitCode.Input,
        `Cannot resume into '${part}': ${fsReason(err)}`,
        { cause: err },
      );
    }
    env.progress.note(
      `resuming '${header.name}': ${
        formatBytes(bytes)
      } in ${boxes} boxes already received`,
    );
  } else {
    env.progress.update({
      phase: "wait",
      bytes: 0,
      totalBytes: 0,
      boxes: 0,
      totalBoxes: null,
    });
    const first = await readBox(client, caps.readCap, caps.index, { signal });
    if (first.kind === "tombstone") throw deleted(0);
    if (first.kind === "empty") {
      // Only when the daemon gave up waiting for the box.
      throw new ReplicaError(ReplicaErrorCode.BoxIdNotFound);
    }
    const box0 = first.plaintext;
    const decoded = decodeHeader(box0);
    header = decoded.header;
    const problem = nameProblem(header.name);
    if (problem !== null) {
      throw new CliError(
        ExitCode.Integrity,
        `Cannot receive: the sender's file name ${
          JSON.stringify(header.name.slice(0, 300))
        } is unsafe: ${problem}`,
      );
    }
    if (o.maxSize !== null && header.size > o.maxSize) {
      throw new CliError(
        ExitCode.Integrity,
        `Cannot receive '${header.name}': its announced size ${header.size} exceeds --max-size ${o.maxSize}`,
      );
    }
    if (!toStdout) {
      const final = join(s.dir, header.name);
      if (await exists(final)) {
        throw new CliError(
          ExitCode.Conflict,
          `Cannot receive '${header.name}': '${final}' already exists (move it away, or receive into another directory)`,
        );
      }
      try {
        // A leftover (or a link someone put there) is removed, not followed:
        // the new file is created exclusively.
        await Deno.remove(part).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
        file = await Deno.open(part, {
          write: true,
          createNew: true,
          mode: 0o600,
        });
      } catch (err) {
        throw new CliError(
          ExitCode.Input,
          `Cannot create '${part}': ${fsReason(err)}`,
          { cause: err },
        );
      }
    }
    const take = decoded.rest.subarray(
      0,
      Math.min(decoded.rest.length, header.size),
    );
    hash.update(take);
    await emit(take);
    bytes = take.length;
    boxes = 1;
    next = first.next;
    capacity = Math.max(1, box0.length);
  }

  // Boxes are small: write them 64 KiB at a time (flushed before every
  // checkpoint and at the end).
  out = file === null ? null : new BufferedWriter(file);
  const record = (): Record<string, unknown> => ({
    v: 1,
    name: header.name,
    size: header.size,
    sha256: header.sha256,
    part,
    bytes,
    boxes,
    nextIndex: next.bytes,
    capacity,
  });
  let lastCheckpoint = env.now();
  const checkpoint = async (force: boolean): Promise<void> => {
    if (s.store === null || file === null) return;
    if (!force && env.now() - lastCheckpoint < CHECKPOINT_MS) return;
    try {
      await out!.flush();
      await file.syncData();
    } catch (err) {
      throw writeFailed(`'${part}'`, bytes, err);
    }
    s.store.put(s.key, "receive", record());
    lastCheckpoint = env.now();
  };
  const estimate = (): number => Math.ceil((header.size - bytes) / capacity);
  const report = (): void =>
    env.progress.update({
      phase: "receive",
      bytes,
      totalBytes: header.size,
      boxes,
      totalBoxes: boxes + estimate(),
    });

  let ok = false;
  try {
    await checkpoint(true);
    report();
    if (bytes < header.size) {
      try {
        await pipelinedRead({
          client,
          readCap: caps.readCap,
          index: next,
          window: o.window,
          signal,
          idleMs: o.idleMs,
          wanted: estimate,
          onBox: async (data, after) => {
            if (data.length === 0) {
              throw new CliError(
                ExitCode.Integrity,
                `Cannot receive '${header.name}': box ${boxes} is empty`,
              );
            }
            capacity = Math.max(capacity, data.length);
            const take = data.subarray(
              0,
              Math.min(data.length, header.size - bytes),
            );
            hash.update(take);
            await emit(take);
            bytes += take.length;
            boxes++;
            next = after;
            await checkpoint(false);
            report();
            return bytes < header.size;
          },
        });
      } catch (err) {
        if (
          err instanceof ReplicaError &&
          err.code === ReplicaErrorCode.Tombstone
        ) throw deleted(boxes, err);
        if (
          err instanceof DOMException && err.name === "TimeoutError" &&
          !signal.aborted
        ) {
          throw new CliError(
            ExitCode.Timeout,
            `Timed out: no box arrived for ${
              o.idleMs / 1000
            } s after box ${boxes} (is the sender still sending? rerun to resume)`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    env.progress.finish();
    const digest = new Uint8Array(hash.digest());
    if (header.sha256 !== null && !sameBytes(digest, header.sha256)) {
      if (file !== null) {
        file.close();
        file = null;
        await Deno.remove(part).catch(() => {});
      }
      s.store?.delete(s.key);
      ok = true; // nothing left to resume
      throw new CliError(
        ExitCode.Integrity,
        `Integrity check failed for '${header.name}': SHA-256 is ${
          toHex(digest)
        }, the sender announced ${toHex(header.sha256)}${
          toStdout ? " (the data already written to stdout is corrupt)" : ""
        }`,
      );
    }
    let where = "-";
    if (file !== null) {
      try {
        await out!.flush();
        await file.sync();
      } catch (err) {
        throw writeFailed(`'${part}'`, bytes, err);
      }
      const size = (await file.stat()).size;
      file.close();
      file = null;
      if (size !== header.size) {
        throw new CliError(
          ExitCode.Integrity,
          `Integrity check failed for '${header.name}': wrote ${size} bytes, the sender announced ${header.size}`,
        );
      }
      where = join(s.dir, header.name);
      await publish(part, where, header.name);
      s.store?.delete(s.key);
    }
    ok = true;
    if (header.sha256 === null) {
      env.progress.note(
        "the sender announced no SHA-256 (upstream pigeonhole-cp?): only the size was checked",
      );
    }
    const secs = Math.max(0, (env.now() - s.started) / 1000);
    printResult(
      toStdout ? env.stderr : env.stdout,
      env.json,
      `received ${header.size} bytes in ${boxes} box(es) -> ${where}`,
      {
        event: "done",
        command: "receive",
        name: header.name,
        path: toStdout ? null : where,
        bytes: header.size,
        boxes,
        seconds: Number(secs.toFixed(3)),
        sha256: toHex(digest),
        verified: header.sha256 === null ? "size" : "sha256",
        resumed,
      },
    );
    return ExitCode.Ok;
  } finally {
    if (!ok && file !== null) {
      await checkpoint(true).catch(() => {});
    }
    file?.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Moves the part file to its final name without overwriting anything. */
async function publish(
  part: string,
  final: string,
  name: string,
): Promise<void> {
  const conflict = (): CliError =>
    new CliError(
      ExitCode.Conflict,
      `Cannot save '${name}': '${final}' appeared meanwhile; the complete file is kept as '${part}' (move '${final}' away and rerun to finish)`,
    );
  try {
    await Deno.link(part, final);
    await Deno.remove(part);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) throw conflict();
    // No hard links here (some file systems): check, then rename.
    if (await exists(final)) throw conflict();
    try {
      await Deno.rename(part, final);
    } catch (err2) {
      throw new CliError(
        ExitCode.Failure,
        `Cannot save '${final}': ${fsReason(err2)}`,
        { cause: err2 },
      );
    }
  }
  try {
    using d = await Deno.open(final.slice(0, final.lastIndexOf("/")) || "/", {
      read: true,
    });
    await d.sync();
  } catch { /* not supported everywhere */ }
}
