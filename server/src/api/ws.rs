//! WebSocket streams.
//!
//! `GET /api/v1/builds/{id}/stream?from=SEQ`: a build's records with `seq >= from`, then
//! live ones as they come, then `stream.end`. `GET /api/v1/stream?from=GSEQ&feed=ID&logs=false`:
//! every build's records and job updates, each with its `gseq`.
//!
//! Control messages have a `type` starting with `stream.` (event types never do):
//! `stream.hello` (first), `stream.job` (a job changed), `stream.heartbeat` (every
//! `heartbeat_secs`, with `next`, the offset to resume from), `stream.resync` (the feed no
//! longer holds what was asked: reload from the REST API), `stream.end` (last), `stream.pong`
//! (answer to a client's `{"type":"ping"}`).

use super::builds::{id_of, IdPath};
use super::{ApiError, AppState, Params};
use crate::live::Entry;
use crate::store::JobId;
use crate::view::job_json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use osimager_events::now_rfc3339;

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

fn upgrade(ws: Upgrade) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|e| {
        ApiError::new(
            e.status(),
            "invalid_request",
            format!(
                "{}: this route is a WebSocket (ws:// or wss://)",
                e.body_text()
            ),
        )
    })
}

pub async fn build_stream(
    State(app): State<AppState>,
    path: IdPath,
    p: Params,
    ws: Upgrade,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    p.only(&["from"])?;
    let from = p.u64("from")?.unwrap_or(0);
    let job = app
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))?;
    let hello = format!(
        r#"{{"type":"stream.hello","build":{id},"from":{from},"heartbeat_secs":{},"job":{}}}"#,
        app.heartbeat.as_secs(),
        job_json(&job)
    );
    Ok(upgrade(ws)?
        .on_upgrade(move |socket| async move {
            if let Err(e) = follow_build(app, id, from, hello, socket).await {
                tracing::debug!(build = id, "stream follower left: {e}");
            }
        })
        .into_response())
}

fn text(s: &str) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

type WsResult = Result<(), axum::Error>;

/// What a follower's loop does on a wake-up that is not new data.
enum Wake {
    Data,
    Heartbeat,
    Stop,
    Pong,
}

async fn wait(
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
    changed: impl std::future::Future<Output = bool>,
    beat: &mut tokio::time::Interval,
    app: &AppState,
) -> Wake {
    tokio::select! {
        ok = changed => if ok { Wake::Data } else { Wake::Stop },
        _ = beat.tick() => Wake::Heartbeat,
        _ = app.shutdown.cancelled() => Wake::Stop,
        m = rx.next() => match m {
            Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => Wake::Pong,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Wake::Stop,
            Some(Ok(_)) => Wake::Data,
        },
    }
}

