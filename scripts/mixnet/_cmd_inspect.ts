// deno-lint-ignore-file no-console
// Local mixnet harness: the read-only commands status and logs.

import { optNum, type Opts } from "./_args.ts";
import { backendNote } from "./_config.ts";
import {
  EPOCH,
  epochInfo,
  fail,
  readState,
  RUN,
  type State,
  tail,
} from "./_env.ts";
import { isOurs, listenerUp, portOpen } from "./_procs.ts";
import { consensusNote, meshGaps } from "./_ready.ts";

export function cmdStatus(): void {
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

export function cmdLogs(o: Opts, names: string[]): void {
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
