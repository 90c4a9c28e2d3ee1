import { useEffect, useState } from "react";
import { get, since, when, type Job, type JobState } from "../api";
import { Link } from "../router";
import { followFeed } from "../stream";
import { Card, ErrorBox, StateBadge, input, secondary } from "../components/ui";

const STATES: JobState[] = ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"];
const PAGE = 25;

export default function History() {
  const [states, setStates] = useState<JobState[]>([]);
  const [target, setTarget] = useState("");
  const [sinceDay, setSinceDay] = useState("");
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<{ items: Job[]; total: number }>({ items: [], total: 0 });
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (states.length) q.set("state", states.join(","));
    if (target) q.set("target", target);
    if (sinceDay) q.set("since", new Date(sinceDay).toISOString());
    const t = window.setTimeout(() => get<{ items: Job[]; total: number }>(`/builds?${q}`).then(setPage).catch(setError), 150);
    return () => window.clearTimeout(t);
  }, [states, target, sinceDay, offset]);
  // Rows on screen follow their builds live.
  useEffect(() => {
    const s = followFeed((m) => {
      if (m.type === "stream.job") {
        const j: Job = m.job;
        setPage((p) => ({ ...p, items: p.items.map((x) => (x.id === j.id ? j : x)) }));
      }
    });
    return () => s.close();
  }, []);
  const toggle = (s: JobState) => {
    setOffset(0);
    setStates((x) => (x.includes(s) ? x.filter((y) => y !== s) : [...x, s]));
  };
  return (
    <Card title={`History (${page.total})`} testid="history">
      <div className="mb-4 flex flex-wrap items-center gap-3">
        <input data-testid="history-target" className={`${input} max-w-xs`} placeholder="Target contains…" value={target} onChange={(e) => { setOffset(0); setTarget(e.target.value); }} />
        <label className="flex items-center gap-1 text-sm">
          since <input type="date" className={`${input} w-40`} value={sinceDay} onChange={(e) => { setOffset(0); setSinceDay(e.target.value); }} />
        </label>
        <div className="flex flex-wrap gap-1">
          {STATES.map((s) => (
            <button key={s} data-testid={`state-${s}`} onClick={() => toggle(s)} className={`rounded px-2 py-1 text-xs ${states.includes(s) ? "bg-blue-600 text-white" : "bg-slate-100 text-slate-700"}`}>
              {s}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={error} />
      <table className="w-full text-sm">
        <thead className="text-left text-xs uppercase text-slate-500">
          <tr>
            <th className="py-2">#</th>
            <th>Target</th>
            <th>Name</th>
            <th>State</th>
            <th>Step</th>
            <th>Queued</th>
            <th>Took</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {page.items.map((j) => (
            <tr key={j.id} data-testid="history-row">
              <td className="py-1.5">
                <Link to={`/builds/${j.id}`} className="text-blue-700 hover:underline">
                  {j.id}
                </Link>
              </td>
              <td className="font-mono text-xs">{j.request.target}</td>
              <td>{j.request.name ?? ""}</td>
              <td>
                <StateBadge state={j.state} />
              </td>
              <td className="font-mono text-xs">{j.step ?? ""}</td>
              <td className="text-xs text-slate-600">{when(j.created_at)}</td>
              <td className="text-xs text-slate-600">{j.started_at ? since(j.started_at, j.finished_at) : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="mt-3 flex items-center justify-between text-sm">
        <span className="text-slate-500">
          {page.total === 0 ? "No builds match." : `${offset + 1}–${Math.min(offset + PAGE, page.total)} of ${page.total}`}
        </span>
        <div className="flex gap-2">
          <button className={secondary} disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            Newer
          </button>
          <button className={secondary} disabled={offset + PAGE >= page.total} onClick={() => setOffset(offset + PAGE)}>
            Older
          </button>
        </div>
      </div>
    </Card>
  );
}
