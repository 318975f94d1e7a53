//! The session's counters: readable from the session, and reported through the `metrics`
//! facade to the recorder the application installs (one global recorder per process, so one
//! test in this binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use agent_glue::SessionEvent;
use common::{server, session};
use gemini_fake::Family;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
};
use metrics::{SharedString, Unit};
use resume_policy::DefaultPolicy;

/// Every counter increment and histogram value, by name and labels.
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, u64>>,
    histograms: Mutex<BTreeMap<String, Vec<f64>>>,
}

struct Handle {
    key: String,
    recorded: Arc<Recorded>,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .recorded
            .counters
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.recorded
            .counters
            .lock()
            .unwrap()
            .insert(self.key.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.recorded
            .histograms
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .push(value);
    }
}

struct TestRecorder(Arc<Recorded>);

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle {
            key: name(key),
            recorded: Arc::clone(&self.0),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle {
            key: name(key),
            recorded: Arc::clone(&self.0),
        }))
    }
}

/// A dropped connection: one reconnect for `connection_lost`, one gap, the typed turn sent
/// while down replayed once; the session's own counters and the recorder's agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_is_counted_in_the_session_and_through_the_facade() {
    let recorded = Arc::new(Recorded::default());
    metrics::set_global_recorder(TestRecorder(Arc::clone(&recorded))).expect("first recorder");
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        session(&server, Box::new(DefaultPolicy::default()), Vec::new()).await;
    assert_eq!(session.metrics(), agent_glue::SessionMetrics::default());
    server.faults().drop_connections();
    while !matches!(
        events.recv().await.expect("open"),
        SessionEvent::Reconnecting { .. }
    ) {}
    session.send_text("sent while down").unwrap();
    let report = loop {
        if let SessionEvent::Reconnected(report) = events.recv().await.expect("open") {
            break report;
        }
    };
    assert_eq!(report.replayed.len(), 1, "{report:?}");
    let metrics = session.metrics();
    assert_eq!(
        metrics.reconnects.get("connection_lost"),
        Some(&1),
        "{metrics:?}"
    );
    assert_eq!(
        (metrics.reconnected, metrics.replayed, metrics.lost),
        (1, 1, 0)
    );
    assert!(metrics.longest_gap > std::time::Duration::ZERO);
    let counters = recorded.counters.lock().unwrap().clone();
    assert_eq!(
        counters.get("gemini_live_reconnects_total{reason=connection_lost}"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("gemini_live_operations_replayed_total{}"),
        Some(&1)
    );
    let gaps = recorded.histograms.lock().unwrap().clone();
    let resumed = gaps
        .get("gemini_live_reconnect_gap_seconds{strategy=resumed}")
        .expect("a gap recorded");
    assert_eq!(resumed.len(), 1);
    assert!((resumed[0] - metrics.longest_gap.as_secs_f64()).abs() < 1e-9);
}
