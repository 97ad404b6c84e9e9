// Local mixnet harness: the processes. Identity by /proc start time, listeners and
// ports, spawning each daemon in its own process group, stopping by pid / process
// group, and waiting for their listeners.

import {
  dec,
  EPOCH,
  fail,
  log,
  now,
  type Proc,
  type Role,
  sleep,
  tail,
} from "./_env.ts";
import type { Listen } from "./thin_probe.ts";

// ---- process identity, ports and listeners -------------------------------------------------
/** [state letter, start time in clock ticks] of a pid, from /proc/<pid>/stat. */
export function procStat(pid: number): [string, string] | null {
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
export function isOurs(p: Proc): boolean {
  const st = procStat(p.pid);
  return !!st && st[0] !== "Z" && st[1] === p.startTicks;
}

export function tailReport(p: Proc, n = 25): string {
  const parts: string[] = [];
  for (const f of p.logs) {
    const t = tail(f, n);
    if (t.length) {
      parts.push(`--- ${f} (last ${t.length} lines)\n${t.join("\n")}`);
    }
  }
  return parts.join("\n") || `(no log output in ${p.logs.join(", ")})`;
}

export function portFree(port: number): boolean {
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
export function portOpen(port: number): boolean {
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

export function listenerUp(l: Listen): boolean {
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

export function listenPort(l: Listen): number {
  const a = l.kind === "ws" ? new URL(l.address).host : l.address;
  return Number(a.slice(a.lastIndexOf(":") + 1));
}

export function whoHolds(port: number): string {
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

// ---- processes -----------------------------------------------------------------------------
export function spawn(
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

export async function stopProcs(
  procs: Proc[],
  graceMs = 10000,
): Promise<void> {
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
export async function waitStarted(
  procs: Proc[],
  timeoutMs: number,
): Promise<void> {
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
