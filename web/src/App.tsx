import { useEffect, useState } from "react";
import { get, onUnauthorized } from "./api";
import { Link, match, useLocation } from "./router";
import Dashboard from "./pages/Dashboard";
import Targets from "./pages/Targets";
import TargetDetail from "./pages/TargetDetail";
import NewBuild from "./pages/NewBuild";
import BuildPage from "./pages/Build";
import History from "./pages/History";
import Locations from "./pages/Locations";
import Workers from "./pages/Workers";
import Login from "./pages/Login";

const nav = [
  ["/", "Dashboard"],
  ["/targets", "Targets"],
  ["/builds/new", "New build"],
  ["/builds", "History"],
  ["/locations", "Locations"],
  ["/workers", "Workers"],
] as const;

function Page() {
  const { path } = useLocation();
  let m;
  if (path === "/") return <Dashboard />;
  if (path === "/targets") return <Targets />;
  if ((m = match("/targets/:platform/:location/:spec", path))) return <TargetDetail {...(m as { platform: string; location: string; spec: string })} />;
  if (path === "/builds/new") return <NewBuild />;
  if (path === "/builds") return <History />;
  if ((m = match("/builds/:id", path))) return <BuildPage id={Number(m.id)} />;
  if (path === "/locations") return <Locations />;
  if (path === "/workers") return <Workers />;
  if ((m = match("/locations/:name", path))) return <Locations selected={m.name} />;
  return <p className="text-slate-600">No page here. <Link className="text-blue-700 underline" to="/">Go to the dashboard.</Link></p>;
}

export default function App() {
  const { path } = useLocation();
  const [needLogin, setNeedLogin] = useState(false);
  const [checked, setChecked] = useState(false);
  useEffect(() => {
    get<{ auth_required: boolean; authenticated: boolean }>("/session")
      .then((s) => setNeedLogin(s.auth_required && !s.authenticated))
      .finally(() => setChecked(true));
    return onUnauthorized(() => setNeedLogin(true));
  }, []);
  const active = (to: string) =>
    to === "/" ? path === "/" : to === "/builds" ? path === "/builds" || /^\/builds\/\d+/.test(path) : path.startsWith(to);
  return (
    <div className="min-h-screen">
      <header className="border-b border-slate-200 bg-slate-900 text-slate-100">
        <div className="mx-auto flex max-w-7xl items-center gap-6 px-4 py-3">
          <Link to="/" className="text-lg font-bold tracking-tight">
            osimager
          </Link>
          <nav className="flex gap-1 text-sm">
            {nav.map(([to, label]) => (
              <Link
                key={to}
                to={to}
                data-testid={`nav-${label.toLowerCase().replace(" ", "-")}`}
                className={`rounded px-3 py-1.5 ${active(to) ? "bg-slate-700 text-white" : "text-slate-300 hover:bg-slate-800"}`}
              >
                {label}
              </Link>
            ))}
          </nav>
        </div>
      </header>
      <main className="mx-auto max-w-7xl px-4 py-6">{!checked ? null : needLogin ? <Login onDone={() => setNeedLogin(false)} /> : <Page />}</main>
    </div>
  );
}
