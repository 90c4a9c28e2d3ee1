//! Checks of what remote workers need: matched claims, leases that fence old claims,
//! requeues of silent workers' jobs, queue wake-ups and the worker registry.

use super::*;
use crate::backend::EngineChoice;
use std::collections::BTreeMap;

fn job(target: &str, engine: EngineChoice, labels: &[(&str, &str)]) -> NewJob {
    let mut n = req(target, 0);
    n.request.engine = engine;
    n.request.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

pub(crate) fn worker(
    name: &str,
    native: &[&str],
    packer: &[&str],
    labels: &[(&str, &str)],
) -> ClaimSpec {
    ClaimSpec {
        worker: name.into(),
        can: Some(Capabilities {
            native: native.iter().map(|s| s.to_string()).collect(),
            packer: packer.iter().map(|s| s.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            arch: "x86_64".into(),
            ..Default::default()
        }),
    }
}

pub(super) async fn matching(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let vmw = s
        .create(job("vmware/lab/a", EngineChoice::Native, &[]))
        .await
        .unwrap();
    let vsphere_auto = s
        .create(job("vsphere/dc/b", EngineChoice::Auto, &[]))
        .await
        .unwrap();
    let qemu_gpu = s
        .create(job("qemu/lab/c", EngineChoice::Native, &[("gpu", "yes")]))
        .await
        .unwrap();
    let qemu_packer = s
        .create(job("qemu/lab/d", EngineChoice::Packer, &[]))
        .await
        .unwrap();
    // Native qemu only, no labels: none of them (the gpu label, Packer asked).
    let kvm = worker("kvm", &["qemu"], &[], &[]);
    assert_eq!(s.claim_for(&kvm).await.unwrap(), None);
    // Packer for vsphere: the auto job may fall back; the native vmware one may not.
    let pk = worker("pk", &[], &["vsphere", "qemu"], &[("site", "lab")]);
    let got = s
        .claim_for(&pk)
        .await
        .unwrap()
        .expect("the auto vsphere job");
    assert_eq!(got.id, vsphere_auto.id);
    assert_eq!(got.worker.as_deref(), Some("pk"));
    assert_eq!(
        s.claim_for(&pk).await.unwrap().map(|j| j.id),
        Some(qemu_packer.id)
    );
    assert_eq!(s.claim_for(&pk).await.unwrap(), None);
    let gpu = worker("gpu", &["qemu"], &[], &[("gpu", "yes"), ("site", "lab")]);
    assert_eq!(
        s.claim_for(&gpu).await.unwrap().map(|j| j.id),
        Some(qemu_gpu.id)
    );
    assert_eq!(s.claim_for(&gpu).await.unwrap(), None);
    let ws = worker("ws", &["vmware"], &[], &[]);
    assert_eq!(s.claim_for(&ws).await.unwrap().map(|j| j.id), Some(vmw.id));
    assert_eq!(
        s.get(qemu_gpu.id)
            .await
            .unwrap()
            .unwrap()
            .request
            .labels
            .get("gpu")
            .map(String::as_str),
        Some("yes"),
        "labels are kept with the request"
    );
}

pub(super) async fn leases(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let j = s.create(req("t/l/a", 0)).await.unwrap();
    assert_eq!(j.lease, 0);
    let a = s.claim("wa").await.unwrap().unwrap();
    assert_eq!(a.lease, 1);
    assert!(a.heartbeat_at.is_some(), "the claim is the first heartbeat");
    assert_eq!(
        s.heartbeat(j.id, 1).await.unwrap().worker.as_deref(),
        Some("wa")
    );
    let future = "2999-01-01T00:00:00.000Z";
    let requeued = s.requeue_silent(future, 3).await.unwrap();
    assert_eq!(
        requeued.iter().map(|j| (j.id, j.state)).collect::<Vec<_>>(),
        vec![(j.id, JobState::Queued)]
    );
    let b = s.claim("wb").await.unwrap().unwrap();
    assert_eq!((b.id, b.lease), (j.id, 2));
    // wa comes back: everything it says about lease 1 is refused.
    assert!(matches!(
        s.heartbeat(j.id, 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.finish_leased(j.id, 1, end(JobState::Succeeded)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get(j.id).await.unwrap().unwrap().state, JobState::Running);
    let done = s
        .finish_leased(j.id, 2, end(JobState::Succeeded))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert!(
        matches!(s.heartbeat(j.id, 2).await, Err(StoreError::Conflict(_))),
        "ended"
    );
    assert!(matches!(
        s.heartbeat(99_999, 1).await,
        Err(StoreError::NotFound(_))
    ));
    let hist = s.claims(j.id).await.unwrap();
    assert_eq!(
        hist.iter()
            .map(|c| (c.lease, c.worker.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "wa"), (2, "wb")]
    );
}

pub(super) async fn requeue(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let past = "2000-01-01T00:00:00.000Z";
    let future = "2999-01-01T00:00:00.000Z";
    let remote = s.create(req("t/l/remote", 2)).await.unwrap();
    let local = s.create(req("t/l/local", 1)).await.unwrap();
    let cancelled = s.create(req("t/l/cancel", 0)).await.unwrap();
    // Another server's own runner (servers sharing one store each have their own name).
    let other = s.create(req("t/l/other", -1)).await.unwrap();
    let other_server = crate::store::local_worker_name(std::path::Path::new("/other/state"));
    assert!(
        crate::store::is_local_worker(&other_server),
        "{other_server}"
    );
    s.claim("w1").await.unwrap();
    s.claim(crate::store::LOCAL_WORKER).await.unwrap();
    s.claim("w1").await.unwrap();
    s.claim(&other_server).await.unwrap();
    s.cancel(cancelled.id).await.unwrap();
    assert!(
        s.requeue_silent(past, 2).await.unwrap().is_empty(),
        "heartbeats are recent"
    );
    let out = s.requeue_silent(future, 2).await.unwrap();
    let states: Vec<_> = out.iter().map(|j| (j.id, j.state)).collect();
    assert_eq!(
        states,
        vec![
            (remote.id, JobState::Queued),
            (cancelled.id, JobState::Cancelled)
        ],
        "the local runner's job is not requeued; a cancelled one ends"
    );
    let r = s.get(remote.id).await.unwrap().unwrap();
    assert!(r.worker.is_none() && r.started_at.is_none());
    s.claim("w2").await.unwrap();
    let out = s.requeue_silent(future, 2).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].state,
        JobState::Failed,
        "claimed twice: no more tries"
    );
    let why = out[0].error.as_ref().expect("a reason").message.clone();
    assert!(why.contains("w2") && why.contains("heartbeat"), "{why}");
    assert_eq!(
        s.get(local.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(
        s.get(other.id).await.unwrap().unwrap().state,
        JobState::Running,
        "no server's own runner is requeued"
    );
    // A restarted server interrupts its own runner's jobs, not another server's.
    let mine = crate::store::local_worker_name(std::path::Path::new("/mine/state"));
    assert_ne!(mine, other_server);
    assert!(s.interrupt_running_of(&mine).await.unwrap().is_empty());
    let theirs = s.interrupt_running_of(&other_server).await.unwrap();
    assert_eq!(theirs.iter().map(|j| j.id).collect::<Vec<_>>(), [other.id]);
}

pub(super) async fn wakeups(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let mut rx = s.queue_changes();
    rx.borrow_and_update();
    s.create(req("t/l/a", 0)).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
        .await
        .expect("a queued job wakes claimers")
        .unwrap();
    s.claim("w").await.unwrap();
    rx.borrow_and_update();
    s.requeue_silent("2999-01-01T00:00:00.000Z", 5)
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
        .await
        .expect("a requeued job wakes claimers")
        .unwrap();
}

pub(super) async fn registry(h: Arc<dyn Harness>) {
    let s = h.fresh().await;
    let spec = worker("kvm-1", &["qemu"], &["qemu"], &[("site", "lab")]);
    let w = WorkerInfo {
        name: "kvm-1".into(),
        capabilities: spec.can.clone().unwrap(),
        registered_at: String::new(),
        last_seen: String::new(),
    };
    let got = s.put_worker(&w).await.unwrap();
    assert_eq!(got.capabilities, w.capabilities);
    assert!(got.registered_at.ends_with('Z') && got.last_seen.ends_with('Z'));
    let mut w2 = w.clone();
    w2.name = "esx-1".into();
    w2.capabilities.free_disk = 1 << 40;
    s.put_worker(&w2).await.unwrap();
    let mut again = w.clone();
    again.capabilities.concurrency = 4;
    let re = s.put_worker(&again).await.unwrap();
    assert_eq!(
        re.registered_at, got.registered_at,
        "re-registering keeps the first time"
    );
    assert_eq!(re.capabilities.concurrency, 4);
    s.touch_worker("kvm-1").await.unwrap();
    let list = s.workers().await.unwrap();
    assert_eq!(
        list.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        vec!["esx-1", "kvm-1"]
    );
    assert!(s
        .drop_silent_workers("2000-01-01T00:00:00.000Z")
        .await
        .unwrap()
        .is_empty());
    let dropped = s
        .drop_silent_workers("2999-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(dropped, vec!["esx-1".to_string(), "kvm-1".to_string()]);
    assert!(s.workers().await.unwrap().is_empty());
    // Worker tokens are tokens with a role.
    let t = s
        .create_token_as("kvm-1", &"d4".repeat(32), TokenRole::Worker)
        .await
        .unwrap();
    assert_eq!(t.role, TokenRole::Worker);
    let found = s.check_token(&"d4".repeat(32)).await.unwrap().unwrap();
    assert_eq!(found.role, TokenRole::Worker);
    assert_eq!(
        s.create_token("ci", &"e5".repeat(32)).await.unwrap().role,
        TokenRole::Api
    );
}
