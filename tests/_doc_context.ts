// What the ```ts ignore examples of the doc comments may use without defining
// or importing it: tests/doc_examples_test.ts imports the names an example
// leaves undefined from here (after the exports of the module the example
// is in, which `deno test --doc` would import too). Conventional names only:
// an example that needs anything else defines it.
import {
  type EncryptedMessage,
  type Keypair,
  type MessageBoxIndex,
  type ReadCap,
  ThinClient,
  type VoucherMintResult,
  type WriteCap,
} from "../mod.ts";
import type { Channel, PigeonholeClient } from "../persistent/mod.ts";
import type { Dialer, FakeDaemon } from "../testing/mod.ts";

/** The package's entry points: the client class and the transport's connect. */
export { ThinClient };
export { connect } from "../transport/mod.ts";

/** A connected client. */
export declare const client: ThinClient;
/** Opens the connection to the daemon (see the transport module). */
export declare const dialer: Dialer;
/** A session's instance token, saved by a previous run. */
export declare const savedToken: Uint8Array;

/** A stream's read capability. */
export declare const readCap: ReadCap;
/** A stream's write capability. */
export declare const writeCap: WriteCap;
/** A box index of that stream. */
export declare const index: MessageBoxIndex;
/** A message: at most one box's plaintext. */
export declare const bytes: Uint8Array;
/** Bytes of any size (a copy-stream payload, a box read back, …). */
export declare const payload: Uint8Array;
/** What `client.encryptRead` or `client.encryptWrite` returned. */
export declare const env: EncryptedMessage;
/** The keypair of a temporary stream for a copy command. */
export declare const temp: Keypair;
/** A voucher token, as handed over out of band. */
export declare const voucher: Uint8Array;
/** What `client.voucherMint` returned. */
export declare const minted: VoucherMintResult;

/** Persistent channels of one store. */
export declare const pigeonhole: PigeonholeClient;
/** One of them. */
export declare const channel: Channel;
/** The key the store seals capabilities and messages with. */
export declare const sealKey: Uint8Array;
/** A channel's read capability as share text. */
export declare const shareText: string;

/** A started fake daemon. */
export declare const daemon: FakeDaemon;
