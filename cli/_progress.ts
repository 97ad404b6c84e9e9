/**
 * Progress reporting of pigeonhole-cp on stderr: a redrawn bar (bytes,
 * boxes, rate, ETA) on a terminal, a few plain lines otherwise, or JSON
 * lines with `--json`.
 *
 * @module
 */

/** How progress is shown. */
export type ProgressMode = "tty" | "lines" | "json" | "off";

/** One progress sample. */
export interface ProgressUpdate {
  /** What is happening: `upload`, `copy`, `send`, `receive`, … */
  phase: string;
  /** File bytes done. */
  bytes: number;
  /** File bytes in all (0 when unknown). */
  totalBytes: number;
  /** Boxes done. */
  boxes: number;
  /** Boxes in all (`null` when unknown). */
  totalBoxes: number | null;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `1536` → `"1.5 KiB"`. */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** Seconds → `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const BAR = 24;
const TTY_INTERVAL_MS = 100;
const JSON_INTERVAL_MS = 500;
const RATE_WINDOW_MS = 10_000;
/** Plain-line mode prints at every quarter (and at phase changes). */
const LINE_STEPS = 4;
/** Phases without a size get a description instead of a bar. */
const WAITING: Record<string, string> = {
  prepare: "preparing the copy stream",
  wait: "waiting for the first box (the file header)",
};

/** Renders progress updates as the mode says. */
export class Progress {
  readonly #write: (text: string) => void;
  readonly #mode: ProgressMode;
  readonly #now: () => number;
  readonly #samples: Array<{ t: number; bytes: number }> = [];
  #lastDraw = -Infinity;
  #lastPhase = "";
  #lastDecile = -1;
  #drawn = false;
  #last: ProgressUpdate | null = null;

  /**
   * @param write Receives the text (stderr).
   * @param mode How to show progress.
   * @param now Clock in milliseconds.
   */
  constructor(
    write: (text: string) => void,
    mode: ProgressMode,
    now: () => number = Date.now,
  ) {
    this.#write = write;
    this.#mode = mode;
    this.#now = now;
  }

  /** Bytes per second over the last few seconds (0 when unknown). */
  rate(): number {
    const s = this.#samples;
    if (s.length < 2) return 0;
    const a = s[0]!;
    const b = s[s.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : 0;
  }

  /** Takes a sample and redraws when due. */
  update(u: ProgressUpdate): void {
    const t = this.#now();
    const phaseChanged = u.phase !== this.#lastPhase;
    if (phaseChanged) this.#samples.length = 0;
    this.#samples.push({ t, bytes: u.bytes });
    while (
      this.#samples.length > 2 && t - this.#samples[0]!.t > RATE_WINDOW_MS
    ) this.#samples.shift();
    this.#last = u;
    const complete = u.totalBytes > 0 && u.bytes >= u.totalBytes;
    switch (this.#mode) {
      case "off":
        break;
      case "tty":
        if (phaseChanged || complete || t - this.#lastDraw >= TTY_INTERVAL_MS) {
          this.#write(`\r\x1b[2K${this.#line(u)}`);
          this.#drawn = true;
          this.#lastDraw = t;
        }
        break;
      case "lines": {
        const decile = u.totalBytes > 0
          ? Math.floor((u.bytes / u.totalBytes) * LINE_STEPS)
          : 0;
        if (phaseChanged || decile > this.#lastDecile) {
          this.#write(`pigeonhole-cp: ${this.#line(u)}\n`);
          this.#lastDecile = phaseChanged ? decile : Math.max(
            decile,
            this.#lastDecile,
          );
        }
        break;
      }
      case "json":
        if (
          phaseChanged || complete || t - this.#lastDraw >= JSON_INTERVAL_MS
        ) {
          const rate = this.rate();
          const eta = this.#eta(u, rate);
          this.#write(
            JSON.stringify({
              event: "progress",
              phase: u.phase,
              bytes: u.bytes,
              total_bytes: u.totalBytes,
              boxes: u.boxes,
              total_boxes: u.totalBoxes,
              rate_bytes_per_s: Math.round(rate),
              eta_s: eta === null ? null : Math.round(eta),
            }) + "\n",
          );
          this.#lastDraw = t;
        }
        break;
    }
    if (phaseChanged) {
      this.#lastPhase = u.phase;
      if (this.#mode === "lines") {
        this.#lastDecile = u.totalBytes > 0
          ? Math.floor((u.bytes / u.totalBytes) * LINE_STEPS)
          : 0;
      }
    }
  }

  /** Prints a note (clearing the bar first on a terminal). */
  note(text: string): void {
    if (this.#mode === "off") return;
    if (this.#mode === "json") {
      this.#write(JSON.stringify({ event: "note", message: text }) + "\n");
      return;
    }
    if (this.#mode === "tty" && this.#drawn) {
      this.#write(`\r\x1b[2K`);
      this.#drawn = false;
    }
    this.#write(`pigeonhole-cp: ${text}\n`);
    if (this.#mode === "tty" && this.#last !== null) {
      this.#write(this.#line(this.#last));
      this.#drawn = true;
    }
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.#mode === "tty" && this.#drawn) {
      if (this.#last !== null) {
        this.#write(`\r\x1b[2K${this.#line(this.#last)}`);
      }
      this.#write("\n");
      this.#drawn = false;
    }
  }

  #eta(u: ProgressUpdate, rate: number): number | null {
    if (u.totalBytes <= 0 || rate <= 0) return null;
    return Math.max(0, (u.totalBytes - u.bytes) / rate);
  }

  #line(u: ProgressUpdate): string {
    const waiting = WAITING[u.phase];
    if (waiting !== undefined && u.totalBytes === 0) return waiting;
    const rate = this.rate();
    const eta = this.#eta(u, rate);
    const frac = u.totalBytes > 0 ? Math.min(1, u.bytes / u.totalBytes) : 0;
    const boxes = u.totalBoxes === null
      ? `${u.boxes} boxes`
      : `${u.boxes}/${u.totalBoxes} boxes`;
    const parts = [
      u.phase.padEnd(7),
      this.#mode === "tty"
        ? `[${"#".repeat(Math.round(frac * BAR)).padEnd(BAR, ".")}]`
        : "",
      `${String(Math.floor(frac * 100)).padStart(3)}%`,
      `${formatBytes(u.bytes)}/${formatBytes(u.totalBytes)}`,
      boxes,
      `${formatBytes(Math.round(rate))}/s`,
      `ETA ${eta === null ? "--:--" : formatDuration(eta)}`,
    ];
    return parts.filter((p) => p !== "").join("  ");
  }
}
