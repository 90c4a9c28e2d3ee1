import { bytes, duration } from "../api";

export type ProgressState = { value: number | null; label: string } | null;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function progressOf(p: any): ProgressState {
  switch (p?.kind) {
    case "bytes":
      return { value: p.total ? p.done / p.total : null, label: `${p.label}: ${bytes(p.done)}${p.total ? ` of ${bytes(p.total)}` : ""}` };
    case "keys":
      return { value: p.total ? p.typed / p.total : null, label: `typing the boot command: ${p.typed} of ${p.total} keys` };
    case "wait":
      return {
        value: p.timeout_ms ? p.elapsed_ms / p.timeout_ms : null,
        label: `${p.label}: ${duration(p.elapsed_ms)}${p.timeout_ms ? ` (gives up after ${duration(p.timeout_ms)})` : ""}`,
      };
    default:
      return null;
  }
}
