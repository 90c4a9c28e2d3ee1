import { useEffect, useMemo, useState } from "react";
import { commandLine, get, post, type BuildRequest, type Job, type Location, type Platform, type Target, type Validation } from "../api";
import { navigate, useLocation } from "../router";
import { Card, ErrorBox, input, primary, secondary } from "../components/ui";

export default function NewBuild() {
  const { query } = useLocation();
  const initial = (query.get("target") ?? "").split("/");
  const [platforms, setPlatforms] = useState<Platform[]>([]);
  const [locations, setLocations] = useState<Location[]>([]);
  const [targets, setTargets] = useState<Target[]>([]);
  const [platform, setPlatform] = useState(initial[0] ?? "");
  const [location, setLocation] = useState(initial[1] ?? "");
  const [spec, setSpec] = useState(initial[2] ?? "");
  const [name, setName] = useState("");
  const [ip, setIp] = useState("");
  const [defines, setDefines] = useState("");
  const [engine, setEngine] = useState<BuildRequest["engine"]>("auto");
  const [onError, setOnError] = useState<BuildRequest["on_error"]>("cleanup");
  const [priority, setPriority] = useState(0);
  const [force, setForce] = useState(false);
  const [dryRun, setDryRun] = useState(false);
  const [cache, setCache] = useState<NonNullable<BuildRequest["cache"]>>("off");
  const [error, setError] = useState<unknown>(null);
  const [v, setV] = useState<Validation | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get<{ items: Platform[] }>("/platforms").then((p) => setPlatforms(p.items)).catch(setError);
    get<{ items: Location[] }>("/locations").then((l) => setLocations(l.items)).catch(setError);
  }, []);
  useEffect(() => {
    const q = new URLSearchParams();
    if (platform) q.set("platform", platform);
    if (location) q.set("location", location);
    get<{ items: Target[] }>(`/targets?${q}`).then((t) => setTargets(t.items)).catch(() => {});
  }, [platform, location]);
  const req: BuildRequest = useMemo(
    () => ({
      target: [platform, location, spec].every(Boolean) ? `${platform}/${location}/${spec}` : "",
      name: name.trim() || null,
      ip: ip.trim() || null,
      defines: defines.split("\n").map((d) => d.trim()).filter(Boolean),
      engine,
      on_error: onError,
      priority,
      force,
      dry_run: dryRun,
      cache,
    }),
    [platform, location, spec, name, ip, defines, engine, onError, priority, force, dryRun, cache],
  );
  const validate = async () => {
    setError(null);
    try {
      setV(await post<Validation>("/validate", { target: req.target, name: req.name, ip: req.ip, defines: req.defines }));
    } catch (e) {
      setError(e);
    }
  };
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const j = await post<Job>("/builds", req);
      navigate(`/builds/${j.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const label = "block text-xs font-semibold uppercase tracking-wide text-slate-500 mb-1";
  return (
    <form onSubmit={submit} className="grid gap-6 lg:grid-cols-3">
      <div className="space-y-4 lg:col-span-2">
        <Card title="What to build">
          <div className="grid gap-3 md:grid-cols-3">
            <label>
              <span className={label}>Platform</span>
              <select data-testid="platform" className={input} value={platform} onChange={(e) => setPlatform(e.target.value)}>
                <option value="">choose…</option>
                {platforms.map((p) => (
                  <option key={p.name} value={p.name}>
                    {p.name}
                  </option>
                ))}
              </select>
            </label>
            <label>
              <span className={label}>Location</span>
              <select data-testid="location" className={input} value={location} onChange={(e) => setLocation(e.target.value)}>
                <option value="">choose…</option>
                {locations.map((l) => (
                  <option key={l.name} value={l.name}>{l.name}</option>
                ))}
              </select>
            </label>
            <label>
              <span className={label}>Spec</span>
              <input data-testid="spec" className={input} list="specs" value={spec} onChange={(e) => setSpec(e.target.value)} placeholder="debian-12.12-x86_64" />
              <datalist id="specs">
                {targets.map((t) => (
                  <option key={t.name} value={t.name} />
                ))}
                {targets.filter((t) => t.latest_alias).map((t) => (
                  <option key={t.latest_alias} value={t.latest_alias} />
                ))}
              </datalist>
            </label>
            <label>
              <span className={label}>Name</span>
              <input data-testid="name" className={input} value={name} onChange={(e) => setName(e.target.value)} placeholder="default: the spec name" />
            </label>
            <label>
              <span className={label}>IP address</span>
              <input data-testid="ip" className={input} value={ip} onChange={(e) => setIp(e.target.value)} placeholder="default: DNS, else DHCP" />
            </label>
            <label>
              <span className={label}>Priority</span>
              <input data-testid="priority" type="number" className={input} value={priority} onChange={(e) => setPriority(Number(e.target.value))} />
            </label>
            <label className="md:col-span-3">
              <span className={label}>Defines (-D key=value, one per line)</span>
              <textarea data-testid="defines" className={`${input} font-mono`} rows={3} value={defines} onChange={(e) => setDefines(e.target.value)} placeholder="memory=4096" />
            </label>
          </div>
        </Card>
        <Card title="How">
          <div className="grid gap-3 md:grid-cols-4">
            <label>
              <span className={label}>Engine</span>
              <select data-testid="engine" className={input} value={engine} onChange={(e) => setEngine(e.target.value as BuildRequest["engine"])}>
                <option value="auto">auto</option>
                <option value="native">native</option>
                <option value="packer">packer</option>
              </select>
            </label>
            <label>
              <span className={label}>On error</span>
              <select data-testid="on-error" className={input} value={onError} onChange={(e) => setOnError(e.target.value as BuildRequest["on_error"])}>
                <option value="cleanup">clean up</option>
                <option value="abort">leave in place</option>
              </select>
            </label>
            <label>
              <span className={label}>Install cache</span>
              <select data-testid="cache" className={input} value={cache} onChange={(e) => setCache(e.target.value as NonNullable<BuildRequest["cache"]>)} title="native builds: boot a cached install of the same inputs instead of installing (docs/CACHE.md)">
                <option value="off">off (install from the media)</option>
                <option value="use">use (boot a cached install)</option>
                <option value="refresh">refresh (reinstall, replace it)</option>
              </select>
            </label>
            <label className="flex items-end gap-2 text-sm">
              <input data-testid="force" type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> replace existing output
            </label>
            <label className="flex items-end gap-2 text-sm">
              <input data-testid="dry-run" type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} /> dry run
            </label>
          </div>
        </Card>
      </div>
      <div className="space-y-4">
        <Card title="Equivalent command">
          <pre data-testid="command-preview" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 font-mono text-xs text-slate-100">
            {commandLine(req)}
          </pre>
        </Card>
        <ErrorBox error={error} />
        {v && (
          <div data-testid="validation" className={`rounded border p-3 text-sm ${v.ok ? "border-emerald-200 bg-emerald-50 text-emerald-800" : "border-red-200 bg-red-50 text-red-800"}`}>
            {v.ok ? `Ready to build (engine: ${v.engine}).` : v.problems.map((p, i) => <div key={i}>{p.message}</div>)}
          </div>
        )}
        <div className="flex gap-2">
          <button type="button" data-testid="validate" className={secondary} onClick={validate} disabled={!req.target}>
            Validate
          </button>
          <button type="submit" data-testid="submit" className={primary} disabled={!req.target || busy}>
            {busy ? "Queueing…" : "Start build"}
          </button>
        </div>
      </div>
    </form>
  );
}
