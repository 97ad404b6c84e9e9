/**
 * Finds the kpclientd instances of the local mixnet (scripts/mixnet) and
 * connects clients to them. When the mixnet is not running, every helper
 * throws an error that says how to start it: integration tests fail, they
 * are never skipped.
 */
import { ThinClient, type ThinClientOptions } from "../../mod.ts";
import { type DialConfig, dialerFromConfig } from "../../transport/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const STATE = `${ROOT}.cache/mixnet/run/state.json`;

export const HOW_TO_START =
  "The local mixnet is not running: start it with `deno task mixnet:up --daemons unix,ws` " +
  "(or run `bash scripts/test.sh unit` to leave the integration tests out)";

export type DaemonKind = "tcp" | "unix" | "ws";

interface StateProc {
  name: string;
  role: string;
  pid: number;
  dir: string;
  listen?: { kind: DaemonKind; address: string };
}

/** The state entry of the running kpclientd listening on `kind`. */
function daemonProc(
  kind: DaemonKind,
): StateProc & { listen: NonNullable<StateProc["listen"]> } {
  let procs: StateProc[];
  try {
    procs = JSON.parse(Deno.readTextFileSync(STATE)).procs as StateProc[];
  } catch {
    throw new Error(HOW_TO_START);
  }
  const p = procs.find((p) =>
    p.role === "kpclientd" && p.listen?.kind === kind
  );
  if (p === undefined || p.listen === undefined) {
    throw new Error(
      `No kpclientd listening on ${kind} in the local mixnet: start it with \`deno task mixnet:up --daemons unix,ws\` or \`deno run -A scripts/mixnet/mixnet.ts daemon --listen ${kind}\``,
    );
  }
  return { ...p, listen: p.listen };
}

/** The dial configuration of a running kpclientd of the given kind. */
export function daemonDial(kind: DaemonKind = "tcp"): DialConfig {
  const a = daemonProc(kind).listen.address;
  if (kind === "tcp") return { tcp: { address: a } };
  if (kind === "unix") return { unix: { address: a } };
  return { ws: { address: a.endsWith("/") ? a : `${a}/` } };
}

/** The thinclient.toml the harness wrote for the running kpclientd of a kind. */
export function thinConfigPath(kind: DaemonKind = "tcp"): string {
  return `${daemonProc(kind).dir}/thinclient.toml`;
}

/**
 * Connects to a kpclientd of the local mixnet (90 s handshake bound): one of
 * the daemons `mixnet:up` starts (by kind), or any dial configuration.
 *
 * scripts/test_integration.sh runs core and restart first, alone (the restart
 * test starts and kills a daemon of its own), then cli_examples, persistent
 * and pigeonhole in parallel on the unix, main tcp and ws daemons: one
 * daemon's CTIDH work is serial.
 */
export async function connectReal(
  kind: DaemonKind | DialConfig = "tcp",
  options: ThinClientOptions = {},
): Promise<ThinClient> {
  const dial = typeof kind === "string" ? daemonDial(kind) : kind;
  try {
    return await ThinClient.connect(dialerFromConfig(dial), {
      signal: AbortSignal.timeout(90_000),
      reconnect: { initialDelay: 250, maxDelay: 2000 },
      ...options,
    });
  } catch (err) {
    throw new Error(
      `${HOW_TO_START} (connect to ${JSON.stringify(dial)} failed)`,
      {
        cause: err,
      },
    );
  }
}

/** Runs a mixnet.ts subcommand (e.g. restart-daemon) and returns its output. */
export async function mixnet(...args: string[]): Promise<string> {
  const deno = Deno.execPath();
  const out = await new Deno.Command(deno, {
    args: ["run", "-A", `${ROOT}scripts/mixnet/mixnet.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`mixnet.ts ${args.join(" ")} failed:\n${text}`);
  }
  return text;
}

/**
 * Starts an extra kpclientd listening on tcp (scripts/mixnet `daemon`) for one
 * test alone; disposing of the handle stops it.
 */
export async function ownDaemon(
  name: string,
): Promise<{ dial: DialConfig; [Symbol.asyncDispose](): Promise<void> }> {
  const out = await mixnet("daemon", "--listen", "tcp", "--name", name);
  const line = out.split("\n").find((l) => l.startsWith("{"));
  if (line === undefined) {
    throw new Error(`mixnet.ts daemon printed no address:\n${out}`);
  }
  const { address } = JSON.parse(line) as { address: string };
  return {
    dial: { tcp: { address } },
    async [Symbol.asyncDispose]() {
      await mixnet("daemon-stop", "--name", name);
    },
  };
}

/** A bounded signal for one mixnet operation. */
export function within(seconds: number): AbortSignal {
  return AbortSignal.timeout(seconds * 1000);
}

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** Registers an integration test (timers of AbortSignal.timeout may outlive it). */
export function itest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false });
}
