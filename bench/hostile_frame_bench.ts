// deno-lint-ignore-file no-console
/**
 * What one hostile frame from the daemon costs a connected ThinClient: peak
 * memory, the longest the event loop is blocked, and the time until the
 * client gives up with a typed error.
 *
 * Each case runs in a fresh child process. The child connects a ThinClient
 * (no reconnect) to the in-memory fake daemon, resets the kernel's peak-RSS
 * mark (`/proc/self/clear_refs`), then delivers one frame in 64 KiB chunks,
 * 1 MiB per macrotask as a fast socket would, and waits for the client to
 * close. Reported:
 *
 * - extra peak RSS: `VmHWM` after the frame minus `VmRSS` just before it
 *   (the frame itself already sits in memory before);
 * - max event-loop block: the longest gap between ticks of a 5 ms timer;
 * - the CPU time of the JS thread and its wait in the kernel's run queue
 *   between the first byte and the close (`/proc/thread-self/schedstat`): on
 *   a loaded machine the wall-clock gaps include time the thread was ready
 *   but not running, the CPU time does not;
 * - time to error, and the error the client closed with. Every frame is
 *   followed by a 1-byte frame that is not CBOR, so a client that accepts or
 *   ignores the big frame closes on that one (its error then says "0xff").
 *
 * Cases (the body is one CBOR item; "40 MiB" is the default maximum frame):
 * arrays of empty maps (40 and 10 MiB), of empty arrays, of nulls, a map of
 * distinct 4-byte keys; 131,071 byte strings of 316 bytes (the most the Go
 * decoder takes in one array), and two frames just under the element limit
 * of lib/protocol.ts: 65,500 byte strings, or text strings, of 637 bytes, each
 * inside an event the client ignores (the most a frame may cost to decode).
 *
 *   deno run -A bench/hostile_frame_bench.ts            # all cases
 *   deno run -A bench/hostile_frame_bench.ts maps-40    # one case
 *
 * Linux only (it reads /proc). Uses only APIs that already existed at commit
 * 3e48cff, so the same file measures the code before and after the CBOR
 * limits: copy it into an export of the old tree and run it there.
 *
 * @module
 */
import { ThinClient } from "../lib/client.ts";
import type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
import { FakeDaemon } from "../testing/mod.ts";
import { encodeCbor } from "../lib/cbor.ts";

const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;
/** Chunks delivered per macrotask: 1 MiB, a fast local socket. */
const CHUNKS_PER_TICK = 16;

interface Case {
  name: string;
  what: string;
  build(): Uint8Array;
}

/** A body of `size` bytes: a 5-byte array head, then `size - 5` copies of `item`. */
function arrayOf(size: number, item: number): Uint8Array {
  const body = new Uint8Array(size);
  const n = size - 5;
  body[0] = 0x9a; // array, 4-byte length
  new DataView(body.buffer).setUint32(1, n, false);
  body.fill(item, 5);
  return body;
}

/** A map of `size / 6` distinct 4-byte text keys, each to null. */
function distinctKeys(size: number): Uint8Array {
  const n = Math.floor((size - 5) / 6);
  const body = new Uint8Array(5 + n * 6);
  body[0] = 0xba; // map, 4-byte length
  const view = new DataView(body.buffer);
  view.setUint32(1, n, false);
  for (let i = 0, at = 5; i < n; i++, at += 6) {
    body[at] = 0x64; // text(4)
    // Four printable bytes, distinct for every i < 64^4 = 16.7 M.
    body[at + 1] = 0x30 + (i & 63);
    body[at + 2] = 0x30 + ((i >> 6) & 63);
    body[at + 3] = 0x30 + ((i >> 12) & 63);
    body[at + 4] = 0x30 + ((i >> 18) & 63);
    body[at + 5] = 0xf6; // null
  }
  return body;
}

/**
 * `{"future_event": [n strings of length bytes]}`: a variant the client does not
 * know, so it is decoded and then ignored. `major` 2 = bytes, 3 = text.
 */
