import { useEffect, useRef, useState } from "react";
import { bytes, del, duration, get, post, since, when, type Artifact, type Job, type Screenshot } from "../api";
import { Link, navigate } from "../router";
import { followBuild, type Msg } from "../stream";
import { Bar, Card, ErrorBox, StateBadge, danger, primary, secondary } from "../components/ui";
import { progressOf, type ProgressState } from "../components/progress";
import LogView, { type LogLine } from "../components/LogView";

type Step = { name: string; outcome: "running" | "ok" | "failed" | "cancelled" | "skipped"; duration_ms?: number };
type Finished = { result: string; duration_ms: number; error?: { kind: string; message: string; step?: string }; left_in_place?: string[] };

interface View {
  job: Job | null;
  steps: Step[];
  progress: ProgressState;
  logs: LogLine[];
  warnings: string[];
  finished: Finished | null;
  shotEvents: number;
  artifactEvents: number;
}

const empty: View = { job: null, steps: [], progress: null, logs: [], warnings: [], finished: null, shotEvents: 0, artifactEvents: 0 };

function apply(v: View, m: Msg): View {
  switch (m.type) {
    case "stream.hello":
      return { ...v, job: m.job };
    case "stream.job":
      return { ...v, job: m.job };
    case "step_started":
      return { ...v, progress: null, steps: [...v.steps, { name: m.step, outcome: "running" }] };
    case "step_finished": {
      const steps = [...v.steps];
      const i = steps.map((s) => s.name).lastIndexOf(m.step);
      if (i >= 0) steps[i] = { ...steps[i], outcome: m.outcome, duration_ms: m.duration_ms };
      return { ...v, steps, progress: null };
    }
    case "progress":
      return { ...v, progress: progressOf(m.progress) };
    case "log":
      return { ...v, logs: [...v.logs, { seq: m.seq, time: m.time, source: m.source, line: m.line, detail: !!m.detail }] };
    case "warning":
      return { ...v, warnings: [...v.warnings, m.message] };
    case "screenshot":
      return { ...v, shotEvents: v.shotEvents + 1 };
    case "artifact":
      return { ...v, artifactEvents: v.artifactEvents + 1 };
    case "build_finished":
      return { ...v, finished: m as unknown as Finished, progress: null };
    default:
      return v;
  }
}

