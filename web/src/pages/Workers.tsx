// Who builds: this server's own runner and the remote `osimager worker`s, with what each can
// build, its state, the builds it runs now and when it was last heard from (GET /workers,
// polled: workers report through their heartbeats, not through the build feed).
import { useEffect, useState } from "react";
import { bytes, get, since, when, type Worker } from "../api";
import { Link } from "../router";
import { Card, ErrorBox } from "../components/ui";

const POLL_MS = 3000;

const stateColor: Record<Worker["state"], string> = {
  building: "bg-blue-100 text-blue-800",
  idle: "bg-emerald-100 text-emerald-800",
  silent: "bg-red-100 text-red-800",
};

function Chips({ items, testid, empty = "–" }: { items: string[]; testid: string; empty?: string }) {
  if (items.length === 0) return <span data-testid={testid} className="text-slate-400">{empty}</span>;
  return (
    <span data-testid={testid} className="flex flex-wrap gap-1">
      {items.map((i) => (
        <span key={i} className="rounded bg-slate-100 px-1.5 py-0.5 font-mono text-xs text-slate-700">
          {i}
        </span>
      ))}
    </span>
  );
}

function Row({ w }: { w: Worker }) {
  const c = w.capabilities;
  return (
    <tr data-testid={`worker-${w.name}`} className="align-top">
      <td className="py-2 pr-3">
        <div data-testid="worker-name" className="font-mono text-sm font-semibold">
          {w.name}
        </div>
        <div className="text-xs text-slate-500">{w.local ? "this server's own runner" : "remote worker"}</div>
      </td>
      <td className="py-2 pr-3">
        <span data-testid="worker-state" className={`inline-block rounded px-2 py-0.5 text-xs font-semibold ${stateColor[w.state] ?? ""}`}>
          {w.state}
        </span>
      </td>
      <td data-testid="worker-jobs" className="py-2 pr-3 text-sm">
        {w.jobs.length === 0 ? (
          <span className="text-slate-400">none</span>
        ) : (
          w.jobs.map((id) => (
            <Link key={id} to={`/builds/${id}`} data-testid="worker-job" className="mr-2 text-blue-700 hover:underline">
              #{id}
            </Link>
          ))
        )}
        <div className="text-xs text-slate-500">{w.concurrency} at once</div>
      </td>
      <td className="py-2 pr-3 text-xs">
        {c ? (
          <dl className="grid grid-cols-[auto_1fr] gap-x-2 gap-y-1">
            <dt className="text-slate-500">native</dt>
            <dd>
              <Chips items={c.native} testid="worker-native" />
            </dd>
            <dt className="text-slate-500">Packer</dt>
            <dd>
              <Chips items={c.packer} testid="worker-packer" />
            </dd>
            <dt className="text-slate-500">host</dt>
            <dd data-testid="worker-host">
              {c.arch}, {c.accelerator ?? "no hardware accelerator"}, {bytes(c.free_disk)} free
            </dd>
            <dt className="text-slate-500">labels</dt>
            <dd>
              <Chips items={Object.entries(c.labels).map(([k, v]) => `${k}=${v}`)} testid="worker-labels" />
            </dd>
            <dt className="text-slate-500">tools</dt>
            <dd>
              <Chips items={c.tools} testid="worker-tools" />
            </dd>
          </dl>
        ) : (
          <span className="text-slate-500">
            what this host can build: the <Link to="/" className="text-blue-700 hover:underline">dashboard</Link>'s host card
          </span>
        )}
      </td>
      <td data-testid="worker-last-seen" className="py-2 text-xs text-slate-600" title={w.last_seen}>
        {w.local ? "now" : `${since(w.last_seen)} ago`}
        {w.registered_at && <div className="text-slate-400">registered {when(w.registered_at)}</div>}
      </td>
    </tr>
  );
}

export default function Workers() {
  const [workers, setWorkers] = useState<Worker[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let stop = false;
    const load = () =>
      get<{ items: Worker[] }>("/workers")
        .then((p) => {
          if (!stop) {
            setWorkers(p.items);
            setError(null);
          }
        })
        .catch((e) => !stop && setError(e));
    load();
    const t = window.setInterval(load, POLL_MS);
    return () => {
      stop = true;
      window.clearInterval(t);
    };
  }, []);
  return (
    <Card title={`Workers (${workers?.length ?? "…"})`} testid="workers">
      <ErrorBox error={error} />
      {workers && workers.length === 0 && (
        <p data-testid="no-workers" className="text-sm text-slate-500">
          Nothing builds: this server runs no builds itself and no worker is registered. On a build host:{" "}
          <code className="font-mono">osimager worker --server URL</code> with a token from{" "}
          <code className="font-mono">osimager serve token create --worker NAME</code>.
        </p>
      )}
      {workers && workers.length > 0 && (
        <table className="w-full">
          <thead className="text-left text-xs uppercase text-slate-500">
            <tr>
              <th className="py-2">Worker</th>
              <th>State</th>
              <th>Builds now</th>
              <th>Capabilities</th>
              <th>Last heard from</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {workers.map((w) => (
              <Row key={w.name} w={w} />
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}
