import { useEffect, useState } from "react";
import { get, post, type Validation } from "../api";
import { Link } from "../router";
import { Card, ErrorBox, Json, primary, secondary } from "../components/ui";

type Resolved = { target: string; defs: Record<string, unknown>; template: unknown; warnings: string[] };

export default function TargetDetail({ platform, location, spec }: { platform: string; location: string; spec: string }) {
  const target = `${platform}/${location}/${spec}`;
  const [r, setR] = useState<Resolved | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tab, setTab] = useState<"defs" | "template">("defs");
  const [v, setV] = useState<Validation | null>(null);
  const [checking, setChecking] = useState(false);
  useEffect(() => {
    setR(null);
    get<Resolved>(`/targets/${target}`).then(setR).catch(setError);
  }, [target]);
  const validate = async () => {
    setChecking(true);
    try {
      setV(await post<Validation>("/validate", { target }));
    } catch (e) {
      setError(e);
    } finally {
      setChecking(false);
    }
  };
  return (
    <div className="space-y-4">
      <div className="flex items-center justify-between">
        <h1 className="font-mono text-xl font-semibold">{r?.target ?? target}</h1>
        <div className="flex gap-2">
          <button data-testid="validate" className={secondary} onClick={validate} disabled={checking}>
            {checking ? "Checking…" : "Validate"}
          </button>
          <Link to={`/builds/new?target=${encodeURIComponent(r?.target ?? target)}`} className={primary} data-testid="build-this">
            Build…
          </Link>
        </div>
      </div>
      <ErrorBox error={error} />
      {v && (
        <div data-testid="validation" className={`rounded border p-3 text-sm ${v.ok ? "border-emerald-200 bg-emerald-50 text-emerald-800" : "border-red-200 bg-red-50 text-red-800"}`}>
          {v.ok ? `Ready to build (engine: ${v.engine}).` : "Cannot be built:"}
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
      {r && r.warnings.length > 0 && (
        <div className="rounded border border-amber-200 bg-amber-50 p-3 text-sm text-amber-800">
          {r.warnings.map((w, i) => (
            <div key={i}>warning: {w}</div>
          ))}
        </div>
      )}
      {r && (
        <Card
          title="Resolved (secrets shown as ***)"
          actions={
            <>
              <button data-testid="tab-defs" className={tab === "defs" ? primary : secondary} onClick={() => setTab("defs")}>
                Defs
              </button>
              <button data-testid="tab-template" className={tab === "template" ? primary : secondary} onClick={() => setTab("template")}>
                Packer template
              </button>
            </>
          }
        >
          <Json testid={tab} value={tab === "defs" ? r.defs : r.template} />
        </Card>
      )}
    </div>
  );
}
