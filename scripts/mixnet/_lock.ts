// Local mixnet harness: the lock that serialises commands which start or stop
// processes of the shared network.

import { enc, fail, log, now, rmrf, RUN, sleep } from "./_env.ts";
import { procStat } from "./_procs.ts";

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

export async function withLock<T>(
  cmd: string,
  f: () => Promise<T>,
): Promise<T> {
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
export async function waitForLock(timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  let h = lockHolder();
  if (h) log(`waiting for pid ${h.pid} (\`${h.cmd}\`) to finish`);
  while (h) {
    if (now() > deadline) fail(busyMessage(h));
    await sleep(1000);
    h = lockHolder();
  }
}
