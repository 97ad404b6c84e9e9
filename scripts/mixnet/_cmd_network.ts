// deno-lint-ignore-file no-console
// Local mixnet harness: the commands that bring a network up or down: up, wait, down,
// offline.

import { optNum, type Opts } from "./_args.ts";
import {
  backendNote,
  chooseNetDir,
  genconfig,
  install,
  nodeNames,
  ownPorts,
  postprocess,
  restoreSelfchecks,
  setListen,
  thinToml,
} from "./_config.ts";
import {
  epochInfo,
  fail,
  log,
  MAIN_TCP,
  now,
  readState,
  rmrf,
  type Role,
  RUN,
  type State,
  STATE_FILE,
  writeState,
} from "./_env.ts";
import {
  clientProc,
  defaultListen,
  nodeProc,
  startClients,
} from "./_launch.ts";
import { waitForLock } from "./_lock.ts";
import {
  isOurs,
  listenPort,
  portFree,
  stopProcs,
  waitStarted,
  whoHolds,
} from "./_procs.ts";
import { waitReady } from "./_ready.ts";
import type { Listen } from "./thin_probe.ts";

export async function cmdUp(o: Opts): Promise<void> {
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

export async function cmdWait(o: Opts): Promise<void> {
  await waitForLock(optNum(o, "timeout", 600) * 1000);
  const s = readState();
  if (!s || s.mode !== "net") fail("no mixnet is running (run `up` first)");
  await waitReady(s, optNum(o, "timeout", 600) * 1000);
}

export async function cmdDown(): Promise<void> {
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

export async function cmdOffline(o: Opts): Promise<void> {
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
