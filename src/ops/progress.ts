/**
 * Progress bars for long work (trace, migrate, simulate, predict-eval), drawn with npm
 * cli-progress on stderr — only when stderr is a terminal, so logs, pipes and `--format json`
 * output never see a bar.
 *
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const bar = createProgress({ label: "rounds", total: 10 });
 * for (let i = 1; i <= 10; i++) bar.update(i, `round ${i}`);
 * bar.stop();
 * ```
 *
 * @module
 */
import cliProgress from "cli-progress";
import process from "node:process";

/** A progress display. */
export interface Progress {
  /** Whether a bar is drawn (stderr is a terminal). */
  readonly visible: boolean;
  /** Set the current value and, optionally, the detail text after the bar. */
  update(value: number, detail?: string): void;
  /** Change the total (e.g. when more rounds are planned). */
  setTotal(total: number): void;
  /**
   * Run `print` (which writes whole lines to stdout or stderr) with the bar lifted: the bar line
   * is cleared first and redrawn below the printed lines.
   */
  interrupt(print: () => void): void;
  /** Stop drawing; the last state stays on the terminal. */
  stop(): void;
}

/** Options of {@linkcode createProgress}. */
export interface ProgressOptions {
  /** What is counted, shown before the bar. */
  label: string;
  /** The value at completion. */
  total: number;
  /** Unit after `value/total`. @default "" */
  unit?: string;
  /** Draw the bar. @default Deno.stderr.isTerminal() */
  enabled?: boolean;
}

/** Create a progress bar on stderr; a silent one when stderr is not a terminal. */
export function createProgress(options: ProgressOptions): Progress {
  const { label, total, unit = "", enabled = Deno.stderr.isTerminal() } = options;
  if (!enabled) {
    return { visible: false, update() {}, setTotal() {}, interrupt: (print) => print(), stop() {} };
  }
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% | {value}/{total}${unit ? ` ${unit}` : ""} | {detail}`,
    stream: process.stderr,
    hideCursor: true,
    barsize: 30,
    fps: 10,
    etaBuffer: 20,
    gracefulExit: false,
  }, cliProgress.Presets.shades_classic);
  // The bar redraws at a saved cursor position; after lines are printed it must be saved anew.
  const terminal = (bar as unknown as { terminal: { cursorSave(): void } }).terminal;
  bar.start(total, 0, { detail: "" });
  let stopped = false;
  return {
    visible: true,
    update(value, detail) {
      if (!stopped) bar.update(value, detail === undefined ? undefined : { detail });
    },
    setTotal(next) {
      if (!stopped) bar.setTotal(next);
    },
    interrupt(print) {
      if (stopped) return print();
      Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
      print();
      terminal.cursorSave();
      bar.render();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
