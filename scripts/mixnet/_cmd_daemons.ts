// deno-lint-ignore-file no-console
// Local mixnet harness: the commands for single kpclientds on a running network:
// daemon, daemon-stop, restart-daemon, probe.

import { optNum, type Opts } from "./_args.ts";
import { fail, log, now, readState, rmrf, sleep, writeState } from "./_env.ts";
import { clientProc, startExtraDaemon } from "./_launch.ts";
import { isOurs, stopProcs, waitStarted } from "./_procs.ts";
import { ThinConn } from "./thin_probe.ts";

export async function cmdDaemon(o: Opts): Promise<void> {
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

export async function cmdDaemonStop(o: Opts): Promise<void> {
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

export async function cmdRestartDaemon(o: Opts): Promise<void> {
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

export async function cmdProbe(o: Opts): Promise<void> {
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
