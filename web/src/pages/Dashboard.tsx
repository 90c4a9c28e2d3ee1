import { useEffect, useState } from "react";
import { bytes, duration, get, type Host, type Job } from "../api";
import { Link } from "../router";
import { followFeed } from "../stream";
import { Bar, Card, StateBadge } from "../components/ui";
import { progressOf, type ProgressState } from "../components/progress";

type Page = { items: Job[]; total: number };

export default function Dashboard() {
  const [host, setHost] = useState<Host | null>(null);
  const [active, setActive] = useState<Job[]>([]);
  const [recent, setRecent] = useState<Job[]>([]);
  const [progress, setProgress] = useState<Record<number, ProgressState>>({});
  useEffect(() => {
    get<Host>("/host").then(setHost).catch(() => {});
    get<Page>("/builds?state=running,queued&limit=100").then((p) => setActive(p.items)).catch(() => {});
    get<Page>("/builds?state=succeeded,failed,cancelled,interrupted&limit=10").then((p) => setRecent(p.items)).catch(() => {});
    const s = followFeed((m) => {
      if (m.type === "stream.job") {
        const j: Job = m.job;
        const live = j.state === "queued" || j.state === "running";
        setActive((a) => {
          const rest = a.filter((x) => x.id !== j.id);
          return live ? [j, ...rest].sort((x, y) => y.id - x.id) : rest;
        });
        if (!live) setRecent((r) => [j, ...r.filter((x) => x.id !== j.id)].slice(0, 10));
      } else if (m.type === "step_started") {
        const id = Number(m.build);
        setActive((a) => a.map((x) => (x.id === id ? { ...x, step: m.step } : x)));
        setProgress((p) => ({ ...p, [id]: null }));
      } else if (m.type === "progress") {
        setProgress((p) => ({ ...p, [Number(m.build)]: progressOf(m.progress) }));
      }
    });
    return () => s.close();
  }, []);
  const running = active.filter((j) => j.state === "running");
  const queued = active.filter((j) => j.state === "queued");
  return (
    <div className="grid gap-6 lg:grid-cols-3">
      <div className="space-y-6 lg:col-span-2">
        <Card title={`Running (${running.length})`} testid="running">
          {running.length === 0 && <p className="text-sm text-slate-500">Nothing is building.</p>}
          <ul className="divide-y divide-slate-100">
            {running.map((j) => (
              <li key={j.id} className="py-2">
                <div className="flex items-center justify-between gap-2">
                  <Link to={`/builds/${j.id}`} className="font-medium text-blue-700 hover:underline">
                    #{j.id} {j.request.target} {j.request.name && <span className="text-slate-500">({j.request.name})</span>}
                  </Link>
                  <span className="text-xs text-slate-500">
                    step <span className="font-mono">{j.step ?? "…"}</span>
                  </span>
                </div>
                {progress[j.id] && (
                  <div className="mt-1">
                    <Bar value={progress[j.id]!.value} label={progress[j.id]!.label} />
                  </div>
                )}
              </li>
            ))}
          </ul>
        </Card>
        <Card title={`Queued (${queued.length})`} testid="queued">
          {queued.length === 0 && <p className="text-sm text-slate-500">The queue is empty.</p>}
          <ul className="divide-y divide-slate-100 text-sm">
            {queued.map((j) => (
              <li key={j.id} className="flex justify-between py-2">
                <Link to={`/builds/${j.id}`} className="text-blue-700 hover:underline">
                  #{j.id} {j.request.target}
                </Link>
                <span className="text-slate-500">priority {j.request.priority}</span>
              </li>
            ))}
          </ul>
        </Card>
        <Card title="Recent builds" testid="recent" actions={<Link to="/builds" className="text-sm text-blue-700 hover:underline">History</Link>}>
          <table className="w-full text-sm">
            <tbody className="divide-y divide-slate-100">
              {recent.map((j) => (
                <tr key={j.id}>
                  <td className="py-1.5">
                    <Link to={`/builds/${j.id}`} className="text-blue-700 hover:underline">
                      #{j.id}
                    </Link>
                  </td>
                  <td className="font-mono text-xs">{j.request.target}</td>
                  <td>
                    <StateBadge state={j.state} />
                  </td>
                  <td className="text-right text-slate-500">
                    {j.started_at && j.finished_at ? duration(Date.parse(j.finished_at) - Date.parse(j.started_at)) : "–"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {recent.length === 0 && <p className="text-sm text-slate-500">No build has ended yet.</p>}
        </Card>
      </div>
      <div className="space-y-6">
        <Card title="Host" testid="host">
          {!host ? (
            <p className="text-sm text-slate-500">…</p>
          ) : (
            <dl className="grid grid-cols-3 gap-y-2 text-sm">
              <dt className="text-slate-500">Accelerator</dt>
              <dd className="col-span-2" data-testid="accelerator">
                <span className={`font-semibold ${host.accelerator.hardware ? "text-emerald-700" : "text-amber-700"}`}>{host.accelerator.name}</span>
                <div className="text-xs text-slate-500">{host.accelerator.detail}</div>
              </dd>
              <dt className="text-slate-500">CPU</dt>
              <dd className="col-span-2">
                {host.cpu.count} × {host.cpu.model ?? "?"} <div className="text-xs text-slate-500">load {host.cpu.load.map((l) => l.toFixed(2)).join(" ")}</div>
              </dd>
              <dt className="text-slate-500">Memory</dt>
              <dd className="col-span-2">
                {host.memory && <Bar value={1 - host.memory.available / host.memory.total} label={`${bytes(host.memory.available)} free of ${bytes(host.memory.total)}`} />}
              </dd>
              <dt className="text-slate-500">Disk</dt>
              <dd className="col-span-2">
                {host.disk && <Bar value={1 - host.disk.available / host.disk.total} label={`${bytes(host.disk.available)} free`} />}
              </dd>
              <dt className="text-slate-500">Queue</dt>
              <dd className="col-span-2">
                {running.length} running, {queued.length} queued, {host.queue.concurrency} at once
              </dd>
              <dt className="text-slate-500">Tools</dt>
              <dd className="col-span-2 space-y-0.5 text-xs">
                {host.tools.map((t) => (
                  <div key={t.name} title={t.path ?? "not found"}>
                    <span className={t.path ? "text-emerald-700" : "text-slate-400"}>{t.path ? "✓" : "✗"}</span> {t.name}{" "}
                    <span className="text-slate-400">{t.version ?? ""}</span>
                  </div>
                ))}
              </dd>
            </dl>
          )}
        </Card>
      </div>
    </div>
  );
}