export default function BuildPage({ id }: { id: number }) {
  const [view, setView] = useState<View>(empty);
  const [status, setStatus] = useState<"live" | "reconnecting" | "ended">("live");
  const [shots, setShots] = useState<Screenshot[]>([]);
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [shown, setShown] = useState<number | null>(null);
  const queue = useRef<Msg[]>([]);
  useEffect(() => {
    setView(empty);
    setShots([]);
    setArtifacts([]);
    setShown(null);
    // Records arrive fast during a build: apply them in batches, a few times a second.
    let timer: number | undefined;
    const flush = () => {
      timer = undefined;
      const batch = queue.current;
      queue.current = [];
      setView((v) => batch.reduce(apply, v));
    };
    const s = followBuild(
      id,
      (m) => {
        queue.current.push(m);
        if (timer === undefined) timer = window.setTimeout(flush, 100);
      },
      setStatus,
    );
    return () => {
      s.close();
      window.clearTimeout(timer);
    };
  }, [id]);
  useEffect(() => {
    if (view.shotEvents > 0) get<{ items: Screenshot[] }>(`/builds/${id}/screenshots`).then((r) => setShots(r.items)).catch(() => {});
  }, [id, view.shotEvents]);
  useEffect(() => {
    if (view.artifactEvents > 0 || view.finished) get<{ items: Artifact[] }>(`/builds/${id}/artifacts`).then((r) => setArtifacts(r.items)).catch(() => {});
  }, [id, view.artifactEvents, view.finished]);
  const job = view.job;
  const live = job?.state === "queued" || job?.state === "running";
  const act = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    }
  };
  const cancel = () => act(() => post(`/builds/${id}/cancel`));
  const retry = () => act(async () => navigate(`/builds/${(await post<Job>(`/builds/${id}/retry`)).id}`));
  const remove = () => act(async () => {
    await del(`/builds/${id}`);
    navigate("/builds");
  });
  const failure = shots.find((s) => s.name === "failure");
  const current = shown != null ? shots.find((s) => s.index === shown) : shots[shots.length - 1];
  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h1 className="text-xl font-semibold">
            Build #{id} <span className="font-mono text-base text-slate-600">{job?.request.target}</span>{" "}
            {job && <StateBadge state={job.state} testid="build-state" />}
          </h1>
          <div className="mt-1 text-xs text-slate-500">
            queued {when(job?.created_at ?? null)}
            {job?.started_at && <> · ran {since(job.started_at, job.finished_at)}</>}
            {job?.worker && (
              <>
                {" "}
                · {job.state === "running" ? "running on" : "ran on"}{" "}
                <Link to="/workers" data-testid="build-worker" className="font-mono text-blue-700 hover:underline">
                  {job.worker}
                </Link>
              </>
            )}
            {job?.retry_of && <> · retry of #{job.retry_of}</>}
            {status === "reconnecting" && <span className="ml-2 text-amber-700">reconnecting…</span>}
          </div>
        </div>
        <div className="flex gap-2">
          {live && (
            <button data-testid="cancel" className={danger} onClick={cancel} disabled={job?.cancel_requested}>
              {job?.cancel_requested ? "Cancelling…" : "Cancel"}
            </button>
          )}
          {job && !live && (
            <>
              <button data-testid="retry" className={primary} onClick={retry}>
                Retry
              </button>
              <button data-testid="delete" className={secondary} onClick={remove}>
                Delete
              </button>
            </>
          )}
        </div>
      </div>
      {job && (
        <pre data-testid="command" className="overflow-x-auto rounded bg-slate-900 p-2 font-mono text-xs text-slate-100">
          $ {job.command}
        </pre>
      )}
      <ErrorBox error={error} />
      {view.finished?.error && (
        <div data-testid="build-error" className="rounded border border-red-200 bg-red-50 p-3 text-sm text-red-800">
          <span className="font-semibold">{view.finished.error.kind}</span>
          {view.finished.error.step && <> in step {view.finished.error.step}</>}: {view.finished.error.message}
          {(view.finished.left_in_place ?? []).length > 0 && (
            <ul className="mt-1 list-disc pl-5">
              {view.finished.left_in_place!.map((l, i) => (
                <li key={i}>{l}</li>
              ))}
            </ul>
          )}
        </div>
      )}
      {view.warnings.filter((w) => !w.startsWith("removing empty value")).map((w, i) => (
        <div key={i} className="rounded border border-amber-200 bg-amber-50 px-3 py-1.5 text-sm text-amber-800">
          warning: {w}
        </div>
      ))}
      <div className="grid gap-4 lg:grid-cols-3">
        <Card title="Steps" testid="steps">
          {view.steps.length === 0 && <p className="text-sm text-slate-500">{job?.state === "queued" ? "Waiting for a free slot…" : "…"}</p>}
          <ol className="space-y-1 text-sm">
            {view.steps.map((s, i) => (
              <li key={i} data-testid={`step-${s.name}`} data-outcome={s.outcome} className="flex items-center justify-between">
                <span className="flex items-center gap-2">
                  <span
                    className={`inline-block h-2.5 w-2.5 rounded-full ${
                      s.outcome === "running" ? "animate-pulse bg-blue-500" : s.outcome === "ok" ? "bg-emerald-500" : s.outcome === "skipped" ? "bg-slate-300" : s.outcome === "cancelled" ? "bg-amber-500" : "bg-red-500"
                    }`}
                  />
                  <span className="font-mono">{s.name}</span>
                </span>
                <span className="text-xs text-slate-500">{s.duration_ms != null ? duration(s.duration_ms) : s.outcome}</span>
              </li>
            ))}
          </ol>
          {view.progress && (
            <div className="mt-3">
              <Bar testid="progress" value={view.progress.value} label={view.progress.label} />
            </div>
          )}
        </Card>
        <Card title="Console" testid="console">
          {current ? (
            <figure>
              <img
                data-testid="screenshot"
                alt={`console: ${current.name}`}
                src={`/api/v1/builds/${id}/screenshots/${current.index}`}
                className={`w-full rounded border ${current.name === "failure" ? "border-red-400" : "border-slate-200"}`}
              />
              <figcaption className="mt-1 text-xs text-slate-500">
                {current.name} · {when(current.time)}
              </figcaption>
            </figure>
          ) : (
            <p className="text-sm text-slate-500">No console screenshot yet.</p>
          )}
          {shots.length > 1 && (
            <div className="mt-2 flex flex-wrap gap-1" data-testid="screenshot-timeline">
              {shots.map((s) => (
                <button
                  key={s.index}
                  onClick={() => setShown(s.index === shots[shots.length - 1].index ? null : s.index)}
                  className={`rounded px-2 py-0.5 text-xs ${current?.index === s.index ? "bg-blue-600 text-white" : s.name === "failure" ? "bg-red-100 text-red-800" : "bg-slate-100"}`}
                >
                  {s.name}
                </button>
              ))}
            </div>
          )}
          {failure && current?.index !== failure.index && (
            <button className="mt-2 text-xs text-red-700 underline" onClick={() => setShown(failure.index)}>
              show the failure screenshot
            </button>
          )}
        </Card>
        <Card title="Artifacts" testid="artifacts" actions={artifacts.length > 0 && <a className="text-sm text-blue-700 hover:underline" href={`/api/v1/builds/${id}/checksums`}>SHA256SUMS</a>}>
          {artifacts.length === 0 && <p className="text-sm text-slate-500">{view.finished ? "No artifacts." : "They appear when the image is exported."}</p>}
          <ul className="space-y-2 text-sm">
            {artifacts.map((a) => (
              <li key={a.name} data-testid="artifact">
                <a data-testid={`download-${a.name}`} href={a.url} download className="font-mono text-blue-700 hover:underline">
                  {a.name}
                </a>{" "}
                <span className="text-xs text-slate-500">{bytes(a.size)}</span>
                <div data-testid={`sha256-${a.name}`} className="break-all font-mono text-[10px] text-slate-500">
                  {a.sha256}
                </div>
              </li>
            ))}
          </ul>
          {job?.output_dir && <div className="mt-2 break-all text-xs text-slate-500">in {job.output_dir}</div>}
        </Card>
      </div>
      <LogView lines={view.logs} />
    </div>
  );
}