async fn follow_build(
    app: AppState,
    id: JobId,
    from: u64,
    hello: String,
    socket: WebSocket,
) -> WsResult {
    let (mut tx, mut rx) = socket.split();
    tx.send(text(&hello)).await?;
    let mut next = from;
    let mut beat =
        tokio::time::interval_at(tokio::time::Instant::now() + app.heartbeat, app.heartbeat);
    if let Some(live) = app.hub.get(id) {
        let mut watch = live.subscribe();
        let mut pos = live.position(from);
        loop {
            watch.borrow_and_update();
            let (entries, closed) = live.read(pos);
            pos += entries.len();
            send_entries(&mut tx, &entries, &mut next).await?;
            if closed {
                break;
            }
            loop {
                match wait(&mut rx, watch.changed().map_ok(), &mut beat, &app).await {
                    Wake::Data => break,
                    Wake::Heartbeat => heartbeat(&mut tx, next).await?,
                    Wake::Pong => tx.send(text(r#"{"type":"stream.pong"}"#)).await?,
                    Wake::Stop => {
                        return close(&mut tx, next, "server stopping or client left").await
                    }
                }
            }
        }
    } else {
        // Ended: everything is in the store.
        loop {
            let page = app
                .store
                .events(id, next, 1000, &[])
                .await
                .map_err(axum::Error::new)?;
            for e in &page {
                tx.feed(text(&e.json)).await?;
                next = e.seq + 1;
            }
            tx.flush().await?;
            if page.len() < 1000 {
                break;
            }
        }
    }
    close(&mut tx, next, "build ended").await
}

trait MapOk {
    fn map_ok(self) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = Result<(), tokio::sync::watch::error::RecvError>>> MapOk
    for F
{
    async fn map_ok(self) -> bool {
        self.await.is_ok()
    }
}

async fn send_entries(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    entries: &[Entry],
    next: &mut u64,
) -> WsResult {
    if entries.is_empty() {
        return Ok(());
    }
    for e in entries {
        tx.feed(text(&e.json)).await?;
        if let Some(s) = e.seq {
            *next = s + 1;
        }
    }
    tx.flush().await
}

async fn heartbeat(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    next: u64,
) -> WsResult {
    tx.send(text(&format!(
        r#"{{"type":"stream.heartbeat","time":"{}","next":{next}}}"#,
        now_rfc3339()
    )))
    .await
}

async fn close(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    next: u64,
    why: &'static str,
) -> WsResult {
    tx.send(text(&format!(r#"{{"type":"stream.end","next":{next}}}"#)))
        .await?;
    tx.send(Message::Close(Some(CloseFrame {
        code: 1000,
        reason: Utf8Bytes::from_static(why),
    })))
    .await?;
    let _ = tx.close().await;
    Ok(())
}

pub async fn global_stream(
    State(app): State<AppState>,
    p: Params,
    ws: Upgrade,
) -> Result<Response, ApiError> {
    p.only(&["from", "feed", "logs"])?;
    let feed = app.hub.feed();
    let resume = p.u64("from")?.filter(|_| p.str("feed") == Some(feed.id()));
    let logs = match p.str("logs") {
        None => true,
        Some(_) => p.bool("logs")?,
    };
    let from = resume.unwrap_or_else(|| feed.next_gseq());
    let resync = p.u64("from")?.is_some() && resume.is_none();
    let hello = format!(
        r#"{{"type":"stream.hello","feed":"{}","from":{from},"heartbeat_secs":{}}}"#,
        feed.id(),
        app.heartbeat.as_secs()
    );
    Ok(upgrade(ws)?
        .on_upgrade(move |socket| async move {
            if let Err(e) = follow_feed(app, from, logs, resync, hello, socket).await {
                tracing::debug!("feed follower left: {e}");
            }
        })
        .into_response())
}

async fn follow_feed(
    app: AppState,
    mut from: u64,
    logs: bool,
    mut resync: bool,
    hello: String,
    socket: WebSocket,
) -> WsResult {
    let (mut tx, mut rx) = socket.split();
    tx.send(text(&hello)).await?;
    let feed = app.hub.feed();
    let mut watch = feed.subscribe();
    let mut beat =
        tokio::time::interval_at(tokio::time::Instant::now() + app.heartbeat, app.heartbeat);
    loop {
        watch.borrow_and_update();
        let (entries, behind) = feed.read(from);
        if behind || resync {
            resync = false;
            let first = entries.first().and_then(|e| e.seq).unwrap_or(from);
            tx.send(text(&format!(
                r#"{{"type":"stream.resync","next":{first}}}"#
            )))
            .await?;
        }
        for e in &entries {
            if let Some(g) = e.seq {
                from = g + 1;
            }
            if !logs && (&*e.kind == "log" || &*e.kind == "progress") {
                continue;
            }
            tx.feed(text(&e.json)).await?;
        }
        tx.flush().await?;
        loop {
            match wait(&mut rx, watch.changed().map_ok(), &mut beat, &app).await {
                Wake::Data => break,
                Wake::Heartbeat => heartbeat(&mut tx, from).await?,
                Wake::Pong => tx.send(text(r#"{"type":"stream.pong"}"#)).await?,
                Wake::Stop => return close(&mut tx, from, "server stopping or client left").await,
            }
        }
    }
}
