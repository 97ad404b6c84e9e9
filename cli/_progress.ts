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
/** The rate's history keeps one sample per this many milliseconds at most. */
const SAMPLE_STEP_MS = 100;
const HISTORY = Math.ceil(RATE_WINDOW_MS / SAMPLE_STEP_MS) + 2;
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
  // Ring of past samples (time, bytes), at least SAMPLE_STEP_MS apart, so a
  // transfer of any length keeps a fixed few numbers and allocates nothing
  // per update; the latest sample is kept apart.
  readonly #times = new Float64Array(HISTORY);
  readonly #bytes = new Float64Array(HISTORY);
  #first = 0;
  #count = 0;
  #latestT = 0;
  #latestBytes = 0;
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
    if (this.#count === 0) return 0;
    const dt = (this.#latestT - this.#times[this.#first]!) / 1000;
    return dt > 0 ? (this.#latestBytes - this.#bytes[this.#first]!) / dt : 0;
  }

  #sample(t: number, bytes: number, restart: boolean): void {
    if (restart) this.#count = 0;
    this.#latestT = t;
    this.#latestBytes = bytes;
    const last = (this.#first + this.#count - 1) % HISTORY;
    if (this.#count > 0 && t - this.#times[last]! < SAMPLE_STEP_MS) return;
    if (this.#count === HISTORY) {
      this.#first = (this.#first + 1) % HISTORY;
      this.#count--;
    }
    const at = (this.#first + this.#count) % HISTORY;
    this.#times[at] = t;
    this.#bytes[at] = bytes;
    this.#count++;
    // Forget samples older than the window, keeping one besides this one
    // to measure from.
    while (
      this.#count > 2 && t - this.#times[this.#first]! > RATE_WINDOW_MS
    ) {
      this.#first = (this.#first + 1) % HISTORY;
      this.#count--;
    }
  }

  /** Takes a sample and redraws when due. */
  update(u: ProgressUpdate): void {
    const t = this.#now();
    const phaseChanged = u.phase !== this.#lastPhase;
    this.#sample(t, u.bytes, phaseChanged);
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