function manyStrings(n: number, major: 2 | 3, length: number): Uint8Array {
  const key = new TextEncoder().encode("future_event");
  const item = 3 + length;
  const body = new Uint8Array(1 + 1 + key.length + 5 + n * item);
  let at = 0;
  body[at++] = 0xa1; // map(1)
  body[at++] = 0x60 + key.length;
  body.set(key, at);
  at += key.length;
  body[at++] = 0x9a;
  new DataView(body.buffer).setUint32(at, n, false);
  at += 4;
  for (let i = 0; i < n; i++) {
    body[at++] = (major << 5) | 25; // 2-byte length
    body[at++] = length >> 8;
    body[at++] = length & 0xff;
    body.fill(0x61 + (i % 26), at, at + length);
    body[at] = 0x30 + (i % 10); // not all alike
    at += length;
  }
  return body;
}

/** `n` distinct strings of `length` characters (or bytes, as `Uint8Array`). */
function strings(n: number, length: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => String(i).padStart(8, "0") + "x".repeat(length - 8),
  );
}

const QUERY_ID = new Uint8Array(16).fill(7);

const CASES: Case[] = [
  {
    name: "maps-40",
    what: "40 MiB array of empty maps",
    build: () => arrayOf(40 * MIB, 0xa0),
  },
  {
    name: "arrays-40",
    what: "40 MiB array of empty arrays",
    build: () => arrayOf(40 * MIB, 0x80),
  },
  {
    name: "keys-40",
    what: "40 MiB map of distinct 4-byte keys to null",
    build: () => distinctKeys(40 * MIB),
  },
  {
    name: "nulls-40",
    what: "40 MiB array of nulls",
    build: () => arrayOf(40 * MIB, 0xf6),
  },
  {
    name: "maps-10",
    what: "10 MiB array of empty maps",
    build: () => arrayOf(10 * MIB, 0xa0),
  },
  {
    name: "bytes-131k",
    what: "131,071 byte strings of 316 B in an ignored event",
    build: () => manyStrings(131_071, 2, 316),
  },
  {
    name: "bytes-65k",
    what: "65,500 byte strings of 637 B in an ignored event",
    build: () => manyStrings(65_500, 2, 637),
  },
  {
    name: "text-65k",
    what: "65,500 text strings of 637 B in an ignored event",
    build: () => manyStrings(65_500, 3, 637),
  },
  {
    name: "envelopes-65k",
    what: "65,500 envelopes of 637 B in a courier-envelopes reply",
    build: () =>
      encodeCbor({
        create_courier_envelopes_from_payload_reply: {
          query_id: QUERY_ID,
          envelopes: strings(65_500, 637).map((t) =>
            new TextEncoder().encode(t)
          ),
          next_dest_index: null,
          error_code: 0,
        },
      }),
  },
  {
    name: "authorities-450",
    what: "450 directory authorities with 6 addresses of 15 KB each",
    build: () =>
      encodeCbor({
        get_directory_authorities_reply: {
          query_id: QUERY_ID,
          authorities: strings(450, 16).map((id, i) => ({
            identifier: id,
            addresses: strings(6, 15_500).map((a) => `${i}${a}`),
          })),
          error_code: 0,
        },
      }),
  },
  {
    name: "text-40",
    what: "one 40 MiB text string in message_sent_event.err",
    build: () =>
      encodeCbor({
        message_sent_event: { err: "e".repeat(40 * MIB - 64) },
      }),
  },
];

/** CPU time and run-queue wait of this (the JS) thread, in ms. */
function threadTimes(): { cpu: number; wait: number } {
  const [cpu, wait] = Deno.readTextFileSync("/proc/thread-self/schedstat")
    .trim().split(/\s+/).map(Number);
  return { cpu: cpu! / 1e6, wait: wait! / 1e6 };
}

