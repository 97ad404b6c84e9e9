// Node (>= 22) implementation of the TCP and Unix socket transports, on
// node:net. Loaded only through a dynamic import from _runtime.ts, when
// `globalThis.Deno` is absent and `process.versions.node` is present.
import { open } from "node:fs/promises";
import * as net from "node:net";
import process from "node:process";
import type { Conn } from "../lib/conn.ts";
import { _ioError } from "./_errors.ts";
import type { _SocketBackend } from "./_backend.ts";

const HIGH_WATER_MARK = 64 * 1024;

/** Wraps a connected node:net socket into web streams, with backpressure. */
export function _wrapSocket(socket: net.Socket, label: string): Conn {
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    socket.destroy();
  };
  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        socket.on("data", (data: Uint8Array) => {
          if (closed) return;
          controller.enqueue(new Uint8Array(data));
          if ((controller.desiredSize ?? 0) <= 0) socket.pause();
        });
        const end = (): void => {
          try {
            controller.close();
          } catch {
            // Already closed or errored.
          }
        };
        socket.on("end", end);
        socket.on("error", (err) => {
          if (closed) return;
          try {
            controller.error(_ioError("read from", label, err));
          } catch {
            // Already closed or errored.
          }
        });
        socket.on("close", end);
      },
      pull() {
        socket.resume();
      },
      cancel() {
        close();
      },
    },
    { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
  );
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        if (closed || socket.destroyed) {
          reject(_ioError("write to", label));
          return;
        }
        socket.write(chunk, (err) => {
          if (err === undefined || err === null) resolve();
          else {reject(
              closed
                ? _ioError("write to", label)
                : _ioError("write to", label, err),
            );}
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (closed || socket.destroyed) resolve();
        else socket.end(() => resolve());
      });
    },
    abort() {
      close();
    },
  });
  return { readable, writable, remoteAddress: label, close };
}

function _dial(
  options: net.NetConnectOpts,
  label: string,
  signal: AbortSignal | undefined,
): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const socket = net.connect(options);
    const cleanup = (): void => {
      signal?.removeEventListener("abort", onAbort);
      socket.off("connect", onConnect);
      socket.off("error", onError);
    };
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(signal?.reason);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(_wrapSocket(socket, label));
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", onConnect);
    socket.once("error", onError);
  });
}

/** The Node socket backend. */
export const _nodeBackend: _SocketBackend = {
  get platform(): string {
    return process.platform === "win32" ? "windows" : process.platform;
  },
  dialTcp(hostname, port, family, label, signal) {
    return _dial(
      { host: hostname, port, family, noDelay: true },
      label,
      signal,
    );
  },
  dialUnix(path, label, signal) {
    const major = Number(process.versions.node.split(".")[0]);
    if (path.startsWith("\0") && major < 22) {
      // Node 20 pads abstract names to the full 108-byte sun_path, which names
      // a different socket from Go's exact-length one.
      return Promise.reject(
        new Error(
          `abstract sockets need Node 22 or newer (Node ${process.versions.node} pads the name)`,
        ),
      );
    }
    return _dial({ path }, label, signal);
  },
  async readTextFile(path, maxBytes) {
    const file = await open(path, "r");
    try {
      const buf = new Uint8Array(maxBytes + 1);
      let n = 0;
      while (n < buf.length) {
        const { bytesRead } = await file.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      if (n > maxBytes) return null;
      return new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      await file.close();
    }
  },
};
