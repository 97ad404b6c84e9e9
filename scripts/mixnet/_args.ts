// Local mixnet harness: command-line parsing (command, --options, positional names).

import { fail } from "./_env.ts";

export interface Opts {
  [k: string]: string | boolean | undefined;
}

export function parseArgs(
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

export function optNum(o: Opts, k: string, d: number): number {
  const v = o[k];
  if (v === undefined || v === true) return d;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${k} expects a number, got ${v}`);
  return n;
}
