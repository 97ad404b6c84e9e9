// Local mixnet harness: readiness. waitReady (consensus, echo, storage links, a
// confirmed Pigeonhole write), the incremental log scans it and `status` read
// (consensus, gateway document, storage mesh), and the diagnostics of a failed wait.

import { saveSelfchecks } from "./_config.ts";
import {
  dec,
  EPOCH_MS,
  epochInfo,
  fail,
  log,
  MAIN_TCP,
  now,
  sleep,
  type State,
  tail,
  writeState,
} from "./_env.ts";
import { mainClient, startClients } from "./_launch.ts";
import { isOurs, tailReport } from "./_procs.ts";
import { ThinConn } from "./thin_probe.ts";

/** The gateway refuses clients until it holds a document for the current epoch. */
function gatewayHasCurrentDocument(state: State): boolean {
  const gw = state.procs.find((p) => p.role === "gateway");
  if (!gw) return false;
  const m = lastMatch(gw.logs[1] ?? "", /Document cached for current epoch \d+/)
    ?.match(/current epoch (\d+)/);
  return !!m && Number(m[1]) >= epochInfo().epoch;
}

export async function waitReady(
  state: State,
  timeoutMs: number,
): Promise<void> {
  const t0 = now();
  const deadline = t0 + timeoutMs;
  const want = state.replicas;
  log(
    `waiting for kpclientd (${MAIN_TCP}) to have a consensus with ${want} replicas, ` +
      `courier and echo, then an echo round trip (timeout ${
        timeoutMs / 1000
      }s)`,
  );
  let conn: ThinConn | null = null;
  let lastProgress = 0;
  let lastLine = "";
  const progress = (msg: string, force = false) => {
    if (force || now() - lastProgress >= 10000 || msg !== lastLine) {
      const { epoch, into } = epochInfo();
      log(
        `  +${((now() - t0) / 1000).toFixed(0)}s epoch ${epoch} (+${
          (into / 1000).toFixed(0)
        }s): ${msg}`,
      );
      lastProgress = now();
      lastLine = msg;
    }
  };
  try {
    while (now() < deadline) {
      const dead = state.procs.filter((p) => !isOurs(p));
      if (dead.length) {
        fail(
          `process(es) died: ${
            dead.map((p) => `${p.name} (pid ${p.pid})`).join(", ")
          }\n` +
            dead.map((p) => tailReport(p)).join("\n"),
        );
      }
      if (state.pendingClients) {
        // Start kpclientd once the gateway can serve it (or after 4 epochs regardless).
        if (gatewayHasCurrentDocument(state) || now() - t0 > 4 * EPOCH_MS) {
          await startClients(state);
        } else {
          progress(
            `gateway has no document for the current epoch yet; ${
              consensusNote(state)
            }`,
          );
          await sleep(1000);
          continue;
        }
      }
      const kp = mainClient(state);
      if (!conn || conn.closed) {
        try {
          progress(
            "connecting to kpclientd (the first frame can take up to 30s while it has no document)",
          );
          conn = await ThinConn.open(kp.listen!);
          await conn.handshake(Math.min(deadline, now() + 60000));
        } catch (e) {
          conn?.close();
          conn = null;
          progress(`kpclientd not reachable yet: ${(e as Error).message}`);
          await sleep(2000);
          continue;
        }
      }
      const d = conn.doc;
      const hasEcho = !!d?.services.some((s) => s.capability === "echo");
      const hasCourier = !!d?.services.some((s) => s.capability === "courier");
      const status = d
        ? `gateway link ${
          conn.connected ? "up" : "down"
        }; document epoch ${d.epoch}: ${d.mixes.length} mixes, ` +
          `${d.gateways.length} gateway, replicas ${d.replicas.length}/${want}, ` +
          `services [${
            [...new Set(d.services.map((s) => s.capability))].join(",")
          }]`
        : `gateway link ${
          conn.connected ? "up" : "down"
        }; no PKI document yet (${consensusNote(state)})`;
      if (
        d && conn.connected && hasEcho && hasCourier &&
        d.replicas.length >= want
      ) {
        progress(status, true);
        let rtt = 0;
        let lastErr = "";
        for (let i = 0; i < 3 && !rtt && now() < deadline; i++) {
          try {
            rtt = await conn.echo(Math.min(30000, deadline - now()));
          } catch (e) {
            lastErr = (e as Error).message;
            progress(`echo attempt ${i + 1} failed: ${lastErr}`, true);
          }
        }
        if (!rtt) {
          fail(`echo round trip failed: ${lastErr}\n${diagnostics(state)}`);
        }
        // KP_READY_STORAGE=0 skips the two storage checks below (the readiness of
        // earlier versions, kept to reproduce what they missed).
        const storage = Deno.env.get("KP_READY_STORAGE") !== "0";
        // The storage mesh: courier -> every replica, every replica -> every other.
        for (
          let gaps = storage ? meshGaps(state) : [];
          gaps.length;
          gaps = meshGaps(state)
        ) {
          if (now() >= deadline) {
            fail(
              `storage links still down: ${gaps.join(", ")}\n${
                diagnostics(state)
              }`,
            );
          }
          progress(`waiting for storage links: ${gaps.join(", ")}`);
          await sleep(500);
        }
        // Then one box written with the replica's confirmation and read back, so
        // that READY means a write issued now is stored, not only ACKed by the courier.
        let ph: { writeMs: number; readMs: number } | null = null;
        if (storage) {
          for (let i = 0; i < 3 && !ph && now() < deadline; i++) {
            try {
              ph = await conn.pigeonhole(
                Math.min(90000, deadline - now()),
                true,
              );
            } catch (e) {
              lastErr = (e as Error).message;
              progress(`Pigeonhole attempt ${i + 1} failed: ${lastErr}`, true);
            }
          }
          if (!ph) {
            fail(
              `Pigeonhole write/read failed: ${lastErr}\n${diagnostics(state)}`,
            );
          }
        }
        state.readyAt = now();
        writeState(state);
        saveSelfchecks(state);
        log(
          `READY: ${
            ((now() - state.startedAt) / 1000).toFixed(0)
          }s after start ` +
            `(waited ${((now() - t0) / 1000).toFixed(0)}s); echo round trip ${
              rtt.toFixed(0)
            } ms` +
            (ph
              ? `; confirmed Pigeonhole write ${
                ph.writeMs.toFixed(0)
              } ms, read ${ph.readMs.toFixed(0)} ms`
              : ""),
        );
        return;
      }
      progress(status);
      await sleep(1000);
    }
    fail(`mixnet not ready after ${timeoutMs / 1000}s.\n${diagnostics(state)}`);
  } finally {
    await conn?.closeGracefully();
  }
}

