import { useEffect, useState } from "react";
import { del, get, post, put, type Location, type Validation } from "../api";
import { Link, navigate } from "../router";
import { Card, ErrorBox, danger, input, primary, secondary } from "../components/ui";

const TEMPLATE: Record<string, string> = {
  json: '{\n  "platforms": ["qemu"],\n  "arches": ["x86_64"],\n  "defs": {\n    "domain": "lab.example"\n  },\n  "config": {}\n}\n',
  toml: 'platforms = ["qemu"]\narches = ["x86_64"]\n\n[defs]\ndomain = "lab.example"\n',
};

export default function Locations({ selected }: { selected?: string }) {
  const [list, setList] = useState<Location[]>([]);
  const [format, setFormat] = useState<"json" | "toml">("json");
  const [content, setContent] = useState("");
  const [newName, setNewName] = useState("");
  const [v, setV] = useState<Validation | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const reload = () => get<{ items: Location[] }>("/locations").then((l) => setList(l.items)).catch(setError);
  useEffect(() => {
    reload();
  }, []);
  useEffect(() => {
    setV(null);
    setSaved(false);
    setError(null);
    if (!selected) return;
    get<{ format: "json" | "toml"; content: string }>(`/locations/${encodeURIComponent(selected)}`)
      .then((d) => {
        setFormat(d.format);
        setContent(d.content);
      })
      .catch(setError);
  }, [selected]);
  const run = async (f: () => Promise<void>) => {
    setError(null);
    setSaved(false);
    try {
      await f();
    } catch (e) {
      setError(e);
    }
  };
  const validate = () => run(async () => setV(await post<Validation>(`/locations/${encodeURIComponent(selected!)}/validate`, { format, content })));
  const save = () =>
    run(async () => {
      await put(`/locations/${encodeURIComponent(selected!)}`, { format, content });
      setV(null);
      setSaved(true);
      reload();
    });
  const create = (e: React.FormEvent) => {
    e.preventDefault();
    run(async () => {
      await post("/locations", { name: newName, format, content: TEMPLATE[format] });
      await reload();
      const n = newName;
      setNewName("");
      navigate(`/locations/${encodeURIComponent(n)}`);
    });
  };
  const remove = () =>
    run(async () => {
      if (!confirm(`Remove location ${selected}?`)) return;
      await del(`/locations/${encodeURIComponent(selected!)}`);
      await reload();
      navigate("/locations");
    });
  return (
    <div className="grid gap-6 lg:grid-cols-4">
      <Card title="Locations (user layer)" testid="locations">
        <ul className="space-y-1 text-sm">
          {list.map((l) => (
            <li key={l.name}>
              <Link to={`/locations/${encodeURIComponent(l.name)}`} data-testid={`location-${l.name}`} className={`block rounded px-2 py-1 ${l.name === selected ? "bg-blue-600 text-white" : "hover:bg-slate-100"}`}>
                {l.name} <span className="text-xs opacity-70">.{l.format}</span>
                <div className="text-xs opacity-70">{l.platforms.join(", ") || "all platforms"} · {l.arches.join(", ") || "all arches"}</div>
              </Link>
            </li>
          ))}
        </ul>
        <form onSubmit={create} className="mt-4 space-y-2 border-t border-slate-100 pt-3">
          <input data-testid="new-location-name" className={input} placeholder="new location name" value={newName} onChange={(e) => setNewName(e.target.value)} />
          <div className="flex gap-2">
            <select className={input} value={format} onChange={(e) => setFormat(e.target.value as "json" | "toml")}>
              <option value="json">JSON</option>
              <option value="toml">TOML</option>
            </select>
            <button data-testid="new-location" className={primary} disabled={!newName}>
              Create
            </button>
          </div>
        </form>
      </Card>
      <div className="space-y-4 lg:col-span-3">
        <ErrorBox error={error} />
        {!selected ? (
          <p className="text-sm text-slate-500">Choose a location to edit it. Locations live in your user layer; the bundled data is never changed here.</p>
        ) : (
          <Card
            title={`${selected}.${format}`}
            testid="location-editor"
            actions={
              <>
                <select data-testid="location-format" className={`${input} w-24`} value={format} onChange={(e) => setFormat(e.target.value as "json" | "toml")}>
                  <option value="json">JSON</option>
                  <option value="toml">TOML</option>
                </select>
                <button data-testid="location-validate" className={secondary} onClick={validate}>
                  Validate
                </button>
                <button data-testid="location-save" className={primary} onClick={save}>
                  Save
                </button>
                <button data-testid="location-delete" className={danger} onClick={remove}>
                  Delete
                </button>
              </>
            }
          >
            <textarea data-testid="location-content" spellCheck={false} className={`${input} h-[28rem] font-mono text-xs`} value={content} onChange={(e) => { setContent(e.target.value); setSaved(false); }} />
            {saved && <div data-testid="location-saved" className="mt-2 text-sm text-emerald-700">Saved (written atomically).</div>}
            {v && (
              <div data-testid="location-validation" className={`mt-2 rounded border p-2 text-sm ${v.ok ? "border-emerald-200 bg-emerald-50 text-emerald-800" : "border-red-200 bg-red-50 text-red-800"}`}>
                {v.ok ? "Valid." : "Problems:"}
                <ul className="ml-4 list-disc">
                  {v.problems.map((p, i) => (
                    <li key={i}>{p.key ? `${p.key}: ` : ""}{p.message}</li>
                  ))}
                  {v.warnings.map((w, i) => (
                    <li key={`w${i}`} className="text-amber-700">warning: {w}</li>
                  ))}
                </ul>
              </div>
            )}
          </Card>
        )}
      </div>
    </div>
  );
}
