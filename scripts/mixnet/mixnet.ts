// deno-lint-ignore-file no-console
// Local Katzenpost test mixnet (no docker): build, configure, start, wait, stop.
//
//   deno run -A scripts/mixnet/mixnet.ts <command> [options]
//
// Commands (see printUsage() and docs/mixnet.md):
//   up, wait, down, status, logs, offline, probe,
//   daemon, daemon-stop, restart-daemon
//
// Everything lives under .cache/mixnet/ (git-ignored): bin/ (built by install.sh),
// run/ (state.json, extra daemons, the unix socket) and the generated network
// (run/net, or a short /tmp path when the checkout path is long). Configs are generated
// at every `up` by upstream's genconfig and then post-processed here. Processes are
// tracked by pid in run/state.json and stopped by pid / process group, never by name.

import { type Listen, ThinConn } from "./thin_probe.ts";

const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const ROOT = HERE.replace(/\/scripts\/mixnet$/, "");
const CACHE = `${ROOT}/.cache/mixnet`;
const BIN = Deno.env.get("KP_BIN_DIR") ?? `${CACHE}/bin`;
// kpclientd may come from another build than the mixnet's servers (a mixed run:
// e.g. the client daemon on the assembly CTIDH backend, replicas and courier on
// the portable one). Defaults to BIN.
const CLIENT_BIN = Deno.env.get("KP_KPCLIENTD_BIN_DIR") ?? BIN;
const RUN = `${CACHE}/run`;
const STATE_FILE = `${RUN}/state.json`;

// ---- network parameters (documented in docs/mixnet.md) --------------------------------
// Epoch length, given to every process as KATZENPOST_EPOCH_DURATION (it overrides the
// warped build's 2 minutes). Every deadline of the PKI schedule (descriptor upload, vote,
// consensus) is a fixed fraction of it, and the first usable document takes effect one
// to two epochs after start, so 1 minute halves the wait for readiness. KP_EPOCH=2m
// restores the warped default.
const EPOCH = Deno.env.get("KP_EPOCH") ?? "1m";
const EPOCH_MS = (() => {
  const m = EPOCH.match(/^(\d+)(s|m)$/);
  if (!m || Number(m[1]) <= 0) {
    throw new Error(`KP_EPOCH must look like 90s or 2m, not ${EPOCH}`);
  }
  return Number(m[1]) * (m[2] === "m" ? 60000 : 1000);
})();
const EPOCH_ZERO = Date.UTC(2017, 5, 1); // katzenpost core/epochtime Epoch
const BASE_PORT = Number(Deno.env.get("KP_BASE_PORT") ?? 30000);
// testdata/thinclient.toml dials MAIN_TCP. The KP_* overrides let a second checkout
// run its own mixnet beside this one (with KP_BASE_PORT for the nodes).
const MAIN_TCP = Deno.env.get("KP_MAIN_TCP") ?? "127.0.0.1:64331";
const DEFAULT_WS = Deno.env.get("KP_WS_ADDRESS") ?? "ws://127.0.0.1:64332";
const DEFAULT_EXTRA_TCP = Deno.env.get("KP_EXTRA_TCP") ?? "127.0.0.1:64333";
const SESSION_GRACE = Deno.env.get("KP_SESSION_GRACE") ?? "30s";
const RATES = {
  mu: Deno.env.get("KP_MU") ?? "0.05", // mean 20 ms per hop (upstream test net: 200 ms)
  lambdaP: Deno.env.get("KP_LAMBDA_P") ?? "0.02", // client send slot every 50 ms on average (upstream: 1 s)
  lambdaL: "0.0005", // loop decoys: off anyway (--noDecoy)
  lambdaM: "0.0005", // mix decoys: off anyway
  lambdaR: Deno.env.get("KP_LAMBDA_R") ?? "0.05", // courier/replica pacing, 20 ms (upstream: 200 ms)
};

type Role =
  | "auth"
  | "replica"
  | "gateway"
  | "servicenode"
  | "mix"
  | "kpclientd";