function procStatus(field: "VmRSS" | "VmHWM"): number {
  const text = Deno.readTextFileSync("/proc/self/status");
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  if (m === null) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** A dialer to the fake daemon whose connection can carry extra bytes. */
function injectingDialer(
  fake: FakeDaemon,
): { dialer: Dialer; inject(bytes: Uint8Array): Promise<void> } {
  let extra: ReadableStreamDefaultController<Uint8Array> | null = null;
  const dialer: Dialer = {
    address: "memory (bench)",
    async dial(options?: DialOptions): Promise<Conn> {
      const inner = await fake.dialer.dial(options);
      const readable = new ReadableStream<Uint8Array>({
        start(c) {
          extra = c;
          (async () => {
            try {
              for await (const chunk of inner.readable) c.enqueue(chunk);
              c.close();
            } catch (err) {
              try {
                c.error(err);
              } catch { /* already closed */ }
            }
          })();
        },
      });
      return {
        readable,
        writable: inner.writable,
        remoteAddress: "memory (bench)",
        close: () => inner.close(),
      };
    },
  };
  return {
    dialer,
    async inject(bytes: Uint8Array): Promise<void> {
      const c = extra;
      if (c === null) throw new Error("not connected");
      for (let at = 0, n = 0; at < bytes.length; at += CHUNK, n++) {
        // A socket hands over data in separate I/O callbacks; so do we.
        if (n > 0 && n % CHUNKS_PER_TICK === 0) {
          await new Promise((r) => setTimeout(r, 0));
        }
        try {
          c.enqueue(bytes.subarray(at, at + CHUNK));
        } catch {
          return; // the client already gave up and closed
        }
      }
    },
  };
}

async function child(name: string): Promise<void> {
  const c = CASES.find((x) => x.name === name);
  if (c === undefined) throw new Error(`unknown case '${name}'`);
  const body = c.build();
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, 4);

  await using fake = await FakeDaemon.start({ transport: "memory" });
  const { dialer, inject } = injectingDialer(fake);
  const client = await ThinClient.connect(dialer, { reconnect: false });
  let last = performance.now();
  let maxGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  await new Promise((r) => setTimeout(r, 50));
  // Collect what building the case left behind, so that a collection of it
  // is not counted as the client's work.
  (globalThis as { gc?: () => void }).gc?.();
  maxGap = 0;
  last = performance.now();
  const before = procStatus("VmRSS");
  Deno.writeTextFileSync("/proc/self/clear_refs", "5"); // reset VmHWM
  const t0 = performance.now();
  const times0 = threadTimes();
  // Then a frame that is not CBOR: a client that accepted (or ignored) the
  // first one closes on this, so every case ends with the client closed.
  void inject(frame).then(() => inject(new Uint8Array([0, 0, 0, 1, 0xff])));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    client.closed(),
    new Promise<string>((r) =>
      timer = setTimeout(() => r("still open"), 120_000)
    ),
  ]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  const times1 = threadTimes();
  await new Promise((r) => setTimeout(r, 20)); // one more tick after the end
  clearInterval(tick);
  const peak = procStatus("VmHWM");
  const error = result instanceof Error
    ? `${result.name}${
      result.cause instanceof Error
        ? ` <- ${result.cause.name}: ${result.cause.message}`
        : ""
    }`
    : String(result);
  console.log(JSON.stringify({
    case: c.name,
    what: c.what,
    frameBytes: body.length,
    extraPeakMiB: +((peak - before) / MIB).toFixed(1),
    peakRssMiB: +(peak / MIB).toFixed(1),
    maxBlockMs: Math.round(maxGap),
    msToError: Math.round(ms),
    cpuMs: Math.round(times1.cpu - times0.cpu),
    runQueueMs: Math.round(times1.wait - times0.wait),
    error: error.slice(0, 300),
  }));
  await client.close();
  await fake.close();
  Deno.exit(0);
}

async function parent(only: string[]): Promise<void> {
  const names = only.length > 0 ? only : CASES.map((c) => c.name);
  const rows: Record<string, unknown>[] = [];
  for (const name of names) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--max-old-space-size=8192,--expose-gc",
        new URL(import.meta.url).pathname,
        "--child",
        name,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success || text === "") {
      console.error(`case ${name} failed (exit ${out.code}):`);
      console.error(new TextDecoder().decode(out.stderr).slice(-2000));
      continue;
    }
    const row = JSON.parse(text.split("\n").pop()!);
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  console.log(
    "\n| case | frame | extra peak RSS | peak RSS | max event-loop block | time to error | JS thread CPU | run-queue wait | error |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const r of rows) {
    console.log(
      `| ${r.what} | ${r.frameBytes} B | ${r.extraPeakMiB} MiB | ${r.peakRssMiB} MiB | ${r.maxBlockMs} ms | ${r.msToError} ms | ${r.cpuMs} ms | ${r.runQueueMs} ms | ${
        String(r.error).split(" <- ")[0]
      } |`,
    );
  }
}

if (Deno.args[0] === "--child") await child(Deno.args[1]!);
else await parent(Deno.args);