// Incremental scan: remembers how far each file was read, so polling stays cheap.
const scanned = new Map<string, { offset: number; last: string | undefined }>();

/**
 * The complete lines appended to `path` since `st.offset`, which it advances
 * (a partial last line waits for the next call); from the start again when
 * the file was truncated or replaced. None while the file does not exist.
 */
function appendedLines(path: string, st: { offset: number }): string[] {
  let f: Deno.FsFile | null = null;
  try {
    f = Deno.openSync(path, { read: true });
    const size = f.statSync().size;
    if (size < st.offset) st.offset = 0; // truncated or replaced
    f.seekSync(st.offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - st.offset);
    let off = 0;
    while (off < buf.length) {
      const r = f.readSync(buf.subarray(off));
      if (r === null || r === 0) break;
      off += r;
    }
    const end = buf.subarray(0, off).lastIndexOf(0x0a) + 1; // keep a partial last line
    st.offset += end;
    return end ? dec.decode(buf.subarray(0, end - 1)).split("\n") : [];
  } catch {
    return []; // not there yet
  } finally {
    f?.close();
  }
}

/** Last line of `path` matching `re`, reading only what was appended since the last call. */
function lastMatch(path: string, re: RegExp): string | undefined {
  const key = `${path}\0${re.source}`;
  const st = scanned.get(key) ?? { offset: 0, last: undefined };
  scanned.set(key, st);
  for (const line of appendedLines(path, st)) {
    if (re.test(line)) st.last = line;
  }
  return st.last;
}

