/**
 * The fake daemon's Pigeonhole ARQ and courier: `start_resending_encrypted_message`
 * (writes and reads against the box store, reads waiting for the box),
 * `start_resending_copy_command` (executes the copy stream once per write
 * cap), and their cancellation with the double reply.
 *
 * @module
 */
import { abortable, delay } from "../lib/_async.ts";
import { bytesEqual, concatBytes, toHex } from "../lib/_bytes.ts";
import { blake2b256 } from "./_blake2b.ts";
import {
  boxKey,
  type BoxStore,
  decodeDestinationEnvelope,
  decodeQuery,
  fakeNextIndex,
  firstIndexOfWriteCap,
  FLAG_FINAL,
  parseElement,
  splitEnvelopes,
  streamOfReadCap,
  streamOfWriteCap,
} from "./_pigeonhole.ts";
import type { MixnetJob, SessionHub } from "./_sessions.ts";
import type {
  ArqOp,
  ConnState,
  CopyResult,
  Courier,
  Session,
} from "./_state.ts";
import { bytesOrNull, responseBody } from "./_wire.ts";

const MAX_COPY_BOXES = 65536;
const START_ENC = "start_resending_encrypted_message_reply";
const START_COPY = "start_resending_copy_command_reply";

function nonEmpty(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length > 0;
}

function registerOp(
  session: Session,
  kind: ArqOp["kind"],
  key: string | null,
  queryId: Uint8Array | null,
  courier: Courier,
): ArqOp {
  const op: ArqOp = {
    kind,
    key,
    queryId,
    session,
    abort: new AbortController(),
    done: false,
    courierHash: courier.hash,
    courierQueue: courier.queue,
  };
  if (session.destroyed) {
    op.done = true;
    return op;
  }
  session.ops.add(op);
  if (key !== null) {
    (kind === "copy" ? session.copyOps : session.encOps).set(key, op);
  }
  return op;
}

function forgetOp(op: ArqOp): void {
  op.done = true;
  const session = op.session;
  session.ops.delete(op);
  if (op.key !== null) {
    const ops = op.kind === "copy" ? session.copyOps : session.encOps;
    if (ops.get(op.key) === op) ops.delete(op.key);
  }
}

/** Ends an operation with a reply (dropped, and the op stranded, while the client is away). */
function finishOp(
  hub: SessionHub,
  op: ArqOp,
  variant: string,
  values: Record<string, unknown>,
): void {
  if (op.done) return;
  op.done = true;
  const session = op.session;
  if (session.conn === null || session.destroyed) return; // stranded
  forgetOp(op);
  hub.send(session.conn, variant, responseBody(variant, values));
}

/** How one kind of operation starts. */
interface StartSpec {
  kind: ArqOp["kind"];
  variant: string;
  valid: boolean;
  key: string | null;
  courier: Courier;
  /** The reply fields of an error code (besides `query_id`). */
  errorValues(code: number): Record<string, unknown>;
}

/** A started operation, to be finished by its kind. */
interface Started {
  op: ArqOp;
  signal: AbortSignal;
  finish(values: Record<string, unknown>): void;
}

/**
 * The start both kinds share: the daemon's validation (skipped while the kind
 * is scripted), registering the operation, and applying the script.
 * Returns `null` when that already ended the operation.
 */
async function startOp(
  { hub, session, req, rec }: MixnetJob,
  spec: StartSpec,
): Promise<Started | null> {
  const state = hub.state;
  const { variant, valid } = spec;
  const queryId = req.fields["query_id"] as Uint8Array | null;
  const check = valid ? state.doc === null ? 4 : 0 : 3;
  if (!state.scripts.has(req.kind) && check !== 0) {
    hub.deliver(
      session,
      variant,
      responseBody(variant, { "query_id": queryId, "error_code": check }),
    );
    return null;
  }
  const op = registerOp(session, spec.kind, spec.key, queryId, spec.courier);
  const signal = AbortSignal.any([op.abort.signal, state.lifetime.signal]);
  const finish = (values: Record<string, unknown>) =>
    finishOp(hub, op, variant, { "query_id": queryId, ...values });
  const action = await state.scripts.resolve(req.kind, rec, signal);
  if (op.done) return null;
  switch (action.type) {
    case "none":
      forgetOp(op);
      return null;
    case "reply":
      finish({ ...action.body });
      return null;
    case "error":
      finish({ ...spec.errorValues(action.code), ...action.fields });
      return null;
  }
  if (!valid || state.doc === null) {
    finish(spec.errorValues(valid ? 4 : 3));
    return null;
  }
  return { op, signal, finish };
}

