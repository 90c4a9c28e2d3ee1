import { useEffect, useMemo, useState } from "react";
import { get, type Location, type Platform, type Target } from "../api";
import { Link } from "../router";
import { Card, ErrorBox, input } from "../components/ui";

export default function Targets() {
  const [platforms, setPlatforms] = useState<Platform[]>([]);
  const [locations, setLocations] = useState<Location[]>([]);
  const [items, setItems] = useState<Target[]>([]);
  const [all, setAll] = useState<Target[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [f, setF] = useState({ q: "", platform: "", location: "", dist: "", arch: "", latest: false });
  useEffect(() => {
    get<{ items: Platform[] }>("/platforms").then((p) => setPlatforms(p.items)).catch(setError);
    get<{ items: Location[] }>("/locations").then((l) => setLocations(l.items)).catch(setError);
    get<{ items: Target[] }>("/targets").then((t) => setAll(t.items)).catch(setError);
  }, []);
  useEffect(() => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, String(v));
    const t = window.setTimeout(() => {
      get<{ items: Target[] }>(`/targets?${q}`)
        .then((r) => {
          setItems(r.items);
          setError(null);
        })
        .catch(setError);
    }, 150);
    return () => window.clearTimeout(t);
  }, [f]);
  const dists = useMemo(() => [...new Set(all.map((t) => t.dist))].sort(), [all]);
  const arches = useMemo(() => [...new Set(all.map((t) => t.arch))].sort(), [all]);
  const set = (k: keyof typeof f) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setF({ ...f, [k]: e.target.type === "checkbox" ? (e.target as HTMLInputElement).checked : e.target.value });
  const where = (t: Target) => {
    const p = f.platform || t.platforms[0] || "qemu";
    const l = f.location || locations.find((x) => x.platforms.length === 0 || x.platforms.includes(p))?.name || locations[0]?.name || "default";
    return `/targets/${p}/${l}/${t.name}`;
  };
  return (
    <Card title={`Targets (${items.length})`} testid="targets">
      <div className="mb-4 grid grid-cols-2 gap-2 md:grid-cols-6">
        <input data-testid="search" className={`${input} md:col-span-2`} placeholder="Search (e.g. debian-12)" value={f.q} onChange={set("q")} />
        <select data-testid="filter-platform" className={input} value={f.platform} onChange={set("platform")}>
          <option value="">any platform</option>
          {platforms.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name} ({p.builder_type}{p.native ? ", native" : ""})
            </option>
          ))}
        </select>
        <select data-testid="filter-location" className={input} value={f.location} onChange={set("location")}>
          <option value="">any location</option>
          {locations.map((l) => (
            <option key={l.name} value={l.name}>{l.name}</option>
          ))}
        </select>
        <select data-testid="filter-dist" className={input} value={f.dist} onChange={set("dist")}>
          <option value="">any distribution</option>
          {dists.map((d) => (
            <option key={d} value={d}>{d}</option>
          ))}
        </select>
        <div className="flex items-center gap-2">
          <select data-testid="filter-arch" className={input} value={f.arch} onChange={set("arch")}>
            <option value="">any arch</option>
            {arches.map((a) => (
              <option key={a} value={a}>{a}</option>
            ))}
          </select>
          <label className="flex items-center gap-1 whitespace-nowrap text-sm">
            <input data-testid="filter-latest" type="checkbox" checked={f.latest} onChange={set("latest")} /> latest
          </label>
        </div>
      </div>
      <ErrorBox error={error} />
      <div className="max-h-[40rem] overflow-auto">
        <table className="w-full text-sm">
          <thead className="sticky top-0 bg-white text-left text-xs uppercase text-slate-500">
            <tr>
              <th className="py-2">Target</th>
              <th>Version</th>
              <th>Arch</th>
              <th>Platforms</th>
              <th>ISO</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {items.map((t) => (
              <tr key={t.name} data-testid="target-row">
                <td className="py-1.5">
                  <Link to={where(t)} className="font-mono text-blue-700 hover:underline">
                    {t.name}
                  </Link>
                  {t.latest_alias && <span className="ml-2 rounded bg-slate-100 px-1.5 text-xs text-slate-600">{t.latest_alias}</span>}
                </td>
                <td>{t.version}</td>
                <td>{t.arch}</td>
                <td className="text-xs text-slate-600">{t.platforms.join(", ")}</td>
                <td className="text-xs">{t.local ? <span className="text-emerald-700">local</span> : <span className="text-slate-400">download</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Card>
  );
}
