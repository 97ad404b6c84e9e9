// Local mixnet harness: paths and network parameters (from the environment), the
// types of a run (processes, state), the small shared helpers (log, fail, sleep,
// file tail) and the state file .cache/mixnet/run/state.json.

import type { Listen } from "./thin_probe.ts";

export const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
export const ROOT = HERE.replace(/\/scripts\/mixnet$/, "");
export const CACHE = `${ROOT}/.cache/mixnet`;
export const BIN = Deno.env.get("KP_BIN_DIR") ?? `${CACHE}/bin`;
// kpclientd may come from another build than the mixnet's servers (a mixed run:
// e.g. the client daemon on the assembly CTIDH backend, replicas and courier on
// the portable one). Defaults to BIN.
export const CLIENT_BIN = Deno.env.get("KP_KPCLIENTD_BIN_DIR") ?? BIN;
export const RUN = `${CACHE}/run`;
export const STATE_FILE = `${RUN}/state.json`;

// ---- network parameters (documented in docs/mixnet.md) --------------------------------
// Epoch length, given to every process as KATZENPOST_EPOCH_DURATION (it overrides the
// warped build's 2 minutes). Every deadline of the PKI schedule (descriptor upload, vote,
// consensus) is a fixed fraction of it, and the first usable document takes effect one
// to two epochs after start, so 1 minute halves the wait for readiness. KP_EPOCH=2m
// restores the warped default.
export const EPOCH = Deno.env.get("KP_EPOCH") ?? "1m";
export const EPOCH_MS = (() => {
  const m = EPOCH.match(/^(\d+)(s|m)$/);
  if (!m || Number(m[1]) <= 0) {
    throw new Error(`KP_EPOCH must look like 90s or 2m, not ${EPOCH}`);
  }
  return Number(m[1]) * (m[2] === "m" ? 60000 : 1000);
})();
const EPOCH_ZERO = Date.UTC(2017, 5, 1); // katzenpost core/epochtime Epoch
export const BASE_PORT = Number(Deno.env.get("KP_BASE_PORT") ?? 30000);
// testdata/thinclient.toml dials MAIN_TCP. The KP_* overrides let a second checkout
// run its own mixnet beside this one (with KP_BASE_PORT for the nodes).
export const MAIN_TCP = Deno.env.get("KP_MAIN_TCP") ?? "127.0.0.1:64331";
export const DEFAULT_WS = Deno.env.get("KP_WS_ADDRESS") ??
  "ws://127.0.0.1:64332";
export const DEFAULT_EXTRA_TCP = Deno.env.get("KP_EXTRA_TCP") ??
  "127.0.0.1:64333";
export const SESSION_GRACE = Deno.env.get("KP_SESSION_GRACE") ?? "30s";
export const RATES = {
  mu: Deno.env.get("KP_MU") ?? "0.05", // mean 20 ms per hop (upstream test net: 200 ms)
  lambdaP: Deno.env.get("KP_LAMBDA_P") ?? "0.02", // client send slot every 50 ms on average (upstream: 1 s)
  lambdaL: "0.0005", // loop decoys: off anyway (--noDecoy)
  lambdaM: "0.0005", // mix decoys: off anyway
  lambdaR: Deno.env.get("KP_LAMBDA_R") ?? "0.05", // courier/replica pacing, 20 ms (upstream: 200 ms)
};

export type Role =
  | "auth"
  | "replica"
  | "gateway"
  | "servicenode"
  | "mix"
  | "kpclientd";

export interface Proc {
  name: string;
  role: Role;
  pid: number;
  bin: string;
  args: string[];
  dir: string; // folder of this process
  out: string; // captured stdout+stderr
  logs: string[]; // log files worth tailing (out + daemon's own log files)
  ports: number[];
  listen?: Listen | undefined; // kpclientd only
  startedAt: number;
  startTicks: string; // /proc/<pid>/stat starttime, identifies the process
}

export interface State {
  mode: "net" | "offline";
  netDir: string;
  replicas: number;
  startedAt: number;
  readyAt?: number | undefined;
  /** CTIDH backend of the binaries this run started (install.sh's stamp). */
  backend?: string | undefined;
  procs: Proc[];
  // kpclientds not started yet: `up` starts them once the gateway serves a current
  // document, so that kpclientd's reconnect back-off (15 s more per failed dial,
  // up to 2 min) does not delay readiness.
  pendingClients?: { extra: string[] } | undefined;
}

// ---- small utilities ---------------------------------------------------------------------
export const enc = new TextEncoder();
export const dec = new TextDecoder();
export { delay as sleep } from "../../lib/_async.ts";
export const now = (): number => Date.now();
export function log(msg: string): void {
  Deno.stderr.writeSync(
    enc.encode(`[mixnet ${new Date().toISOString().slice(11, 19)}] ${msg}\n`),
  );
}
export class Fail extends Error {}
export function fail(msg: string): never {
  throw new Fail(msg);
}

export function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export function epochInfo(t = now()): { epoch: number; into: number } {
  const e = Math.floor((t - EPOCH_ZERO) / EPOCH_MS);
  return { epoch: e, into: (t - EPOCH_ZERO) % EPOCH_MS };
}

/** Last n lines of a file, reading at most ~400 bytes per wanted line from its end. */
export function tail(path: string, n: number): string[] {
  let f: Deno.FsFile | null = null;
  try {
    f = Deno.openSync(path, { read: true });
    const size = f.statSync().size;
    const want = Math.min(size, n * 400);
    f.seekSync(size - want, Deno.SeekMode.Start);
    const buf = new Uint8Array(want);
    let off = 0;
    while (off < want) {
      const r = f.readSync(buf.subarray(off));
      if (r === null || r === 0) break;
      off += r;
    }
    const lines = dec.decode(buf.subarray(0, off)).split("\n");
    if (want < size) lines.shift(); // partial first line
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n);
  } catch {
    return [];
  } finally {
    f?.close();
  }
}

export function rmrf(p: string): void {
  try {
    Deno.removeSync(p, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

// ---- state file ---------------------------------------------------------------------------
export function readState(): State | null {
  try {
    return JSON.parse(Deno.readTextFileSync(STATE_FILE));
  } catch {
    return null;
  }
}

export function writeState(s: State): void {
  Deno.mkdirSync(RUN, { recursive: true });
  const tmp = `${STATE_FILE}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(s, null, 2));
  Deno.renameSync(tmp, STATE_FILE);
}
