/**
 * `--timings`: what each daemon call of a run cost, per request kind, from
 * the client's `onCall` records: how many, how many failed, the median and
 * the slowest, and how often they were re-sent after a reconnect. Printed on
 * standard error at the end, as a table or (with `--json`) one JSON line.
 *
 * @module
 */
import type { CallRecord } from "../lib/_options.ts";

/** One request kind's line of the summary. */
export interface TimingRow {
  /** The request kind. */
  kind: string;
  /** Calls settled. */
  calls: number;
  /** Calls that did not end with a success reply. */
  failed: number;
  /** Median duration, milliseconds. */
  medianMs: number;
  /** Longest duration, milliseconds. */
  maxMs: number;
  /** Re-sends after reconnecting, summed. */
  resent: number;
}

/** Collects call records; `record` is the client's `onCall`. */
export class CallTimings {
  readonly #byKind = new Map<string, CallRecord[]>();

  /** Takes one record (bound: pass it as `onCall`). */
  readonly record = (r: CallRecord): void => {
    const list = this.#byKind.get(r.kind);
    if (list === undefined) this.#byKind.set(r.kind, [r]);
    else list.push(r);
  };

  /** One row per kind, the most time-consuming first. */
  rows(): TimingRow[] {
    const rows: (TimingRow & { total: number })[] = [];
    for (const [kind, list] of this.#byKind) {
      const ms = list.map((r) => r.durationMs).sort((a, b) => a - b);
      rows.push({
        kind,
        calls: list.length,
        failed: list.filter((r) => r.outcome !== "ok").length,
        medianMs: round(median(ms)),
        maxMs: round(ms[ms.length - 1]!),
        resent: list.reduce((n, r) => n + r.resent, 0),
        total: ms.reduce((a, b) => a + b, 0),
      });
    }
    rows.sort((a, b) => b.total - a.total);
    return rows.map(({ total: _total, ...row }) => row);
  }

  /** The summary as a table, or a line saying there were no calls. */
  table(): string {
    const rows = this.rows();
    if (rows.length === 0) return "pigeonhole-cp: timings: no daemon calls\n";
    const head = ["kind", "calls", "failed", "median", "max", "re-sent"];
    const body = rows.map((r) => [
      r.kind,
      String(r.calls),
      String(r.failed),
      duration(r.medianMs),
      duration(r.maxMs),
      String(r.resent),
    ]);
    const widths = head.map((h, i) =>
      Math.max(h.length, ...body.map((cells) => cells[i]!.length))
    );
    const line = (cells: string[]) =>
      "  " +
      cells.map((c, i) =>
        i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!)
      )
        .join("  ") +
      "\n";
    return "pigeonhole-cp: time per daemon call\n" + line(head) +
      body.map(line).join("");
  }

  /** The summary as one JSON line (`{"event":"timings","calls":[…]}`). */
  json(): string {
    const calls = this.rows().map((r) => ({
      kind: r.kind,
      calls: r.calls,
      failed: r.failed,
      median_ms: r.medianMs,
      max_ms: r.maxMs,
      resent: r.resent,
    }));
    return JSON.stringify({ event: "timings", calls }) + "\n";
  }
}

function median(sorted: number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
