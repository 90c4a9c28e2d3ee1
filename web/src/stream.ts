// WebSocket streams of `osimager serve`, with resume after a reconnect (no polling).
//   /api/v1/builds/{id}/stream?from=SEQ  one build: records, stream.job, stream.heartbeat, stream.end
//   /api/v1/stream?from=GSEQ&feed=ID     every build: records and stream.job, each with gseq

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = { type: string; [k: string]: any };

function wsUrl(path: string): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/api/v1${path}`;
}

export interface StreamHandle {
  close(): void;
}

/// Follow one build from `from`; reconnects where it left off until `stream.end`.
export function followBuild(
  id: number,
  onMsg: (m: Msg) => void,
  onStatus?: (s: "live" | "reconnecting" | "ended") => void,
): StreamHandle {
  let next = 0;
  let closed = false;
  let ws: WebSocket | null = null;
  let retry: number | undefined;
  const open = () => {
    ws = new WebSocket(wsUrl(`/builds/${id}/stream?from=${next}`));
    ws.onopen = () => onStatus?.("live");
    ws.onmessage = (e) => {
      const m: Msg = JSON.parse(e.data);
      if (typeof m.seq === "number") next = m.seq + 1;
      else if (m.type === "stream.heartbeat" || m.type === "stream.end") next = Math.max(next, m.next ?? next);
      if (m.type === "stream.end") {
        closed = true;
        onStatus?.("ended");
      }
      onMsg(m);
    };
    ws.onclose = () => {
      if (closed) return;
      onStatus?.("reconnecting");
      retry = window.setTimeout(open, 1000);
    };
  };
  open();
  return {
    close() {
      closed = true;
      window.clearTimeout(retry);
      ws?.close();
    },
  };
}

/// Follow the global feed (without log lines by default); resumes with the feed id.
export function followFeed(onMsg: (m: Msg) => void, logs = false): StreamHandle {
  let feed = "";
  let next: number | null = null;
  let closed = false;
  let ws: WebSocket | null = null;
  let retry: number | undefined;
  const open = () => {
    const q = new URLSearchParams({ logs: String(logs) });
    if (feed && next != null) {
      q.set("feed", feed);
      q.set("from", String(next));
    }
    ws = new WebSocket(wsUrl(`/stream?${q}`));
    ws.onmessage = (e) => {
      const m: Msg = JSON.parse(e.data);
      if (m.type === "stream.hello") {
        feed = m.feed;
        next = m.from;
      } else if (typeof m.gseq === "number") next = m.gseq + 1;
      else if (m.type === "stream.heartbeat" || m.type === "stream.resync") next = m.next;
      onMsg(m);
    };
    ws.onclose = () => {
      if (!closed) retry = window.setTimeout(open, 1000);
    };
  };
  open();
  return {
    close() {
      closed = true;
      window.clearTimeout(retry);
      ws?.close();
    },
  };
}
