//! A few schedules of the loopback soak (`session-sim --soak` runs hundreds): the same
//! operations and faults as the simulator, against a real `LiveSession` and `gemini-fake` over
//! sockets on 127.0.0.1, checked by the same invariant.

use session_sim::{Schedule, soak_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_schedules_keep_the_invariant() {
    let mut tasks = tokio::task::JoinSet::new();
    for seed in 0..8 {
        tasks.spawn(async move { (seed, soak_one(&Schedule::generate(seed)).await) });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (seed, violations) = done.expect("schedule task");
        if !violations.is_empty() {
            failures.push((seed, violations));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
