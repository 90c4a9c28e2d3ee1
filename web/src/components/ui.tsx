import type { ReactNode } from "react";
import type { JobState } from "../api";

const stateColor: Record<string, string> = {
  queued: "bg-slate-200 text-slate-700",
  running: "bg-blue-100 text-blue-800",
  succeeded: "bg-emerald-100 text-emerald-800",
  failed: "bg-red-100 text-red-800",
  cancelled: "bg-amber-100 text-amber-800",
  interrupted: "bg-purple-100 text-purple-800",
};

export function StateBadge({ state, testid }: { state: JobState | string; testid?: string }) {
  return (
    <span data-testid={testid} className={`inline-block rounded px-2 py-0.5 text-xs font-semibold ${stateColor[state] ?? ""}`}>
      {state}
    </span>
  );
}

export function Card({ title, children, actions, testid }: { title?: ReactNode; children: ReactNode; actions?: ReactNode; testid?: string }) {
  return (
    <section data-testid={testid} className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      {(title || actions) && (
        <div className="mb-3 flex items-center justify-between gap-2">
          <h2 className="text-sm font-semibold uppercase tracking-wide text-slate-500">{title}</h2>
          <div className="flex gap-2">{actions}</div>
        </div>
      )}
      {children}
    </section>
  );
}

export function Bar({ value, label, testid }: { value: number | null; label: string; testid?: string }) {
  const pct = value == null ? null : Math.max(0, Math.min(100, value * 100));
  return (
    <div data-testid={testid} className="text-xs">
      <div className="mb-1 flex justify-between text-slate-600">
        <span>{label}</span>
        <span>{pct == null ? "…" : `${pct.toFixed(0)} %`}</span>
      </div>
      <div className="h-2 overflow-hidden rounded bg-slate-200">
        <div
          className={`h-2 rounded bg-blue-500 ${pct == null ? "w-1/3 animate-pulse" : ""}`}
          style={pct == null ? undefined : { width: `${pct}%` }}
        />
      </div>
    </div>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as { message?: string; suggestions?: string[]; field?: string };
  return (
    <div data-testid="error" className="rounded border border-red-200 bg-red-50 p-3 text-sm text-red-800">
      {e.field && <span className="mr-1 font-semibold">{e.field}:</span>}
      {e.message ?? String(error)}
      {e.suggestions && e.suggestions.length > 0 && (
        <div className="mt-1 text-red-700">Did you mean: {e.suggestions.join(", ")}?</div>
      )}
    </div>
  );
}

export function Json({ value, testid }: { value: unknown; testid?: string }) {
  return (
    <pre data-testid={testid} className="max-h-[32rem] overflow-auto rounded bg-slate-900 p-3 text-xs leading-relaxed text-slate-100">
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

export const button =
  "rounded px-3 py-1.5 text-sm font-medium disabled:cursor-not-allowed disabled:opacity-50";
export const primary = `${button} bg-blue-600 text-white hover:bg-blue-700`;
export const secondary = `${button} border border-slate-300 bg-white text-slate-700 hover:bg-slate-50`;
export const danger = `${button} bg-red-600 text-white hover:bg-red-700`;
export const input =
  "w-full rounded border border-slate-300 bg-white px-2 py-1.5 text-sm focus:border-blue-500 focus:outline-none";
