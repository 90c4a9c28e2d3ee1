//! Checks of a build's records (events, artifacts, screenshots) and of the API tokens.

use super::*;

pub(super) async fn events(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let j = s.create(req("t/l/a", 0)).await.unwrap();
    let other = s.create(req("t/l/b", 0)).await.unwrap();
    let batch: Vec<StoredEvent> = (0..500)
        .map(|i| ev(i, if i % 3 == 0 { "log" } else { "progress" }))
        .collect();
    s.append_events(j.id, &batch[..250]).await.unwrap();
    s.append_events(j.id, &batch[250..]).await.unwrap();
    s.append_events(j.id, &batch[10..12]).await.unwrap();
    s.append_events(other.id, &[ev(0, "build_started")])
        .await
        .unwrap();
    let all = s.events(j.id, 0, 10_000, &[]).await.unwrap();
    assert_eq!(all, batch, "stored in full, in order, repeats ignored");
    let tail = s.events(j.id, 495, 100, &[]).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![495, 496, 497, 498, 499]
    );
    let page = s.events(j.id, 100, 7, &[]).await.unwrap();
    assert_eq!(page.first().map(|e| e.seq), Some(100));
    assert_eq!(page.len(), 7);
    let logs = s.events(j.id, 4, 3, &["log"]).await.unwrap();
    assert_eq!(
        logs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![6, 9, 12]
    );
    assert!(s.events(j.id, 500, 10, &[]).await.unwrap().is_empty());
    assert_eq!(s.events(other.id, 0, 10, &[]).await.unwrap().len(), 1);
}

pub(super) async fn files(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let j = s.create(req("t/l/a", 0)).await.unwrap();
    let a = Artifact {
        name: "disk.qcow2".into(),
        path: "/out/disk.qcow2".into(),
        size: 10,
        sha256: None,
    };
    s.put_artifact(j.id, &a).await.unwrap();
    let b = Artifact {
        name: "SHA256SUMS".into(),
        path: "/out/SHA256SUMS".into(),
        size: 80,
        sha256: Some("ab".repeat(32)),
    };
    s.put_artifact(j.id, &b).await.unwrap();
    let a2 = Artifact {
        sha256: Some("cd".repeat(32)),
        ..a.clone()
    };
    s.put_artifact(j.id, &a2).await.unwrap();
    assert_eq!(s.artifacts(j.id).await.unwrap(), vec![b, a2]);
    for i in 0..3 {
        s.put_screenshot(
            j.id,
            &Screenshot {
                index: i,
                seq: 10 + u64::from(i),
                name: format!("shot{i}"),
                file: format!("/state/{i}.png"),
                time: "2026-01-01T00:00:00.000Z".into(),
            },
        )
        .await
        .unwrap();
    }
    let shots = s.screenshots(j.id).await.unwrap();
    assert_eq!(
        shots.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(shots[2].name, "shot2");
    let other = s.create(req("t/l/b", 0)).await.unwrap();
    assert!(s.artifacts(other.id).await.unwrap().is_empty());
}

pub(super) async fn tokens(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let a = s.create_token("ci", &"a1".repeat(32)).await.unwrap();
    assert_eq!(a.name, "ci");
    assert!(a.last_used.is_none());
    assert!(matches!(
        s.create_token("ci", &"b2".repeat(32)).await,
        Err(StoreError::Conflict(_))
    ));
    let b = s.create_token("alice", &"c3".repeat(32)).await.unwrap();
    assert_ne!(a.id, b.id);
    let list = s.tokens().await.unwrap();
    assert_eq!(
        list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["alice", "ci"]
    );
    let found = s.check_token(&"a1".repeat(32)).await.unwrap().unwrap();
    assert_eq!(found.name, "ci");
    assert!(s
        .tokens()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "ci" && t.last_used.is_some()));
    assert_eq!(s.check_token(&"ff".repeat(32)).await.unwrap(), None);
    s.revoke_token("ci").await.unwrap();
    assert_eq!(s.check_token(&"a1".repeat(32)).await.unwrap(), None);
    s.revoke_token(&b.id).await.unwrap();
    assert!(s.tokens().await.unwrap().is_empty());
    assert!(matches!(
        s.revoke_token("ci").await,
        Err(StoreError::NotFound(_))
    ));
}
