//! WebSocket streams: a build followed from the start gets every record in order and the end;
//! a follower that reconnects with `from` resumes exactly; heartbeats; ping/pong; an ended
//! build is replayed from the store; the global feed numbers everything and resumes.

mod common;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect(url).0
}

/// The next JSON message (skipping pings), or None when the stream closed.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")?;
        match m.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Every message until the stream ends.
async fn drain(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(v) = next(ws).await {
        out.push(v);
    }
    out
}

fn records(msgs: &[Value]) -> Vec<&Value> {
    msgs.iter().filter(|m| m.get("seq").is_some()).collect()
}

#[tokio::test]
async fn a_follower_gets_every_record_in_order_then_the_end() {
    let s = common::start(|_| {}).await;
    let id = s.build(&["fake_step_ms=30"]).await;
    let mut ws = connect(&format!("{}/builds/{id}/stream", s.ws)).await;
    let hello = next(&mut ws).await.unwrap();
    assert_eq!(hello["type"], "stream.hello");
    assert_eq!(hello["build"], id);
    assert_eq!(hello["job"]["id"], id);
    let msgs = drain(&mut ws).await;
    let recs = records(&msgs);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64, "in order, no gaps");
    }
    assert_eq!(recs[0]["type"], "build_started");
    assert_eq!(recs.last().unwrap()["type"], "build_finished");
    let end = msgs.last().unwrap();
    assert_eq!(end["type"], "stream.end");
    assert_eq!(end["next"], recs.len() as u64);
    let states: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "stream.job")
        .map(|m| m["job"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"succeeded"), "{states:?}");
    assert!(states.contains(&"running"), "{states:?}");
    // The same records as the REST API has.
    let (_, ev) = s.get(&format!("/builds/{id}/events")).await;
    let stored: Vec<&Value> = ev["items"].as_array().unwrap().iter().collect();
    assert_eq!(stored, recs);
}

#[tokio::test]
async fn a_follower_resumes_from_an_offset_after_reconnecting() {
    let s = common::start(|_| {}).await;
    let id = s.build(&["fake_step_ms=40"]).await;
    let mut ws = connect(&format!("{}/builds/{id}/stream", s.ws)).await;
    next(&mut ws).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = next(&mut ws).await.unwrap();
        if m.get("seq").is_some() {
            got.push(m);
        }
    }
    drop(ws);
    let from = got.last().unwrap()["seq"].as_u64().unwrap() + 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut ws = connect(&format!("{}/builds/{id}/stream?from={from}", s.ws)).await;
    assert_eq!(next(&mut ws).await.unwrap()["from"], from);
    let rest = drain(&mut ws).await;
    let rest = records(&rest);
    assert_eq!(rest[0]["seq"], from, "exactly where it left off");
    let mut all: Vec<u64> = got.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    all.extend(rest.iter().map(|r| r["seq"].as_u64().unwrap()));
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
    assert_eq!(rest.last().unwrap()["type"], "build_finished");
    // After the end, the store replays from any offset.
    let mut ws = connect(&format!("{}/builds/{id}/stream?from=3", s.ws)).await;
    next(&mut ws).await.unwrap();
    let replay = drain(&mut ws).await;
    assert_eq!(records(&replay)[0]["seq"], 3);
    assert_eq!(replay.last().unwrap()["type"], "stream.end");
}

#[tokio::test]
async fn heartbeats_and_ping() {
    let mut s = common::start(|c| c.heartbeat_secs = 1).await;
    let id = s.build(&["fake_hang=validate"]).await;
    let mut ws = connect(&format!("{}/builds/{id}/stream", s.ws)).await;
    next(&mut ws).await.unwrap();
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let mut pong = false;
    let mut beat = None;
    for _ in 0..50 {
        let m = next(&mut ws).await.unwrap();
        match m["type"].as_str().unwrap() {
            "stream.pong" => pong = true,
            "stream.heartbeat" => {
                beat = Some(m);
                if pong {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(pong);
    let beat = beat.expect("a heartbeat within a few seconds");
    assert!(beat["next"].as_u64().unwrap() >= 2, "{beat}");
    assert!(beat["time"].as_str().unwrap().ends_with('Z'));
    // A queued build's stream waits for it; an unknown build is 404 before any upgrade.
    let e = tokio_tungstenite::connect_async(format!("{}/builds/9999/stream", s.ws))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("404"), "{e}");
    let (st, e) = s.get(&format!("/builds/{id}/stream")).await;
    assert_eq!(st, 400, "not a WebSocket request: {e}");
    s.stop().await;
}

#[tokio::test]
async fn the_global_feed_numbers_everything_and_resumes() {
    let s = common::start(|_| {}).await;
    let mut ws = connect(&format!("{}/stream", s.ws)).await;
    let hello = next(&mut ws).await.unwrap();
    let feed = hello["feed"].as_str().unwrap().to_string();
    let a = s.build(&["fake_step_ms=10"]).await;
    let b = s.build(&["fake_step_ms=10"]).await;
    let mut finished = std::collections::HashSet::new();
    let mut last = None;
    let mut by_build: std::collections::HashMap<String, Vec<u64>> = Default::default();
    while finished.len() < 2 {
        let m = next(&mut ws).await.unwrap();
        if let Some(g) = m.get("gseq").and_then(Value::as_u64) {
            if let Some(l) = last {
                assert_eq!(g, l + 1, "gseq without gaps");
            }
            last = Some(g);
        }
        if let Some(seq) = m.get("seq").and_then(Value::as_u64) {
            by_build
                .entry(m["build"].as_str().unwrap().to_string())
                .or_default()
                .push(seq);
        }
        if m["type"] == "build_finished" {
            finished.insert(m["build"].as_str().unwrap().to_string());
        }
    }
    for id in [a, b] {
        let seqs = &by_build[&id.to_string()];
        assert_eq!(*seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }
    drop(ws);
    // Resume from an offset of this feed; without logs.
    let mut ws = connect(&format!("{}/stream?from=5&feed={feed}&logs=false", s.ws)).await;
    assert_eq!(next(&mut ws).await.unwrap()["from"], 5);
    let m = next(&mut ws).await.unwrap();
    assert!(m["gseq"].as_u64().unwrap() >= 5);
    let mut seen_log = false;
    for _ in 0..20 {
        let m = tokio::time::timeout(Duration::from_millis(300), next(&mut ws)).await;
        match m {
            Ok(Some(m)) => seen_log |= m["type"] == "log" || m["type"] == "progress",
            _ => break,
        }
    }
    assert!(!seen_log, "logs=false leaves out log and progress");
    // An offset of another feed (another server run) asks the client to resync.
    let mut ws = connect(&format!("{}/stream?from=5&feed=0000", s.ws)).await;
    next(&mut ws).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "stream.resync");
}

#[tokio::test]
async fn two_hundred_followers_of_one_build_all_get_everything() {
    let s = common::start(|_| {}).await;
    let id = s.build(&["fake_step_ms=20", "fake_log_lines=200"]).await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = format!("{}/builds/{id}/stream", s.ws);
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            let msgs = drain(&mut ws).await;
            records(&msgs)
                .iter()
                .map(|r| r["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let (_, stored) = s.get(&format!("/builds/{id}/events?limit=10000")).await;
    let n = stored["items"].as_array().unwrap().len() as u64;
    for got in seen {
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }
}
