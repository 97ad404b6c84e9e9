// Deno implementation of the TCP and Unix socket transports. Only referenced
// when `globalThis.Deno` exists; it touches `Deno` only inside functions.
import type { Conn } from "../lib/conn.ts";
import { _ioError } from "./_errors.ts";
import type { _SocketBackend } from "./_backend.ts";

/** Reads go into slabs of this size, each chunk a view of its own part. */
const SLAB_SIZE = 64 * 1024;
/** A new slab is started when the current one has less room than this. */
const MIN_READ = 16 * 1024;
const WRITE_HIGH_WATER_MARK = 64 * 1024;

/**
 * Wraps a Deno connection into a {@linkcode Conn} driven by read()/write(),
 * with the optional direct methods (readChunk, writeChunk, closeWrite) that
 * the client uses instead of the streams. The streams are built on first use,
 * so that a client reading directly never has a stream reading ahead.
 */
export function _wrapDenoConn(conn: Deno.Conn, label: string): Conn {
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed by Deno: nothing to release.
    }
  };
  // Chunks are views of a slab that is never written twice: no allocation
  // and no copy per read, and a chunk stays valid after the next read.
  let slab = new Uint8Array(SLAB_SIZE);
  let used = 0;
  const readChunk = async (): Promise<Uint8Array | null> => {
    if (closed) return null;
    if (SLAB_SIZE - used < MIN_READ) {
      slab = new Uint8Array(SLAB_SIZE);
      used = 0;
    }
    const start = used;
    const target = slab;
    let n: number | null;
    try {
      n = await conn.read(target.subarray(start));
    } catch (err) {
      if (closed) return null;
      close();
      throw _ioError("read from", label, err);
    }
    if (n === null) return null;
    used = start + n;
    return target.subarray(start, used);
  };
  const writeChunk = async (chunk: Uint8Array): Promise<void> => {
    if (closed) throw _ioError("write to", label);
    try {
      let offset = await conn.write(chunk);
      while (offset < chunk.length) {
        offset += await conn.write(chunk.subarray(offset));
      }
    } catch (err) {
      throw closed
        ? _ioError("write to", label)
        : _ioError("write to", label, err);
    }
  };
  const closeWrite = async (): Promise<void> => {
    if (closed) return;
    try {
      await conn.closeWrite();
    } catch {
      // The peer may be gone already; closing is best effort.
    }
  };
  let readable: ReadableStream<Uint8Array> | undefined;
  let writable: WritableStream<Uint8Array> | undefined;
  return {
    get readable(): ReadableStream<Uint8Array> {
      return readable ??= new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const chunk = await readChunk();
            if (chunk === null) controller.close();
            else controller.enqueue(chunk);
          } catch (err) {
            controller.error(err);
          }
        },
        cancel() {
          close();
        },
      });
    },
    get writable(): WritableStream<Uint8Array> {
      // A queue of 64 KiB before backpressure, as in _node.ts: with the
      // default of one chunk every write would flip `ready` (a promise each).
      return writable ??= new WritableStream<Uint8Array>({
        write: writeChunk,
        close: closeWrite,
        abort() {
          close();
        },
      }, {
        highWaterMark: WRITE_HIGH_WATER_MARK,
        size: (chunk) => chunk.byteLength,
      });
    },
    readChunk,
    writeChunk,
    closeWrite,
    remoteAddress: label,
    close,
  };
}

function _isIpLiteral(hostname: string): boolean {
  return hostname.includes(":") || /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname);
}

async function _connectTcp(
  hostname: string,
  port: number,
  signal: AbortSignal | undefined,
): Promise<Deno.TcpConn> {
  const options: Deno.ConnectOptions = { hostname, port, transport: "tcp" };
  if (signal !== undefined) options.signal = signal;
  const conn = await Deno.connect(options);
  try {
    conn.setNoDelay(true);
  } catch {
    // Nagle only affects latency; a failure here is not worth a failed dial.
  }
  return conn;
}

/** The Deno socket backend. */
export const _denoBackend: _SocketBackend = {
  get platform(): string {
    return Deno.build.os;
  },
  async dialTcp(hostname, port, family, label, signal) {
    if (family === 0 || _isIpLiteral(hostname)) {
      return _wrapDenoConn(await _connectTcp(hostname, port, signal), label);
    }
    // tcp4/tcp6 with a name: resolve with getaddrinfo (honours /etc/hosts),
    // then try each address of the wanted family in turn.
    const dns = await import("node:dns");
    const found = await dns.promises.lookup(hostname, { family, all: true });
    let last: unknown = new Error(
      `No IPv${family} address found for '${hostname}'`,
    );
    for (const { address } of found) {
      signal?.throwIfAborted();
      try {
        return _wrapDenoConn(await _connectTcp(address, port, signal), label);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  },
  dialUnix(path, label, signal) {
    // Deno.connect has no signal for Unix sockets; a local connect finishes
    // at once, but race it anyway and close a connection that comes too late.
    const pending = Deno.connect({ transport: "unix", path });
    if (signal === undefined) {
      return pending.then((c) => _wrapDenoConn(c, label));
    }
    return new Promise<Conn>((resolve, reject) => {
      const onAbort = (): void => {
        reject(signal.reason);
        pending.then((c) => c.close(), () => {});
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      pending.then(
        (c) => {
          signal.removeEventListener("abort", onAbort);
          if (signal.aborted) return;
          resolve(_wrapDenoConn(c, label));
        },
        (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  },
  async readTextFile(path, maxBytes) {
    // No `using`: this file is bundled for Node too, which lacks the syntax.
    const file = await Deno.open(path, { read: true });
    try {
      const buf = new Uint8Array(maxBytes + 1);
      let n = 0;
      while (n < buf.length) {
        const got = await file.read(buf.subarray(n));
        if (got === null) break;
        n += got;
      }
      if (n > maxBytes) return null;
      return new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      file.close();
    }
  },
};
