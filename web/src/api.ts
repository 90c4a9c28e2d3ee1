// The REST API of `osimager serve` (/api/v1, documented at /api/v1/openapi.json).

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "interrupted";

export interface ErrorInfo {
  kind: string;
  message: string;
  step?: string;
}

export interface BuildRequest {
  target: string;
  name: string | null;
  ip: string | null;
  defines: string[];
  engine: "auto" | "native" | "packer";
  on_error: "cleanup" | "abort";
  force: boolean;
  dry_run: boolean;
  cache?: "off" | "use" | "refresh";
  priority: number;
}

export interface Job {
  id: number;
  state: JobState;
  request: BuildRequest;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  step: string | null;
  error: ErrorInfo | null;
  output_dir: string | null;
  retry_of: number | null;
  cancel_requested: boolean;
  worker: string | null;
  command: string;
}

export interface Target {
  name: string;
  dist: string;
  version: string;
  arch: string;
  spec: string;
  platforms: string[];
  iso?: string;
  local: boolean;
  latest_alias?: string;
}

export interface Platform {
  name: string;
  builder_type: string;
  arches: string[];
  native: boolean;
}

export interface Location {
  name: string;
  format: "json" | "toml";
  path: string;
  platforms: string[];
  arches: string[];
}

export interface Validation {
  ok: boolean;
  problems: { key?: string; message: string }[];
  warnings: string[];
  target?: string;
  engine?: string;
}

export interface Artifact {
  name: string;
  size: number;
  sha256: string | null;
  url: string;
}

export interface Screenshot {
  index: number;
  seq: number;
  name: string;
  time: string;
  url: string;
}

export interface Host {
  version: string;
  uptime_secs: number;
  cpu: { count: number; model: string | null; load: number[] };
  memory: { total: number; available: number } | null;
  disk: { path: string; total: number; available: number } | null;
  accelerator: { name: string; hardware: boolean; detail: string };
  hypervisors: string[];
  tools: { name: string; path?: string; version?: string }[];
  queue: { queued: number; running: number; concurrency: number };
  builds: Record<string, number>;
}

export interface Capabilities {
  native: string[];
  packer: string[];
  tools: string[];
  accelerator: string | null;
  arch: string;
  free_disk: number;
  labels: Record<string, string>;
  concurrency: number;
}

/// Who builds (GET /workers): this server's own runner (`local`) or a remote `osimager worker`.
export interface Worker {
  name: string;
  local: boolean;
  state: "building" | "idle" | "silent";
  capabilities: Capabilities | null;
  concurrency: number;
  registered_at: string | null;
  last_seen: string;
  jobs: number[];
}

/// An error answer: what is wrong and what to do.
export class ApiError extends Error {
  status: number;
  kind: string;
  field?: string;
  suggestions: string[];
  constructor(status: number, body: { kind?: string; message?: string; field?: string; suggestions?: string[] }) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.kind = body.kind ?? "error";
    this.field = body.field;
    this.suggestions = body.suggestions ?? [];
  }
}

/// Listeners told when a request needs a token (the app shows the login form).
const unauthorized = new Set<() => void>();
export function onUnauthorized(f: () => void): () => void {
  unauthorized.add(f);
  return () => unauthorized.delete(f);
}

export async function api<T>(path: string, init?: RequestInit & { json?: unknown }): Promise<T> {
  const headers: Record<string, string> = {};
  let body = init?.body;
  if (init?.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  }
  const r = await fetch(`/api/v1${path}`, { ...init, body, headers, credentials: "same-origin" });
  if (r.status === 204) return undefined as T;
  const text = await r.text();
  let data: unknown = text;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    /* text answers (checksums, logs) */
  }
  if (!r.ok) {
    if (r.status === 401) unauthorized.forEach((f) => f());
    throw new ApiError(r.status, (data as object) ?? {});
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>(path);
export const post = <T>(path: string, json?: unknown) => api<T>(path, { method: "POST", json: json ?? {} });
export const put = <T>(path: string, json: unknown) => api<T>(path, { method: "PUT", json });
export const del = (path: string) => api<void>(path, { method: "DELETE" });

export function bytes(n: number | undefined | null): string {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function duration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function since(a: string | null, b?: string | null): string {
  if (!a) return "–";
  const end = b ? Date.parse(b) : Date.now();
  return duration(end - Date.parse(a));
}

export function when(t: string | null): string {
  if (!t) return "–";
  return new Date(t).toLocaleString();
}

/// POSIX shell quoting, as the server's command line does.
export function quote(s: string): string {
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

export function commandLine(r: Partial<BuildRequest>): string {
  const a = ["osimager", "build", quote(r.target || "PLATFORM/LOCATION/SPEC")];
  if (r.name) {
    a.push(quote(r.name));
    if (r.ip) a.push(quote(r.ip));
  }
  for (const d of r.defines ?? []) a.push("-D", quote(d));
  if (r.engine && r.engine !== "auto") a.push(`--engine ${r.engine}`);
  if (r.on_error && r.on_error !== "cleanup") a.push(`--on-error ${r.on_error}`);
  if (r.cache && r.cache !== "off") a.push(`--cache ${r.cache}`);
  if (r.force) a.push("--force");
  if (r.dry_run) a.push("--dry-run");
  return a.join(" ");
}