interface Proc {
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

interface State {
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
const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Date.now();
function log(msg: string) {
  Deno.stderr.writeSync(
    enc.encode(`[mixnet ${new Date().toISOString().slice(11, 19)}] ${msg}\n`),
  );
}
class Fail extends Error {}
function fail(msg: string): never {
  throw new Fail(msg);
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function epochInfo(t = now()) {
  const e = Math.floor((t - EPOCH_ZERO) / EPOCH_MS);
  return { epoch: e, into: (t - EPOCH_ZERO) % EPOCH_MS };
}

function readState(): State | null {
  try {
    return JSON.parse(Deno.readTextFileSync(STATE_FILE));
  } catch {
    return null;
  }
}

function writeState(s: State) {
  Deno.mkdirSync(RUN, { recursive: true });
  const tmp = `${STATE_FILE}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(s, null, 2));
  Deno.renameSync(tmp, STATE_FILE);
}

/** [state letter, start time in clock ticks] of a pid, from /proc/<pid>/stat. */
function procStat(pid: number): [string, string] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return [f[0] ?? "", f[19] ?? ""]; // field 3 (state) and field 22 (starttime)
  } catch {
    return null;
  }
}

/**
 * True when the pid is alive and is the process we started: same start time (set at
 * fork, kept across exec), so a recycled pid is never mistaken for ours.
 */
function isOurs(p: Proc): boolean {
  const st = procStat(p.pid);
  return !!st && st[0] !== "Z" && st[1] === p.startTicks;
}

/** Last n lines of a file, reading at most ~400 bytes per wanted line from its end. */
function tail(path: string, n: number): string[] {
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

function tailReport(p: Proc, n = 25): string {
  const parts: string[] = [];
  for (const f of p.logs) {
    const t = tail(f, n);
    if (t.length) {
      parts.push(`--- ${f} (last ${t.length} lines)\n${t.join("\n")}`);
    }
  }
  return parts.join("\n") || `(no log output in ${p.logs.join(", ")})`;
}

function portFree(port: number): boolean {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
    return true;
  } catch {
    return false;
  }
}

// Listener checks read /proc instead of connecting: a probe connection to kpclientd
// would sit in its accept loop for up to 30 s while it has no PKI document, delaying
// every later client, and probes to the gateway only add refusals to its log.

/** True when some socket listens on TCP port `port` (IPv4 or IPv6). */
function portOpen(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let t = "";
    try {
      t = Deno.readTextFileSync(f);
    } catch {
      continue;
    }
    for (const line of t.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[1]?.endsWith(`:${hexPort}`) && c[3] === "0A") return true; // 0A = LISTEN
    }
  }
  return false;
}

function listenerUp(l: Listen): boolean {
  if (l.kind === "unix") {
    try {
      // Path-bound unix sockets appear in /proc/net/unix; flag 00010000 = __SO_ACCEPTCON.
      return Deno.readTextFileSync("/proc/net/unix").split("\n").some(
        (line) => {
          const c = line.trim().split(/\s+/);
          return c[7] === l.address && c[3] === "00010000";
        },
      );
    } catch {
      return false;
    }
  }
  return portOpen(listenPort(l));
}

function listenPort(l: Listen): number {
  const a = l.kind === "ws" ? new URL(l.address).host : l.address;
  return Number(a.slice(a.lastIndexOf(":") + 1));
}

function whoHolds(port: number): string {
  try {
    const out = new Deno.Command("ss", {
      args: ["-Hltnp", `sport = :${port}`],
      stdout: "piped",
      stderr: "null",
    })
      .outputSync();
    return dec.decode(out.stdout).trim() || "unknown process";
  } catch {
    return "unknown process (ss not available)";
  }
}

// ---- lock ---------------------------------------------------------------------------------
// Everyone using this checkout shares one network, so commands that start or stop
// processes hold .cache/mixnet/run/lock; a second such command fails at once instead of
// tearing down the first one's network. The lock names its owner by pid + start time, so
// a lock left by a killed process is taken over.
const LOCK = `${RUN}/lock`;
interface LockInfo {
  pid: number;
  startTicks: string;
  cmd: string;
  since: number;
}

function lockHolder(): LockInfo | null {
  try {
    const l = JSON.parse(Deno.readTextFileSync(LOCK)) as LockInfo;
    const st = procStat(l.pid);
    return st && st[0] !== "Z" && st[1] === l.startTicks ? l : null;
  } catch {
    return null;
  }
}

function busyMessage(h: LockInfo): string {
  return `another mixnet.ts is running \`${h.cmd}\` (pid ${h.pid}, since ${
    new Date(h.since).toISOString()
  }); this network is shared by everyone using the checkout: wait for it, or stop that process`;
}

async function withLock<T>(cmd: string, f: () => Promise<T>): Promise<T> {
  Deno.mkdirSync(RUN, { recursive: true });
  const me: LockInfo = {
    pid: Deno.pid,
    startTicks: procStat(Deno.pid)?.[1] ?? "",
    cmd,
    since: now(),
  };
  for (let i = 0;; i++) {
    try {
      const file = Deno.openSync(LOCK, { write: true, createNew: true });
      file.writeSync(enc.encode(JSON.stringify(me)));
      file.close();
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const h = lockHolder();
      if (h) fail(busyMessage(h));
      if (i > 3) fail(`cannot take ${LOCK}`);
      rmrf(LOCK); // stale: its owner is gone
    }
  }
  try {
    return await f();
  } finally {
    if (lockHolder()?.pid === Deno.pid) rmrf(LOCK);
  }
}

/** For read-mostly commands (wait): let a running up/down finish first. */
async function waitForLock(timeoutMs: number) {
  const deadline = now() + timeoutMs;
  let h = lockHolder();
  if (h) log(`waiting for pid ${h.pid} (\`${h.cmd}\`) to finish`);
  while (h) {
    if (now() > deadline) fail(busyMessage(h));
    await sleep(1000);
    h = lockHolder();
  }
}

// ---- build ---------------------------------------------------------------------------------
async function install() {
  // A build directory named with KP_BIN_DIR keeps the backend it was built with
  // unless KP_CTIDH_BACKEND says otherwise (the default directory follows "auto").
  const env: Record<string, string> = {};
  if (
    Deno.env.get("KP_BIN_DIR") && !Deno.env.get("KP_CTIDH_BACKEND") &&
    ctidhBackend(BIN) !== "unknown"
  ) {
    env.KP_CTIDH_BACKEND = ctidhBackend(BIN);
  }
  const st = await new Deno.Command("bash", {
    args: [`${HERE}/install.sh`],
    env,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!st.success) fail("install.sh failed (see output above)");
  if (!exists(`${CLIENT_BIN}/kpclientd`)) {
    fail(
      `no kpclientd in KP_KPCLIENTD_BIN_DIR=${CLIENT_BIN}: build it there first ` +
        "(KP_BIN_DIR=<that dir> bash scripts/mixnet/install.sh)",
    );
  }
}

/**
 * The CTIDH backend a build directory was made with ("asm" or "portable"), as
 * install.sh's stamp records it; "unknown" for a build without that line.
 */
function ctidhBackend(dir = BIN): string {
  try {
    const m = Deno.readTextFileSync(`${dir}/.stamp`).match(/^ctidh=(\w+)/m);
    return m?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** "asm", "portable", or e.g. "servers portable, kpclientd asm" for a mixed run. */
function backendNote(): string {
  const servers = ctidhBackend(BIN);
  const client = ctidhBackend(CLIENT_BIN);
  return servers === client
    ? servers
    : `servers ${servers}, kpclientd ${client}`;
}

// ---- configuration -------------------------------------------------------------------------
/** Where the generated network lives: short enough for unix socket paths (<108 bytes). */
function chooseNetDir(): string {
  const inRun = `${RUN}/net`;
  if (inRun.length <= 48) return inRun;
  let h = 0;
  for (const c of ROOT) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${Deno.env.get("TMPDIR") ?? "/tmp"}/kpmix-${h.toString(16)}`;
}

function rmrf(p: string) {
  try {
    Deno.removeSync(p, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function genconfig(outDir: string, replicas: number) {
  rmrf(outDir);
  Deno.mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const args = [
    "--voting",
    "--wirekem",
    "xwing",
    "--nike",
    "x25519",
    "--nrVoting",
    "3",
    "--layers",
    "3",
    "--nodes",
    "3",
    "--gateways",
    "1",
    "--serviceNodes",
    "1",
    "--storageNodes",
    String(replicas),
    "--mu",
    RATES.mu,
    "--lambdaP",
    RATES.lambdaP,
    "--lambdaL",
    RATES.lambdaL,
    "--lambdaM",
    RATES.lambdaM,
    "--lambdaR",
    RATES.lambdaR,
    "--noDecoy",
    "--noMixDecoy=true",
    "--noGatewayDecoy=true",
    "--noMetrics",
    "--sessionGracePeriod",
    SESSION_GRACE,
    "--UserForwardPayloadLength",
    "2000",
    "--logLevel",
    Deno.env.get("KP_LOG_LEVEL") ?? "DEBUG",
    "--port",
    String(BASE_PORT),
    "--baseDir",
    outDir,
    "--outDir",
    outDir,
  ];
  const r = await new Deno.Command(`${BIN}/genconfig`, {
    args,
    stdout: "piped",
    stderr: "piped",
    cwd: outDir,
  })
    .output();
  Deno.writeTextFileSync(
    `${outDir}/genconfig.log`,
    dec.decode(r.stdout) + dec.decode(r.stderr),
  );
  if (!r.success) {
    fail(
      `genconfig failed:\n${tail(`${outDir}/genconfig.log`, 30).join("\n")}`,
    );
  }
  // genconfig also creates an empty nested copy of the base path; drop it.
  const nested = `${outDir}/${outDir.replace(/^\//, "").split("/")[0]}`;
  if (exists(nested) && !Deno.statSync(nested).isFile) rmrf(nested);
  rmrf(`${outDir}/docker-compose.yml`);
}

const HOST_RE =
  /\b(auth\d+|gateway\d+|servicenode\d+|mix\d+|replica\d+|kpclientd):(\d+)/g;

/** Rewrite container hostnames to 127.0.0.1 and point plugins at our binaries. */
function postprocess(netDir: string) {
  for (const e of walk(netDir)) {
    if (!e.endsWith(".toml")) continue;
    let t = Deno.readTextFileSync(e);
    t = t.replace(HOST_RE, "127.0.0.1:$2");
    if (/\/servicenode\d+\/katzenpost\.toml$/.test(e)) {
      t = fixPlugins(t, netDir);
    }
    Deno.writeTextFileSync(e, t);
  }
}

function* walk(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile) yield p;
  }
}

/** Service node: courier -> our binary; http proxy plugin (not built) -> disabled. */
function fixPlugins(t: string, netDir: string): string {
  const blocks = t.split(/(?=^\s*\[\[ServiceNode\.CBORPluginKaetzchen\]\])/m);
  return blocks.map((b) => {
    if (!/^\s*\[\[ServiceNode\.CBORPluginKaetzchen\]\]/.test(b)) return b;
    if (/Capability\s*=\s*"courier"/.test(b)) {
      return b.replace(/Command\s*=\s*"[^"]*"/, `Command = "${BIN}/courier"`);
    }
    if (/Capability\s*=\s*"http"/.test(b)) {
      return /Disable\s*=/.test(b)
        ? b.replace(/Disable\s*=\s*(true|false)/, "Disable = true")
        : b.replace(
          /(\[\[ServiceNode\.CBORPluginKaetzchen\]\]\s*\n)/,
          `$1    Disable = true\n`,
        );
    }
    return b;
  }).join("").replaceAll(
    `${netDir}/proxy_server`,
    `${netDir}/proxy_server-disabled`,
  );
}

/** Replace the [Listen] table of a kpclientd config. */
function setListen(clientToml: string, l: Listen): string {
  const lines = clientToml.split("\n");
  const out: string[] = [];
  let skipping = false;
  for (const line of lines) {
    const hdr = line.match(/^\s*\[([^\]]+)\]\s*$/);
    if (hdr) skipping = hdr[1] === "Listen" || !!hdr[1]?.startsWith("Listen.");
    if (!skipping) out.push(line);
  }
  const table = l.kind === "tcp"
    ? `[Listen]\n  [Listen.Tcp]\n    Address = "${l.address}"\n    Network = "tcp"\n`
    : l.kind === "unix"
    ? `[Listen]\n  [Listen.Unix]\n    Address = "${l.address}"\n`
    : `[Listen]\n  [Listen.Ws]\n    Address = "${l.address}"\n`;
  // Appended: a table placed first would swallow the top-level keys that follow it.
  return out.join("\n").replace(/\s*$/, "\n\n") + table;
}

function thinToml(l: Listen): string {
  return l.kind === "tcp"
    ? `[Dial]\n  [Dial.Tcp]\n    Address = "${l.address}"\n    Network = "tcp"\n`
    : l.kind === "unix"
    ? `[Dial]\n  [Dial.Unix]\n    Address = "${l.address}"\n`
    : `[Dial]\n  [Dial.Ws]\n    Address = "${l.address}/"\n`;
}

// ---- replica self-check sidecars --------------------------------------------------------
// Each replica measures its CTIDH speed at first boot (about 30 s of both cores here) and
// stores it as <DataDir>/selfcheck.toml; a sidecar whose NumCPU differs from the machine's
// is ignored by the replica, and an empty Hostname skips its hostname check. We keep this
// machine's own measurement (never upstream's committed files) and restore it on `up`.
// The measurement depends on the CTIDH backend the replicas were built with (the
// assembly backend is about 4.5x faster), so each backend keeps its own.
const SELFCHECK_DIR = `${CACHE}/selfcheck`;
const selfcheckFile = () =>
  `${SELFCHECK_DIR}/selfcheck-${ctidhBackend(BIN)}.toml`;

function saveSelfchecks(state: State) {
  for (const p of state.procs.filter((p) => p.role === "replica")) {
    try {
      const t = Deno.readTextFileSync(`${p.dir}/selfcheck.toml`);
      const m = t.match(/OpsPerSecSaturated\s*=\s*([0-9.eE+-]+)/);
      if (!m || !(Number(m[1]) > 0)) continue;
      Deno.mkdirSync(SELFCHECK_DIR, { recursive: true });
      Deno.writeTextFileSync(
        selfcheckFile(),
        t.replace(/^Hostname\s*=.*\n/m, ""),
      );
      return; // one measurement serves all replicas (same machine, same load)
    } catch { /* not written yet */ }
  }
}

function restoreSelfchecks(netDir: string, replicas: string[]) {
  if (
    Deno.env.get("KP_FRESH_SELFCHECK") === "1" ||
    !exists(selfcheckFile())
  ) return;
  const t = Deno.readTextFileSync(selfcheckFile());
  for (const r of replicas) {
    Deno.writeTextFileSync(`${netDir}/${r}/selfcheck.toml`, t, { mode: 0o600 });
  }
}

// ---- processes -----------------------------------------------------------------------------
function spawn(
  name: string,
  role: Role,
  bin: string,
  args: string[],
  dir: string,
  logs: string[],
  ports: number[],
  listen?: Listen,
): Proc {
  const out = `${dir}/${name}.out`;
  Deno.writeTextFileSync(
    out,
    `# ${new Date().toISOString()} ${bin} ${args.join(" ")}\n`,
    { append: true },
  );
  const env: Record<string, string> = { KATZENPOST_EPOCH_DURATION: EPOCH };
  const child = new Deno.Command("sh", {
    // exec: the recorded pid is the daemon itself; detached: own session + process group.
    args: [
      "-c",
      'out="$1"; shift; exec "$@" >>"$out" 2>&1',
      "sh",
      out,
      bin,
      ...args,
    ],
    cwd: dir,
    env,
    detached: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const startTicks = procStat(child.pid)?.[1] ?? "";
  return {
    name,
    role,
    pid: child.pid,
    bin,
    args,
    dir,
    out,
    logs: [out, ...logs],
    ports,
    listen,
    startedAt: now(),
    startTicks,
  };
}

async function stopProcs(procs: Proc[], graceMs = 10000) {
  const live = procs.filter(isOurs);
  for (const p of live) {
    try {
      Deno.kill(p.pid, "SIGTERM");
    } catch { /* gone */ }
  }
  const deadline = now() + graceMs;
  while (now() < deadline && live.some(isOurs)) await sleep(200);
  for (const p of procs) {
    if (isOurs(p)) {
      log(`${p.name} (pid ${p.pid}) ignored SIGTERM; sending SIGKILL`);
    }
    // Kill what is left of its process group (e.g. a courier plugin orphaned by its
    // service node): members of group <pid> started no earlier than our leader.
    for (const pid of groupMembers(p)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  const d2 = now() + 5000;
  while (now() < d2 && procs.some((p) => groupMembers(p).length)) {
    await sleep(100);
  }
}

/** Live pids in process group p.pid started at or after p (we started every leader with setsid). */
function groupMembers(p: Proc): number[] {
  const out: number[] = [];
  const since = Number(p.startTicks);
  if (!p.startTicks || !Number.isFinite(since)) return out;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (f[0] !== "Z" && Number(f[2]) === p.pid && Number(f[19]) >= since) {
        out.push(Number(e.name));
      }
    } catch { /* raced with exit */ }
  }
  return out;
}

/** Wait until every port/listener is up; fail early with the log tail if a process dies. */
async function waitStarted(procs: Proc[], timeoutMs: number) {
  const deadline = now() + timeoutMs;
  const pending = new Set(procs);
  while (pending.size) {
    for (const p of [...pending]) {
      if (!isOurs(p)) {
        fail(
          `${p.name} (pid ${p.pid}) exited during start-up.\n${tailReport(p)}`,
        );
      }
      const listeners = p.listen
        ? [listenerUp(p.listen)]
        : p.ports.map(portOpen);
      if (listeners.every(Boolean)) pending.delete(p);
    }
    if (!pending.size) break;
    if (now() > deadline) {
      const names = [...pending].map((p) =>
        `${p.name} (ports ${p.listen ? p.listen.address : p.ports.join(",")})`
      );
      fail(
        `timed out after ${timeoutMs / 1000}s waiting for listeners of ${
          names.join("; ")
        }.\n` +
          [...pending].map((p) => tailReport(p, 15)).join("\n"),
      );
    }
    await sleep(250);
  }
}

function nodeProc(netDir: string, name: string): Proc {
  const dir = `${netDir}/${name}`;
  if (name.startsWith("auth")) {
    const cfg = `${dir}/authority.toml`;
    return spawn(name, "auth", `${BIN}/dirauth`, ["-f", cfg], dir, [
      `${dir}/katzenpost.log`,
    ], ownPorts(cfg));
  }
  if (name.startsWith("replica")) {
    const cfg = `${dir}/replica.toml`;
    return spawn(name, "replica", `${BIN}/replica`, ["-f", cfg], dir, [
      `${dir}/katzenpost.log`,
    ], ownPorts(cfg));
  }
  const cfg = `${dir}/katzenpost.toml`;
  const role: Role = name.startsWith("gateway")
    ? "gateway"
    : name.startsWith("servicenode")
    ? "servicenode"
    : "mix";
  const logs = [`${dir}/katzenpost.log`];
  const ports = ownPorts(cfg);
  if (role === "servicenode") {
    logs.push(`${dir}/courier/courier.log`);
    ports.push(...ownPorts(`${dir}/courier/courier.toml`)); // the courier plugin's metrics port
  }
  return spawn(name, role, `${BIN}/server`, ["-f", cfg], dir, logs, ports);
}

/** Ports a node binds itself: its BindAddresses/Addresses and MetricsAddress, not its peers'. */
function ownPorts(cfg: string): number[] {
  const t = Deno.readTextFileSync(cfg);
  // Peers are listed in [[...Authorities]] / [[...Peers]] tables; cut them off.
  const own = t.split(/^\s*\[\[/m)[0] ?? "";
  const ports = new Set<number>();
  for (
    const m of own.matchAll(
      /^\s*(BindAddresses|Addresses|MetricsAddress)\s*=\s*(.*)$/gm,
    )
  ) {
    if (m[1] === "Addresses" && /BindAddresses/.test(own)) continue; // server binds BindAddresses
    for (const p of (m[2] ?? "").matchAll(/127\.0\.0\.1:(\d+)/g)) {
      ports.add(Number(p[1]));
    }
  }
  return [...ports];
}

function clientProc(
  name: string,
  dir: string,
  cfg: string,
  listen: Listen,
): Proc {
  return spawn(
    name,
    "kpclientd",
    `${CLIENT_BIN}/kpclientd`,
    ["-c", cfg],
    dir,
    [],
    [],
    listen,
  );
}

function nodeNames(
  netDir: string,
): { auths: string[]; replicas: string[]; servers: string[] } {
  const names = [...Deno.readDirSync(netDir)].filter((e) => e.isDirectory).map((
    e,
  ) => e.name).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return {
    auths: names.filter((n) => /^auth\d+$/.test(n)),
    replicas: names.filter((n) => /^replica\d+$/.test(n)),
    // gateway first, then service nodes, then mixes
    servers: [
      ...names.filter((n) => /^gateway\d+$/.test(n)),
      ...names.filter((n) => /^servicenode\d+$/.test(n)),
      ...names.filter((n) => /^mix\d+$/.test(n)),
    ],
  };
}

// ---- commands ------------------------------------------------------------------------------
interface Opts {
  [k: string]: string | boolean | undefined;
}

function parseArgs(
  argv: string[],
): { cmd: string; opts: Opts; rest: string[] } {
  const opts: Opts = {};
  const rest: string[] = [];
  let cmd = "";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a.startsWith("--")) {
      const [k = "", v] = a.slice(2).split("=", 2);
      const next = argv[i + 1];
      if (v !== undefined) opts[k] = v;
      else if (next !== undefined && !next.startsWith("--")) {
        opts[k] = argv[++i];
      } else opts[k] = true;
    } else if (!cmd) cmd = a;
    else rest.push(a);
  }
  return { cmd, opts, rest };
}

function optNum(o: Opts, k: string, d: number): number {
  const v = o[k];
  if (v === undefined || v === true) return d;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${k} expects a number, got ${v}`);
  return n;
}

function defaultListen(kind: string, address?: string): Listen {
  if (kind === "tcp") return { kind, address: address ?? DEFAULT_EXTRA_TCP };
  if (kind === "ws") return { kind, address: address ?? DEFAULT_WS };
  if (kind === "unix") {
    return { kind, address: address ?? unixSocketPath(readState()?.netDir) };
  }
  fail(`--listen must be tcp, unix or ws (got ${kind})`);
}

/** <run dir>/kpclientd.sock, or inside the short net dir if the checkout path is too long. */
function unixSocketPath(netDir?: string): string {
  const p = `${RUN}/kpclientd.sock`;
  return p.length <= 100 || !netDir ? p : `${netDir}/kpclientd.sock`;
}

async function cmdUp(o: Opts) {
  const replicas = optNum(
    o,
    "replicas",
    Number(Deno.env.get("KP_REPLICAS") ?? 3),
  );
  if (replicas < 2) {
    fail(
      "--replicas must be at least 2 (Pigeonhole shards every box onto K=2 replicas)",
    );
  }
  await install();
  const prev = readState();
  if (prev) {
    log("stopping the previous run first");
    await cmdDown();
  }
  const t0 = now();
  const netDir = chooseNetDir();
  Deno.mkdirSync(RUN, { recursive: true });
  log(
    `generating configs in ${netDir} (3 dirauths, 3 mixes, 1 gateway, 1 service node, ${replicas} replicas)`,
  );
  await genconfig(netDir, replicas);
  if (netDir !== `${RUN}/net`) {
    rmrf(`${RUN}/net`);
    Deno.symlinkSync(netDir, `${RUN}/net`);
  }
  postprocess(netDir);
  const mainCfg = `${netDir}/client/client.toml`;
  const mainListen: Listen = { kind: "tcp", address: MAIN_TCP };
  Deno.writeTextFileSync(
    mainCfg,
    setListen(Deno.readTextFileSync(mainCfg), mainListen),
  );
  Deno.writeTextFileSync(
    `${netDir}/client/thinclient.toml`,
    thinToml(mainListen),
  );

  const names = nodeNames(netDir);
  // Refuse to start on occupied ports, naming the holder.
  const wanted: [string, number][] = [];
  for (const n of [...names.auths, ...names.replicas, ...names.servers]) {
    const cfg = n.startsWith("auth")
      ? `${netDir}/${n}/authority.toml`
      : n.startsWith("replica")
      ? `${netDir}/${n}/replica.toml`
      : `${netDir}/${n}/katzenpost.toml`;
    for (const p of ownPorts(cfg)) wanted.push([n, p]);
  }
  wanted.push(["kpclientd", listenPort(mainListen)]);
  const busy: string[] = [];
  for (const [n, p] of wanted) {
    if (!portFree(p)) {
      busy.push(`port ${p} (${n}) is in use by: ${whoHolds(p)}`);
    }
  }
  if (busy.length) {
    fail(`cannot start, ports already in use:\n  ${busy.join("\n  ")}`);
  }

  const state: State = {
    mode: "net",
    netDir,
    replicas,
    startedAt: t0,
    backend: backendNote(),
    procs: [],
  };
  log(`CTIDH backend: ${state.backend}`);
  const save = () => writeState(state);
  try {
    const auths = names.auths.map((n) => nodeProc(netDir, n));
    state.procs.push(...auths);
    save();
    await waitStarted(auths, 20000);
    // Replicas next: their CTIDH self-check is the slowest part of the boot
    // (~30 s of both cores); reuse this machine's earlier measurement when we have one.
    restoreSelfchecks(netDir, names.replicas);
    const reps = names.replicas.map((n) => nodeProc(netDir, n));
    state.procs.push(...reps);
    save();
    const servers = names.servers.map((n) => nodeProc(netDir, n));
    state.procs.push(...servers);
    save();
    await waitStarted(servers, 30000);
    await waitStarted(reps, 300000);
    const { epoch, into } = epochInfo();
    log(
      `all ${state.procs.length} mixnet processes listening after ${
        ((now() - t0) / 1000).toFixed(1)
      }s ` +
        `(epoch ${epoch}, ${(into / 1000).toFixed(0)}s into it)`,
    );
    state.pendingClients = {
      extra: String(o.daemons ?? "").split(",").filter(Boolean),
    };
    save();
  } catch (e) {
    save();
    if (!o.keep) {
      log(
        `up failed; stopping what was started (logs are kept; pass --keep to leave it running)`,
      );
      await cmdDown().catch(() => {});
    }
    throw e;
  }
  try {
    if (o["no-wait"]) await startClients(state);
    else await waitReady(state, optNum(o, "timeout", 600) * 1000);
  } catch (e) {
    if (!o.keep) {
      log(
        `up failed; stopping the network (logs are kept; pass --keep to leave it running)`,
      );
      await cmdDown().catch(() => {});
    }
    throw e;
  }
}

/** Start the main kpclientd (tcp 127.0.0.1:64331) and any extra ones requested with --daemons. */
async function startClients(state: State) {
  const pending = state.pendingClients;
  if (!pending) return;
  const listen: Listen = { kind: "tcp", address: MAIN_TCP };
  if (!portFree(listenPort(listen))) {
    fail(`${MAIN_TCP} is in use by: ${whoHolds(listenPort(listen))}`);
  }
  const kp = clientProc(
    "kpclientd",
    `${state.netDir}/client`,
    `${state.netDir}/client/client.toml`,
    listen,
  );
  state.procs.push(kp);
  state.pendingClients = undefined;
  writeState(state);
  await waitStarted([kp], 20000);
  log(`started kpclientd (pid ${kp.pid}) on tcp ${MAIN_TCP}`);
  for (const kind of pending.extra) {
    await startExtraDaemon(state, kind, kind, undefined);
  }
}

/** The gateway refuses clients until it holds a document for the current epoch. */
function gatewayHasCurrentDocument(state: State): boolean {
  const gw = state.procs.find((p) => p.role === "gateway");
  if (!gw) return false;
  const m = lastMatch(gw.logs[1] ?? "", /Document cached for current epoch \d+/)
    ?.match(/current epoch (\d+)/);
  return !!m && Number(m[1]) >= epochInfo().epoch;
}

async function startExtraDaemon(
  state: State,
  name: string,
  kind: string,
  address?: string,
): Promise<Proc> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) fail(`bad daemon name ${name}`);
  const pname = `kpclientd-${name}`;
  if (state.procs.some((p) => p.name === pname && isOurs(p))) {
    fail(`daemon ${name} is already running`);
  }
  const main = `${state.netDir}/client/client.toml`;
  if (!exists(main)) {
    fail("no mixnet configuration: run `up` (or `offline`) first");
  }
  const listen = defaultListen(kind, address);
  for (const p of state.procs) {
    if (
      p.listen && isOurs(p) && p.listen.kind === listen.kind &&
      p.listen.address === listen.address
    ) {
      fail(`${listen.address} is already served by ${p.name}; pass --address`);
    }
  }
  if (listen.kind === "unix") {
    if (listen.address.length > 107) {
      fail(`unix socket path too long: ${listen.address}`);
    }
    rmrf(listen.address); // the daemon does not remove stale socket files
  } else if (!portFree(listenPort(listen))) {
    fail(`${listen.address} is in use by: ${whoHolds(listenPort(listen))}`);
  }
  const dir = `${RUN}/daemons/${name}`;
  rmrf(dir);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cfg = `${dir}/client.toml`;
  Deno.writeTextFileSync(cfg, setListen(Deno.readTextFileSync(main), listen));
  Deno.writeTextFileSync(`${dir}/thinclient.toml`, thinToml(listen));
  state.procs = state.procs.filter((p) => p.name !== pname);
  const p = clientProc(pname, dir, cfg, listen);
  state.procs.push(p);
  writeState(state);
  await waitStarted([p], 20000);
  console.log(
    JSON.stringify({
      name,
      listen: listen.kind,
      address: listen.address,
      thinclient: `${dir}/thinclient.toml`,
      pid: p.pid,
    }),
  );
  return p;
}

function mainClient(state: State): Proc {
  const p = state.procs.find((p) => p.name === "kpclientd");
  if (!p) fail("no main kpclientd in this run");
  return p;
}

async function waitReady(state: State, timeoutMs: number) {
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
function meshGaps(state: State): string[] {
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

function consensusNote(state: State): string {
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

async function cmdWait(o: Opts) {
  await waitForLock(optNum(o, "timeout", 600) * 1000);
  const s = readState();
  if (!s || s.mode !== "net") fail("no mixnet is running (run `up` first)");
  await waitReady(s, optNum(o, "timeout", 600) * 1000);
}

async function cmdDown() {
  const s = readState();
  if (!s) {
    log("nothing to stop (no state file)");
    return;
  }
  const order: Role[] = [
    "kpclientd",
    "gateway",
    "servicenode",
    "mix",
    "replica",
    "auth",
  ];
  const byRole = (r: Role) => s.procs.filter((p) => p.role === r);
  const running = s.procs.filter(isOurs).length;
  // kpclientds first (clean ShutdownEvent to clients), then servers, replicas, dirauths.
  await stopProcs(byRole("kpclientd"));
  await stopProcs([
    ...byRole("gateway"),
    ...byRole("servicenode"),
    ...byRole("mix"),
  ]);
  await stopProcs(byRole("replica"));
  await stopProcs(byRole("auth"));
  void order;
  const left = s.procs.filter(isOurs);
  if (left.length) {
    fail(
      `could not stop: ${left.map((p) => `${p.name} (${p.pid})`).join(", ")}`,
    );
  }
  for (const p of s.procs) {
    if (p.listen?.kind === "unix") rmrf(p.listen.address);
  }
  try {
    Deno.renameSync(STATE_FILE, `${RUN}/state.last.json`);
  } catch { /* already gone */ }
  log(
    `stopped ${running} process(es); logs kept in ${s.netDir} and ${RUN}/daemons`,
  );
}

function cmdStatus() {
  const s = readState();
  const { epoch, into } = epochInfo();
  console.log(
    `epoch ${epoch}, ${(into / 1000).toFixed(0)}s into it (${EPOCH} epochs)`,
  );
  if (!s) {
    console.log("no mixnet state (not running)");
    return;
  }
  console.log(`CTIDH backend: ${s.backend ?? backendNote()}`);
  console.log(
    `mode ${s.mode}, net dir ${s.netDir}, started ${
      new Date(s.startedAt).toISOString()
    }` +
      (s.readyAt
        ? `, ready after ${((s.readyAt - s.startedAt) / 1000).toFixed(0)}s`
        : ", not (yet) ready"),
  );
  let bad = 0;
  for (const p of s.procs) {
    const alive = isOurs(p);
    if (!alive) bad++;
    const where = p.listen
      ? `${p.listen.kind} ${p.listen.address}`
      : `ports ${p.ports.join(",")}`;
    let up = "";
    if (alive) {
      const ok = p.listen ? listenerUp(p.listen) : p.ports.every(portOpen);
      up = ok ? "listening" : "NOT LISTENING";
    }
    console.log(
      `${p.name.padEnd(22)} pid ${String(p.pid).padEnd(8)} ${
        alive ? "alive" : "DEAD "
      } ${up.padEnd(14)} ${where}`,
    );
  }
  if (s.mode === "net") {
    console.log(`consensus: ${consensusNote(s)}`);
    const gaps = meshGaps(s);
    console.log(
      `storage links: ${gaps.length ? `down: ${gaps.join(", ")}` : "all up"}`,
    );
  }
  if (bad) Deno.exitCode = 1;
}

function cmdLogs(o: Opts, names: string[]) {
  const s = readState() ?? (() => {
    try {
      return JSON.parse(
        Deno.readTextFileSync(`${RUN}/state.last.json`),
      ) as State;
    } catch {
      return null;
    }
  })();
  if (!s) fail("no run to show logs for");
  const n = optNum(o, "n", 40);
  const re = typeof o.grep === "string" ? new RegExp(o.grep) : null;
  let procs = names.length
    ? s.procs.filter((p) =>
      names.some((x) => p.name === x || p.name.startsWith(x))
    )
    : s.procs;
  if (o.dead) {
    procs = procs.filter((p) => !isOurs(p));
    if (!procs.length) {
      console.log("every process of the run is alive");
      return;
    }
  }
  if (!procs.length) {
    fail(
      `no process matches ${names.join(", ")}; known: ${
        s.procs.map((p) => p.name).join(", ")
      }`,
    );
  }
  for (const p of procs) {
    for (const f of p.logs) {
      let lines = tail(f, re ? 200000 : n);
      if (re) lines = lines.filter((l) => re.test(l)).slice(-n);
      console.log(`==> ${p.name}: ${f} <==`);
      if (lines.length) console.log(lines.join("\n"));
    }
  }
}

async function cmdOffline(o: Opts) {
  await install();
  if (readState()) {
    log("stopping the previous run first");
    await cmdDown();
  }
  const t0 = now();
  const netDir = chooseNetDir();
  Deno.mkdirSync(RUN, { recursive: true });
  // A minimal network description just to obtain a valid client.toml; none of it runs.
  await genconfig(netDir, 2);
  if (netDir !== `${RUN}/net`) {
    rmrf(`${RUN}/net`);
    Deno.symlinkSync(netDir, `${RUN}/net`);
  }
  postprocess(netDir);
  const kind = String(o.listen ?? "tcp");
  const listen: Listen = kind === "tcp"
    ? {
      kind: "tcp",
      address: typeof o.address === "string" ? o.address : MAIN_TCP,
    }
    : defaultListen(
      kind,
      typeof o.address === "string" ? o.address : undefined,
    );
  if (listen.kind === "unix") rmrf(listen.address);
  else if (!portFree(listenPort(listen))) {
    fail(`${listen.address} is in use by: ${whoHolds(listenPort(listen))}`);
  }
  const cfg = `${netDir}/client/client.toml`;
  Deno.writeTextFileSync(cfg, setListen(Deno.readTextFileSync(cfg), listen));
  Deno.writeTextFileSync(`${netDir}/client/thinclient.toml`, thinToml(listen));
  const state: State = {
    mode: "offline",
    netDir,
    replicas: 0,
    startedAt: t0,
    procs: [],
  };
  const p = clientProc("kpclientd", `${netDir}/client`, cfg, listen);
  state.procs.push(p);
  writeState(state);
  await waitStarted([p], 20000);
  log(
    `offline kpclientd (no mixnet) listening after ${
      ((now() - t0) / 1000).toFixed(1)
    }s`,
  );
  console.log(
    JSON.stringify({
      name: "kpclientd",
      listen: listen.kind,
      address: listen.address,
      thinclient: `${netDir}/client/thinclient.toml`,
      pid: p.pid,
    }),
  );
}

async function cmdDaemon(o: Opts) {
  const s = readState();
  if (!s) fail("no mixnet is running (run `up` or `offline` first)");
  const kind = String(o.listen ?? "unix");
  const name = typeof o.name === "string" ? o.name : kind;
  await startExtraDaemon(
    s,
    name,
    kind,
    typeof o.address === "string" ? o.address : undefined,
  );
}

async function cmdDaemonStop(o: Opts) {
  const s = readState();
  if (!s) fail("no mixnet is running");
  const name = typeof o.name === "string" ? o.name : fail("--name is required");
  const p = s.procs.find((p) => p.name === `kpclientd-${name}`);
  if (!p) fail(`no daemon named ${name}`);
  await stopProcs([p]);
  if (p.listen?.kind === "unix") rmrf(p.listen.address);
  s.procs = s.procs.filter((x) => x !== p);
  writeState(s);
  log(`stopped daemon ${name}`);
}

async function cmdRestartDaemon(o: Opts) {
  const s = readState();
  if (!s) fail("no mixnet is running");
  const name = typeof o.name === "string" && o.name !== "main"
    ? `kpclientd-${o.name}`
    : "kpclientd";
  const p = s.procs.find((x) => x.name === name);
  if (!p) fail(`no daemon ${name}`);
  const sig = String(o.signal ?? "KILL").toUpperCase() === "TERM"
    ? "SIGTERM"
    : "SIGKILL";
  if (isOurs(p)) {
    Deno.kill(p.pid, sig);
    const d = now() + 15000;
    while (isOurs(p) && now() < d) await sleep(50);
    if (isOurs(p)) Deno.kill(p.pid, "SIGKILL");
    while (isOurs(p)) await sleep(50);
  }
  if (p.listen?.kind === "unix") rmrf(p.listen.address);
  const t0 = now();
  const np = clientProc(p.name, p.dir, p.args[1] ?? "", p.listen!);
  np.logs = p.logs;
  s.procs = s.procs.map((x) => (x === p ? np : x));
  writeState(s);
  await waitStarted([np], 20000);
  log(
    `${name} restarted after ${sig} (old pid ${p.pid}, new pid ${np.pid}), listening after ${
      now() - t0
    } ms`,
  );
  console.log(
    JSON.stringify({
      name: p.name,
      listen: p.listen!.kind,
      address: p.listen!.address,
      pid: np.pid,
    }),
  );
}

async function cmdProbe(o: Opts) {
  const s = readState();
  if (!s || s.mode !== "net") fail("no mixnet is running (run `up` first)");
  const name = typeof o.name === "string" && o.name !== "main"
    ? `kpclientd-${o.name}`
    : "kpclientd";
  const p = s.procs.find((x) => x.name === name);
  if (!p?.listen) fail(`no daemon ${name}`);
  const count = optNum(o, "count", 3);
  const t0 = now();
  const conn = await ThinConn.open(p.listen);
  try {
    await conn.handshake(now() + 60000);
    log(
      `handshake with ${name} (${p.listen.kind} ${p.listen.address}) took ${
        now() - t0
      } ms; ` +
        `document epoch ${conn.doc?.epoch ?? "none"}, replicas [${
          conn.doc?.replicas.join(",") ?? ""
        }], ` +
        `services [${
          conn.doc?.services.map((x) =>
            `${x.capability}=${x.endpoint}@${x.node}`
          ).join(", ") ?? ""
        }]`,
    );
    const rtts: number[] = [];
    for (let i = 0; i < count; i++) {
      const r = await conn.echo(optNum(o, "timeout", 30) * 1000);
      rtts.push(r);
      log(`echo ${i + 1}/${count}: ${r.toFixed(0)} ms`);
    }
    const sorted = [...rtts].sort((a, b) => a - b);
    const result: Record<string, unknown> = {
      daemon: name,
      count,
      "min_ms": Math.round(sorted[0] ?? NaN),
      "median_ms": Math.round(sorted[Math.floor(sorted.length / 2)] ?? NaN),
      "max_ms": Math.round(sorted.at(-1) ?? NaN),
    };
    if (o.pigeonhole) {
      const ph = await conn.pigeonhole(optNum(o, "timeout", 120) * 1000);
      log(
        `pigeonhole write ${ph.writeMs.toFixed(0)} ms, read ${
          ph.readMs.toFixed(0)
        } ms`,
      );
      result["pigeonhole_write_ms"] = Math.round(ph.writeMs);
      result["pigeonhole_read_ms"] = Math.round(ph.readMs);
    }
    console.log(JSON.stringify(result));
  } finally {
    await conn.closeGracefully();
  }
}

function printUsage() {
  console.log(`usage: deno run -A scripts/mixnet/mixnet.ts <command> [options]

  up [--replicas N] [--timeout S] [--no-wait] [--daemons unix,ws]
                       build if needed, generate a fresh network, start it, wait until ready
  wait [--timeout S]   wait until kpclientd has a full consensus and echo works
  down                 stop every process of the run (by pid / process group)
  status               processes, liveness, listeners, last consensus
  logs [NAME...] [--n N] [--grep REGEX] [--dead]
                       tail the logs (names: auth1, replica2, gateway1, servicenode1, mix3, kpclientd, ...);
                       --dead: only of processes that are no longer running
  offline [--listen tcp|unix|ws] [--address A]
                       kpclientd alone, no mixnet (default 127.0.0.1:64331)
  daemon --listen unix|ws|tcp [--name X] [--address A]
                       start another kpclientd on the running network (defaults: unix ${RUN}/kpclientd.sock,
                       ws ${DEFAULT_WS}, tcp ${DEFAULT_EXTRA_TCP}); prints {"address":...} as JSON
  daemon-stop --name X stop one extra kpclientd
  restart-daemon [--name main|X] [--signal KILL|TERM]
                       kill (default -9) and restart a kpclientd with the same config
  probe [--name main|X] [--count N]
                       echo round trips through a kpclientd; prints RTT stats as JSON

main kpclientd: tcp ${MAIN_TCP} (thin config: <net dir>/client/thinclient.toml)`);
}

if (import.meta.main) {
  const { cmd, opts, rest } = parseArgs(Deno.args);
  try {
    switch (cmd) {
      case "up":
        await withLock("up", () => cmdUp(opts));
        break;
      case "wait":
        await cmdWait(opts);
        break;
      case "down":
        await withLock("down", () => cmdDown());
        break;
      case "status":
        cmdStatus();
        break;
      case "logs":
        cmdLogs(opts, rest);
        break;
      case "offline":
        await withLock("offline", () => cmdOffline(opts));
        break;
      case "daemon":
        await withLock("daemon", () => cmdDaemon(opts));
        break;
      case "daemon-stop":
        await withLock("daemon-stop", () => cmdDaemonStop(opts));
        break;
      case "restart-daemon":
        await withLock("restart-daemon", () => cmdRestartDaemon(opts));
        break;
      case "probe":
        await cmdProbe(opts);
        break;
      case "backend":
        // The running network's backend, else the built binaries'.
        console.log(readState()?.backend ?? backendNote());
        break;
      case "":
      case "help":
      case "--help":
        printUsage();
        break;
      default:
        printUsage();
        Deno.exit(2);
    }
  } catch (e) {
    if (e instanceof Fail) {
      log(`ERROR: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
