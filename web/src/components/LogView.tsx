import { useEffect, useMemo, useRef, useState } from "react";
import { Card, secondary, primary } from "./ui";

export type LogLine = { seq: number; time: string; source: string; line: string; detail: boolean };

const SOURCES = ["engine", "serial", "provisioner", "packer", "http"] as const;
const color: Record<string, string> = {
  engine: "text-slate-200",
  serial: "text-emerald-300",
  provisioner: "text-sky-300",
  packer: "text-violet-300",
  http: "text-amber-300",
};
/// Lines kept on screen (the whole log is in the API: /builds/{id}/log).
const SHOWN = 5000;
// Terminal control sequences of serial consoles (colours, cursor moves) are not shown.
// eslint-disable-next-line no-control-regex
const CONTROL = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b[()][0-9A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]/g;

/// The live log: follow (keep the newest line in view) or pause (freeze what is shown while
/// the build goes on), filter by source, detail lines on demand.
export default function LogView({ lines }: { lines: LogLine[] }) {
  const [paused, setPaused] = useState<number | null>(null);
  const [follow, setFollow] = useState(true);
  const [detail, setDetail] = useState(false);
  const [hidden, setHidden] = useState<string[]>([]);
  const box = useRef<HTMLDivElement>(null);
  const visible = useMemo(() => {
    const upto = paused == null ? lines : lines.slice(0, paused);
    return upto.filter((l) => (detail || !l.detail) && !hidden.includes(l.source)).slice(-SHOWN);
  }, [lines, paused, detail, hidden]);
  useEffect(() => {
    if (follow && paused == null && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [visible, follow, paused]);
  const toggle = (s: string) => setHidden((h) => (h.includes(s) ? h.filter((x) => x !== s) : [...h, s]));
  return (
    <Card
      title={`Log (${lines.length} lines${paused != null ? `, paused at ${paused}` : ""})`}
      testid="log"
      actions={
        <>
          {SOURCES.map((s) => (
            <button key={s} onClick={() => toggle(s)} className={`rounded px-2 py-0.5 text-xs ${hidden.includes(s) ? "bg-slate-100 text-slate-400 line-through" : "bg-slate-200"}`}>
              {s}
            </button>
          ))}
          <label className="flex items-center gap-1 text-xs">
            <input type="checkbox" checked={detail} onChange={(e) => setDetail(e.target.checked)} /> detail
          </label>
          <button data-testid="follow" className={follow ? primary : secondary} onClick={() => setFollow(!follow)}>
            {follow ? "Following" : "Follow"}
          </button>
          <button data-testid="pause" className={paused != null ? primary : secondary} onClick={() => setPaused(paused == null ? lines.length : null)}>
            {paused != null ? "Resume" : "Pause"}
          </button>
        </>
      }
    >
      <div
        ref={box}
        data-testid="log-lines"
        onScroll={(e) => {
          const el = e.currentTarget;
          const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
          if (!atBottom && follow) setFollow(false);
        }}
        className="h-96 overflow-auto rounded bg-slate-950 p-2 font-mono text-xs leading-5"
      >
        {visible.map((l) => (
          <div key={l.seq} data-testid="log-line" className={`whitespace-pre-wrap break-all ${color[l.source] ?? "text-slate-200"} ${l.detail ? "opacity-60" : ""}`}>
            <span className="select-none text-slate-500">{l.time.slice(11, 19)} </span>
            {l.line.replace(CONTROL, "")}
          </div>
        ))}
        {visible.length === 0 && <div className="text-slate-500">No log lines yet.</div>}
      </div>
    </Card>
  );
}
