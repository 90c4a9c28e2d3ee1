//! Load generator for bench/serve.sh: one build followed by N WebSocket clients while the
//! REST API gets R requests per second for S seconds. Checks that every client received every
//! record of the build in order, and reports API latency (p50/p99/max) as one JSON line.
//!
//! ```text
//! serve_load --base http://127.0.0.1:PORT [--clients 200] [--rps 50] [--secs 60] [--rate 100]
//! ```
//! `--rate`: log lines per second the (fake) build streams for `--secs`.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = arg("--base", "http://127.0.0.1:8000");
    let clients: usize = arg("--clients", "200").parse().unwrap();
    let rps: u64 = arg("--rps", "50").parse().unwrap();
    let secs: u64 = arg("--secs", "60").parse().unwrap();
    let rate: u64 = arg("--rate", "100").parse().unwrap();
    let http = reqwest::Client::new();
    let api = format!("{base}/api/v1");
    let ws_base = api.replacen("http", "ws", 1);
    let build: Value = http
        .post(format!("{api}/builds"))
        .json(&json!({
            "target": "qemu/hermetic/testos-1-x86_64", "name": "load",
            "defines": [format!("fake_step_ms=20"), format!("fake_stream_s={secs}"), format!("fake_rate={rate}")]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = build["id"].as_i64().expect("a queued build");
    let started = Instant::now();
    let mut followers = Vec::new();
    for _ in 0..clients {
        let url = format!("{ws_base}/builds/{id}/stream");
        followers.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("connect");
            let mut seqs: Vec<u64> = Vec::new();
            let mut ended = false;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if let Some(s) = v.get("seq").and_then(Value::as_u64) {
                        seqs.push(s);
                    } else if v["type"] == "stream.end" {
                        ended = true;
                        break;
                    }
                }
            }
            (seqs, ended)
        }));
    }
    // The API load: `rps` requests a second, spread evenly, for `secs`.
    let paths = [
        "/health".to_string(),
        "/builds?limit=20".into(),
        format!("/builds/{id}"),
        format!("/builds/{id}/events?from=0&limit=100"),
        format!("/builds/{id}/log?limit=100"),
        "/targets?dist=rhel".into(),
        "/host".into(),
    ];
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rps));
    let mut reqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0usize;
    while Instant::now() < end {
        tick.tick().await;
        let url = format!("{api}{}", paths[n % paths.len()]);
        n += 1;
        let http = http.clone();
        reqs.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = match http.get(url).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (t0.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for r in reqs {
        let (ms, ok) = r.await.unwrap();
        lat.push(ms);
        if !ok {
            errors += 1;
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Every follower: every record, in order, then the end.
    let mut complete = 0;
    let mut total = None;
    let mut bad = Vec::new();
    for f in followers {
        let (seqs, ended) = f.await.unwrap();
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        let n = seqs.len();
        if ended && seqs == expected && total.is_none_or(|t| t == n) {
            complete += 1;
            total = Some(n);
        } else {
            bad.push((n, ended));
        }
    }
    let stored: Value = http
        .get(format!("{api}/builds/{id}/events?type=build_finished"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last_seq = stored["items"][0]["seq"].as_u64().unwrap_or(0);
    println!(
        "{}",
        json!({
            "clients": clients, "clients_complete": complete, "records_per_client": total,
            "records_in_store": last_seq + 1, "incomplete": bad.len(),
            "api_requests": lat.len(), "api_errors": errors, "api_rps": rps, "secs": secs,
            "p50_ms": pct(&lat, 0.50), "p99_ms": pct(&lat, 0.99), "max_ms": lat.last().copied().unwrap_or(0.0),
            "wall_secs": started.elapsed().as_secs_f64(),
        })
    );
    if complete != clients || total.map(|t| t as u64) != Some(last_seq + 1) || errors > 0 {
        std::process::exit(1);
    }
}