// ---- storage mesh --------------------------------------------------------------------------
// A Pigeonhole write goes courier -> replica -> (replication) -> replica. Each of those
// links is a connection the dialling side authenticates and the listening side checks
// against ITS OWN copy of the PKI document. At an epoch boundary a replica that has not
// fetched the new document yet refuses peers it does not know ("authenticateReplica ...
// not found in replica list"), and the dialler retries with back-off. A write that
// arrives meanwhile is ACKed by the courier and then waits in a retry queue, or is lost.
// So readiness also requires every such link to be up, read from the dialling side's
// log: "outgoing:K: Dialing: 127.0.0.1:PORT" opens worker K's attempt, "Handshake
// completed" means the peer accepted it, and a close or failure ends it.
interface LinkScan {
  offset: number;
  workers: Map<string, { port: number; up: boolean }>;
}
const linkScans = new Map<string, LinkScan>();

/** Ports this log's dialling workers currently hold an accepted connection to. */
function upLinks(path: string): Set<number> {
  const st = linkScans.get(path) ?? { offset: 0, workers: new Map() };
  linkScans.set(path, st);
  for (const line of appendedLines(path, st)) {
    const m = line.match(/ outgoing:(\d+): (.*)$/);
    if (!m) continue;
    const k = m[1]!;
    const msg = m[2]!;
    const d = msg.match(/^Dialing: [\d.]+:(\d+)/);
    if (d) st.workers.set(k, { port: Number(d[1]), up: false });
    else if (/^Handshake completed/.test(msg)) {
      const w = st.workers.get(k);
      if (w) w.up = true;
    } else if (
      /^(Handshake failed|TCP connection closed|Connection terminated|Bailing out|Halting)/
        .test(msg)
    ) {
      const w = st.workers.get(k);
      if (w) w.up = false;
    }
  }
  return new Set(
    [...st.workers.values()].filter((w) => w.up).map((w) => w.port),
  );
}

/** Links of the storage mesh that are not up yet, e.g. "replica2->replica1", "courier->replica3". */
export function meshGaps(state: State): string[] {
  const reps = state.procs.filter((p) => p.role === "replica");
  const sn = state.procs.find((p) => p.role === "servicenode");
  const gaps: string[] = [];
  const courierLog = sn?.logs.find((l) => l.endsWith("courier.log"));
  const courierUp = courierLog ? upLinks(courierLog) : new Set<number>();
  for (const r of reps) {
    const port = r.ports[0];
    if (!courierUp.has(port!)) gaps.push(`courier->${r.name}`);
  }
  for (const from of reps) {
    const up = upLinks(from.logs[1] ?? "");
    for (const to of reps) {
      if (to !== from && !up.has(to.ports[0]!)) {
        gaps.push(`${from.name}->${to.name}`);
      }
    }
  }
  return gaps;
}

export function consensusNote(state: State): string {
  const a = state.procs.find((p) => p.role === "auth");
  if (!a) return "no dirauth";
  const last = lastMatch(
    a.logs[1] ?? "",
    /Consensus made for epoch|Too late to vote|No consensus|failed to make consensus/i,
  );
  return last
    ? `${a.name}: ${
      last.replace(/^.*?(Consensus|Too late|No consensus|failed)/i, "$1")
        .replace(/:\s*&\{.*$/, "")
    }`
    : `${a.name}: no consensus yet`;
}

function diagnostics(state: State): string {
  const out: string[] = [];
  const interesting =
    /Consensus made|Too late|ERRO|CRIT|panic|fatal|Failed to|failed to|refus|DESCRIPTOR UPLOAD|self-check/;
  for (const p of state.procs) {
    const alive = isOurs(p);
    const lines = p.logs.flatMap((f) =>
      tail(f, 400).filter((l) => interesting.test(l)).slice(-6)
    );
    out.push(`--- ${p.name} pid ${p.pid} ${alive ? "alive" : "DEAD"}`);
    out.push(...(lines.length ? lines : tail(p.logs.at(-1) ?? p.out, 5)));
  }
  return out.join("\n");
}
