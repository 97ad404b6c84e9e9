// deno-lint-ignore-file no-console
// Local mixnet harness: what each process of the network runs (binary, config, logs,
// ports), and starting kpclientds: the main one and the extra ones (--daemons, daemon).

import { ownPorts, setListen, thinToml } from "./_config.ts";
import {
  BIN,
  CLIENT_BIN,
  DEFAULT_EXTRA_TCP,
  DEFAULT_WS,
  exists,
  fail,
  log,
  MAIN_TCP,
  type Proc,
  readState,
  rmrf,
  type Role,
  RUN,
  type State,
  writeState,
} from "./_env.ts";
import {
  isOurs,
  listenPort,
  portFree,
  spawn,
  waitStarted,
  whoHolds,
} from "./_procs.ts";
import type { Listen } from "./thin_probe.ts";

export function nodeProc(netDir: string, name: string): Proc {
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

export function clientProc(
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

export function defaultListen(kind: string, address?: string): Listen {
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

/** Start the main kpclientd (tcp 127.0.0.1:64331) and any extra ones requested with --daemons. */
export async function startClients(state: State): Promise<void> {
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

export async function startExtraDaemon(
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

export function mainClient(state: State): Proc {
  const p = state.procs.find((p) => p.name === "kpclientd");
  if (!p) fail("no main kpclientd in this run");
  return p;
}
