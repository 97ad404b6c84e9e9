// Chooses the socket implementation when a dial happens: Deno's own API when
// `globalThis.Deno` exists, otherwise node:net, loaded with a dynamic import so
// that a browser importing the transport module never loads node:* modules.
import type { _SocketBackend } from "./_backend.ts";
import { _denoBackend } from "./_deno.ts";

let nodeBackend: Promise<_SocketBackend> | undefined;

/**
 * The socket backend of the running runtime, or `undefined` in a runtime that
 * has neither Deno's nor Node's socket API (a browser).
 */
export function _socketBackend(): Promise<_SocketBackend | undefined> {
  if (typeof (globalThis as { Deno?: unknown }).Deno === "object") {
    return Promise.resolve(_denoBackend);
  }
  const process = (globalThis as { process?: { versions?: { node?: string } } })
    .process;
  if (typeof process?.versions?.node === "string") {
    nodeBackend ??= import("./_node.ts").then((m) => m._nodeBackend);
    return nodeBackend;
  }
  return Promise.resolve(undefined);
}