/** Runs `start_resending_encrypted_message` (after the mixnet FIFO). */
export async function startEncrypted(job: MixnetJob): Promise<void> {
  const state = job.hub.state;
  const f = job.req.fields;
  const hash = f["envelope_hash"] as Uint8Array | null;
  const valid = f["query_id"] !== null && hash !== null &&
    nonEmpty(f["message_ciphertext"]) && nonEmpty(f["envelope_descriptor"]) &&
    ((f["read_cap"] === null) !== (f["write_cap"] === null));
  const courier = state.courier();
  const started = await startOp(job, {
    kind: "encrypted",
    variant: START_ENC,
    valid,
    key: valid ? toHex(hash) : null,
    courier,
    errorValues: (code) => {
      // codes 3 and 4 come before a courier was chosen
      const early = code === 3 || code === 4;
      return {
        "error_code": code,
        "courier_identity_hash": early ? null : courier.hash,
        "courier_queue_id": early ? null : courier.queue,
      };
    },
  });
  if (started === null) return;
  const { op, signal } = started;
  const finish = (values: Record<string, unknown>) =>
    started.finish({
      "courier_identity_hash": courier.hash,
      "courier_queue_id": courier.queue,
      ...values,
    });
  if (state.arqDelayMs > 0) await delay(state.arqDelayMs, signal);
  if (op.done) return;
  const query = decodeQuery(f["message_ciphertext"] as Uint8Array);
  const isRead = f["read_cap"] !== null;
  if (query === null) {
    return finish({ "error_code": isRead ? 22 : 0 });
  }
  if (query.op !== (isRead ? "read" : "write")) {
    return finish({ "error_code": 4 });
  }
  const key = boxKey(query.stream, query.index);
  if (!isRead) {
    const outcome = state.boxes.write(key, query.plaintext ?? new Uint8Array());
    const refuse = outcome === "exists" &&
      f["no_idempotent_box_already_exists"] === true;
    return finish({ "error_code": refuse ? 10 : 0 });
  }
  const index = bytesOrNull(f["message_box_index"]);
  if (index === null || index.length === 0) {
    return finish({ "error_code": 4 });
  }
  if (
    !bytesEqual(streamOfReadCap(f["read_cap"] as Uint8Array), query.stream) ||
    !bytesEqual(index, query.index)
  ) return finish({ "error_code": 23 });
  while (!op.done) {
    const box = state.boxes.get(key);
    if (box !== undefined) {
      return finish(
        box.tombstone
          ? { "error_code": 11 }
          : { "plaintext": box.plaintext, "error_code": 0 },
      );
    }
    if (f["no_retry_on_box_id_not_found"] === true) {
      return finish({ "error_code": 1 });
    }
    let off = () => {};
    const written = new Promise<void>((resolve) => {
      off = state.boxes.onWrite(key, resolve);
    });
    try {
      await abortable(written, signal);
    } finally {
      off();
    }
  }
}

/** Runs `start_resending_copy_command` (after the mixnet FIFO). */
export async function startCopy(job: MixnetJob): Promise<void> {
  const state = job.hub.state;
  const f = job.req.fields;
  const cap = f["write_cap"] as Uint8Array | null;
  const pinnedHash = bytesOrNull(f["courier_identity_hash"]);
  const pinnedQueue = bytesOrNull(f["courier_queue_id"]);
  const key = cap === null ? null : toHex(blake2b256(cap));
  const started = await startOp(job, {
    kind: "copy",
    variant: START_COPY,
    valid: f["query_id"] !== null && cap !== null,
    key,
    courier: pinnedHash !== null && nonEmpty(pinnedQueue)
      ? { hash: pinnedHash, queue: pinnedQueue }
      : state.courier(),
    errorValues: (code) => ({ "error_code": code }),
  });
  if (started === null || cap === null || key === null) return;
  if (state.copyDelayMs > 0) await delay(state.copyDelayMs, started.signal);
  if (started.op.done) return;
  let result = state.copyResults.get(key);
  if (result === undefined) {
    result = executeCopy(state.boxes, cap);
    state.copyResults.set(key, result);
  }
  started.finish({
    "error_code": result.code,
    "replica_error_code": result.replica,
    "failed_envelope_index": result.failed,
  });
}

/** Reads the temporary stream, applies its envelopes, tombstones it. */
function executeCopy(boxes: BoxStore, cap: Uint8Array): CopyResult {
  const failed = (replica: number, index = 0): CopyResult => ({
    code: 26,
    replica,
    failed: index,
  });
  const stream = streamOfWriteCap(cap);
  let index: Uint8Array | null = firstIndexOfWriteCap(cap).slice();
  const data: Uint8Array[] = [];
  const tempKeys: string[] = [];
  let final = false;
  for (let n = 0; n < MAX_COPY_BOXES && !final && index !== null; n++) {
    const key = boxKey(stream, index);
    const box = boxes.get(key);
    if (box === undefined) return failed(1);
    if (box.tombstone) return failed(11);
    const element = parseElement(box.plaintext);
    if (element === null) return failed(5);
    tempKeys.push(key);
    data.push(element.data);
    final = (element.flags & FLAG_FINAL) !== 0;
    index = fakeNextIndex(index);
  }
  if (!final) return failed(1);
  const envelopes = splitEnvelopes(concatBytes(data));
  if (envelopes === null) return failed(5);
  for (const [i, bytes] of envelopes.entries()) {
    const env = decodeDestinationEnvelope(bytes);
    if (env === null) return failed(5, i + 1);
    const outcome = boxes.write(
      boxKey(env.stream, env.index),
      env.plaintext ?? new Uint8Array(),
    );
    if (outcome === "exists") return failed(10, i + 1);
  }
  for (const key of tempKeys) boxes.write(key, new Uint8Array());
  return { code: 0, replica: 0, failed: 0 };
}

/**
 * Cancels a running operation of the session by its hash: the operation's
 * `start_*` reply with error 24 goes to `conn` (the cancel reply follows).
 */
export function cancelOp(
  hub: SessionHub,
  conn: ConnState,
  kind: ArqOp["kind"],
  hash: Uint8Array,
): void {
  const session = conn.session;
  const isCopy = kind === "copy";
  const ops = isCopy ? session.copyOps : session.encOps;
  const key = toHex(hash);
  const op = ops.get(key);
  if (op === undefined) return;
  ops.delete(key);
  session.ops.delete(op);
  op.done = true;
  op.abort.abort(new Error("cancelled"));
  const variant = isCopy ? START_COPY : START_ENC;
  hub.send(
    conn,
    variant,
    responseBody(
      variant,
      isCopy ? { "query_id": op.queryId, "error_code": 24 } : {
        "query_id": op.queryId,
        "error_code": 24,
        "courier_identity_hash": op.courierHash,
        "courier_queue_id": op.courierQueue,
      },
    ),
  );
}
