// Local mixnet harness: the build (install.sh, CTIDH backend) and the network's
// configuration: genconfig, the post-processing of its files, kpclientd's [Listen] and
// the thin client's [Dial] tables, the replicas' self-check sidecars, and reading the
// generated network (node names, the ports each node binds).

import {
  BASE_PORT,
  BIN,
  CACHE,
  CLIENT_BIN,
  dec,
  exists,
  fail,
  HERE,
  RATES,
  rmrf,
  ROOT,
  RUN,
  SESSION_GRACE,
  type State,
  tail,
} from "./_env.ts";
import type { Listen } from "./thin_probe.ts";

// ---- build ---------------------------------------------------------------------------------
export async function install(): Promise<void> {
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
export function backendNote(): string {
  const servers = ctidhBackend(BIN);
  const client = ctidhBackend(CLIENT_BIN);
  return servers === client
    ? servers
    : `servers ${servers}, kpclientd ${client}`;
}

// ---- configuration -------------------------------------------------------------------------
/** Where the generated network lives: short enough for unix socket paths (<108 bytes). */
export function chooseNetDir(): string {
  const inRun = `${RUN}/net`;
  if (inRun.length <= 48) return inRun;
  let h = 0;
  for (const c of ROOT) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${Deno.env.get("TMPDIR") ?? "/tmp"}/kpmix-${h.toString(16)}`;
}

export async function genconfig(
  outDir: string,
  replicas: number,
): Promise<void> {
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
export function postprocess(netDir: string): void {
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
export function setListen(clientToml: string, l: Listen): string {
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

export function thinToml(l: Listen): string {
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

export function saveSelfchecks(state: State): void {
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

export function restoreSelfchecks(
  netDir: string,
  replicas: string[],
): void {
  if (
    Deno.env.get("KP_FRESH_SELFCHECK") === "1" ||
    !exists(selfcheckFile())
  ) return;
  const t = Deno.readTextFileSync(selfcheckFile());
  for (const r of replicas) {
    Deno.writeTextFileSync(`${netDir}/${r}/selfcheck.toml`, t, { mode: 0o600 });
  }
}

// ---- the generated network ----------------------------------------------------------------
/** Ports a node binds itself: its BindAddresses/Addresses and MetricsAddress, not its peers'. */
export function ownPorts(cfg: string): number[] {
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

export function nodeNames(
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
