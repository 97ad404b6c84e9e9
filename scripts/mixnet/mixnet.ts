// deno-lint-ignore-file no-console
// Local Katzenpost test mixnet (no docker): build, configure, start, wait, stop.
//
//   deno run -A scripts/mixnet/mixnet.ts <command> [options]
//
// Commands (see printUsage() and docs/mixnet.md):
//   up, wait, down, status, logs, offline, probe,
//   daemon, daemon-stop, restart-daemon, backend
//
// Everything lives under .cache/mixnet/ (git-ignored): bin/ (built by install.sh),
// run/ (state.json, extra daemons, the unix socket) and the generated network
// (run/net, or a short /tmp path when the checkout path is long). Configs are generated
// at every `up` by upstream's genconfig and then post-processed here. Processes are
// tracked by pid in run/state.json and stopped by pid / process group, never by name.
//
// This file is the command line (usage and dispatch). The harness itself, each module
// importing only from those above it:
//   thin_probe.ts     a minimal thin-client connection (handshake, echo, Pigeonhole)
//   _env.ts           paths, env-derived parameters, types, log/fail/sleep, state file
//   _procs.ts         process identity, ports and listeners, spawn, stop, waitStarted
//   _lock.ts          the lock of commands that start or stop processes
//   _config.ts        build (install.sh), genconfig and its post-processing, self-checks
//   _launch.ts        what each process runs; starting the kpclientds
//   _ready.ts         waitReady, log scans (consensus, storage links), diagnostics
//   _args.ts          command-line parsing
//   _cmd_network.ts   up, wait, down, offline
//   _cmd_inspect.ts   status, logs
//   _cmd_daemons.ts   daemon, daemon-stop, restart-daemon, probe

import { parseArgs } from "./_args.ts";
import {
  cmdDaemon,
  cmdDaemonStop,
  cmdProbe,
  cmdRestartDaemon,
} from "./_cmd_daemons.ts";
import { cmdLogs, cmdStatus } from "./_cmd_inspect.ts";
import { cmdDown, cmdOffline, cmdUp, cmdWait } from "./_cmd_network.ts";
import { backendNote } from "./_config.ts";
import {
  DEFAULT_EXTRA_TCP,
  DEFAULT_WS,
  Fail,
  log,
  MAIN_TCP,
  readState,
  RUN,
} from "./_env.ts";
import { withLock } from "./_lock.ts";

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
