//! The runner on a test clock: due work runs when the clock says so, wake-ups and shutdown
//! behave, and leased work stops when its lease is taken over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use attest_domain::{Clock, TestClock};
use attest_jobs::{Lease, Ran, Runner};
use attest_store::Store;
use attest_store::testing::{TestBackend, TestDb};
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{Mutex, Notify, watch};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap()
}

/// Real time for a job to react to something (a moved clock, a wake-up): generous, since
/// nothing should happen sooner by accident.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Waits (in real time, up to 5 s) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

async fn sqlite() -> Store {
    TestDb::create(TestBackend::Sqlite, true).await.unwrap().unwrap().store
}

#[tokio::test]
async fn a_job_due_at_t_runs_at_t_on_the_test_clock() {
    let clock = TestClock::at(start());
    let runs: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let runner = Runner::new("test", clock.shared(), Duration::from_secs(600));
    let seen = runs.clone();
    let job = tokio::spawn(runner.run(stopped, move |now| {
        let seen = seen.clone();
        async move {
            seen.lock().await.push(now);
            Ok::<_, String>(Ran::Idle)
        }
    }));
    settle().await;
    assert_eq!(*runs.lock().await, vec![start()], "runs at once when started");
    clock.advance(chrono::Duration::minutes(9));
    settle().await;
    assert_eq!(runs.lock().await.len(), 1, "not due before ten minutes");
    clock.advance(chrono::Duration::minutes(1));
    settle().await;
    assert_eq!(*runs.lock().await, vec![start(), start() + chrono::Duration::minutes(10)]);
    // A restart after downtime: one jump of a day is one run, not 144 catching up.
    clock.advance(chrono::Duration::days(1));
    settle().await;
    assert_eq!(runs.lock().await.len(), 3);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), job).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_wake_up_runs_the_job_at_once_and_more_work_runs_again() {
    let clock = TestClock::at(start());
    let wake = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let runner = Runner::new("test", clock.shared(), Duration::from_secs(3600)).woken_by(wake.clone());
    let count = runs.clone();
    let job = tokio::spawn(runner.run(stopped, move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        // The first run says there is more: the second follows without waiting.
        async move { Ok::<_, String>(if n == 1 { Ran::More } else { Ran::Idle }) }
    }));
    eventually("two runs", || runs.load(Ordering::SeqCst) == 2).await;
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "idle until woken or due");
    wake.notify_one();
    eventually("a third run after the wake-up", || runs.load(Ordering::SeqCst) == 3).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), job).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_run_in_hand_finish() {
    let clock = TestClock::at(start());
    let (release, released) = watch::channel(false);
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = watch::channel(false);
    let runner = Runner::new("test", clock.shared(), Duration::from_secs(60));
    let (s, f) = (started.clone(), finished.clone());
    let job = tokio::spawn(runner.run(stopped, move |_| {
        let (s, f, mut released) = (s.clone(), f.clone(), released.clone());
        async move {
            s.store(true, Ordering::SeqCst);
            while !*released.borrow() {
                released.changed().await.map_err(|e| e.to_string())?;
            }
            f.store(true, Ordering::SeqCst);
            Ok::<_, String>(Ran::Idle)
        }
    }));
    eventually("the run started", || started.load(Ordering::SeqCst)).await;
    stop.send(true).unwrap();
    settle().await;
    assert!(!job.is_finished(), "the runner waits for the run in hand");
    release.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), job).await.unwrap().unwrap();
    assert!(finished.load(Ordering::SeqCst), "the run was finished, not cut off");
}

#[tokio::test]
async fn leased_work_runs_on_one_replica_and_stops_when_its_lease_is_taken_over() {
    let store = sqlite().await;
    let clock = TestClock::at(start());
    let lease = |owner: &str| Lease {
        store: store.clone(),
        clock: clock.shared(),
        name: "job:test".into(),
        owner: owner.into(),
        length: Duration::from_secs(60),
    };
    let started = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = watch::channel(false);

    /// Marks the work dropped when the future holding it goes away unfinished.
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let runner = Runner::new("leased", clock.shared(), Duration::from_secs(3600)).leased(lease("a"));
    let (s, d) = (started.clone(), dropped.clone());
    let job = tokio::spawn(runner.run(stopped, move |_| {
        let (s, d) = (s.clone(), d.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            let _flag = DropFlag(d);
            // Works "forever": only losing the lease (or the test ending) stops it.
            std::future::pending::<()>().await;
            Ok::<_, String>(Ran::Idle)
        }
    }));
    eventually("the leased run started", || started.load(Ordering::SeqCst) == 1).await;

    // Another replica cannot take the job while it is held, however often it asks...
    let other = lease("b");
    let busy = other.hold(async {}).await;
    assert!(matches!(busy, Err(attest_jobs::LeaseError::Busy(_))), "{busy:?}");
    // ...and renewals keep it held past its first length.
    for _ in 0..6 {
        clock.advance(chrono::Duration::seconds(20));
        settle().await;
    }
    assert!(!dropped.load(Ordering::SeqCst), "renewed while working");
    let now = clock.now();
    assert!(
        !store.leases().acquire_job_lease("job:test", "b", now + chrono::Duration::seconds(60), now).await.unwrap()
    );

    // Replica "a" is presumed dead (its lease looked expired to "b") and "b" takes over: at
    // its next renewal "a" finds the lease gone and its work is stopped.
    let later = now + chrono::Duration::seconds(61);
    assert!(
        store.leases().acquire_job_lease("job:test", "b", later + chrono::Duration::seconds(60), later).await.unwrap()
    );
    clock.advance(chrono::Duration::seconds(20));
    eventually("the work was stopped", || dropped.load(Ordering::SeqCst)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), job).await.unwrap().unwrap();
}
