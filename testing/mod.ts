/**
 * Test doubles for thin-client code: {@linkcode FakeDaemon}, an in-process
 * fake kpclientd that speaks the real framing and CBOR on TCP, Unix,
 * WebSocket or an in-memory pipe, plus builders for realistic PKI documents
 * and directory authorities and the fake's deterministic key derivation.
 *
 * Uses Deno APIs for the socket transports (the memory transport needs none).
 *
 * @example Usage
 * ```ts
 * import { FakeDaemon } from "@katzenpost/thinclient/testing";
 *
 * await using daemon = await FakeDaemon.start({ transport: "memory" });
 * daemon.script("new_keypair", 3); // every new_keypair now fails with code 3
 * const conn = await daemon.dialer.dial();
 * // …hand `daemon.dialer` to the client under test instead…
 * conn.close();
 * ```
 *
 * @module
 */
export { FakeDaemon } from "./fake_daemon.ts";
export type { RestartOptions } from "./fake_daemon.ts";
export type { FakeDaemonOptions } from "./_state.ts";
export type {
  FakeDaemonFaults,
  FakeEvent,
  ScriptAction,
  ScriptHandler,
  ScriptOptions,
} from "./_scripting.ts";
export type {
  ConnectionTarget,
  FakeRequestKind,
  ReceivedRequest,
  WaitOptions,
} from "./_types.ts";
export type { FakeTransport } from "./_transport.ts";
export {
  buildDirectoryAuthorities,
  buildPkiDocument,
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
} from "./_pki.ts";
export type {
  FakeDirectoryAuthority,
  FakePkiDocument,
  FakeService,
  FakeServiceNodeOptions,
  PkiDocumentOptions,
  WirePigeonholeGeometry,
  WireSphinxGeometry,
} from "./_pki.ts";
export { fakeIndexCounter, fakeKeypair, fakeNextIndex } from "./_pigeonhole.ts";
export { FakeFloat, FakeRawCbor } from "./_wire.ts";
export type { FakeBox, FakeKeypair } from "./_pigeonhole.ts";
export type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
