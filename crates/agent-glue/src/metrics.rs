//! The session's counters, from the events it emits: kept for [`LiveSession::metrics`] and
//! reported through the [`metrics`] facade (see [`SessionMetrics`]).
//!
//! [`LiveSession::metrics`]: crate::LiveSession::metrics

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::{ReconnectReason, ReconnectStrategy, SessionEvent};

/// The session's counters since it started ([`LiveSession::metrics`](crate::LiveSession::metrics)).
///
/// The same figures go, as they happen, to the [`metrics`](https://docs.rs/metrics) facade (a
/// no-op until the application installs a recorder):
///
/// | name | kind | labels |
/// |---|---|---|
/// | `gemini_live_reconnects_total` | counter | `reason`: `go_away`, `connection_lost`, `message_too_large`, `connection_age`, `config_change` |
/// | `gemini_live_operations_replayed_total` | counter | |
/// | `gemini_live_operations_uncertain_total` | counter | |
/// | `gemini_live_operations_lost_total` | counter | |
/// | `gemini_live_reconnect_gap_seconds` | histogram | `strategy`: `resumed`, `fresh` |
/// | `gemini_live_audio_dropped_milliseconds_total` | counter | `side`: `input` (microphone audio not delivered), `output` (model audio shed for a slow reader) |
/// | `gemini_live_divergences_total` | counter | |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionMetrics {
    /// Reconnects begun, by reason (the `reason` label's values).
    pub reconnects: BTreeMap<&'static str, u64>,
    /// Operations the reconnects' plans sent again.
    pub replayed: u64,
    /// Operations a reconnect could not tell whether the server held.
    pub uncertain: u64,
    /// Operations a reconnect reported lost.
    pub lost: u64,
    /// Reconnects completed.
    pub reconnected: u64,
    /// The longest gap a reconnect left (from the old connection's end to the new one's
    /// setup).
    pub longest_gap: Duration,
    /// All gaps together.
    pub total_gap: Duration,
    /// Microphone audio reported not delivered (`AudioDropped`).
    pub audio_dropped: Duration,
    /// Model audio shed because the application read too slowly (`ModelAudioDropped`).
    pub model_audio_dropped: Duration,
    /// `Divergence` events.
    pub divergences: u64,
}

impl SessionMetrics {
    /// Counts `event`, and reports it through the facade.
    pub(crate) fn observe(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Reconnecting { reason } => {
                let name = reason_name(reason);
                *self.reconnects.entry(name).or_default() += 1;
                metrics::counter!("gemini_live_reconnects_total", "reason" => name).increment(1);
            }
            SessionEvent::Reconnected(report) => {
                let count = |ops: &[resume_policy::OpId]| u64::try_from(ops.len()).unwrap_or(0);
                let (replayed, uncertain, lost) = (
                    count(&report.replayed),
                    count(&report.uncertain),
                    count(&report.lost),
                );
                self.reconnected += 1;
                self.replayed += replayed;
                self.uncertain += uncertain;
                self.lost += lost;
                self.longest_gap = self.longest_gap.max(report.gap);
                self.total_gap = self.total_gap.saturating_add(report.gap);
                metrics::counter!("gemini_live_operations_replayed_total").increment(replayed);
                metrics::counter!("gemini_live_operations_uncertain_total").increment(uncertain);
                metrics::counter!("gemini_live_operations_lost_total").increment(lost);
                let strategy = match report.strategy {
                    ReconnectStrategy::Resumed => "resumed",
                    _ => "fresh",
                };
                metrics::histogram!("gemini_live_reconnect_gap_seconds", "strategy" => strategy)
                    .record(report.gap.as_secs_f64());
            }
            SessionEvent::AudioDropped { duration } => {
                self.audio_dropped = self.audio_dropped.saturating_add(*duration);
                metrics::counter!("gemini_live_audio_dropped_milliseconds_total", "side" => "input")
                    .increment(whole_ms(*duration));
            }
            SessionEvent::Divergence { .. } => {
                self.divergences += 1;
                metrics::counter!("gemini_live_divergences_total").increment(1);
            }
            _ => {}
        }
    }
}

/// Model audio the event queue shed (it counts it itself: the events never pass the session).
pub(crate) fn model_audio_shed(duration: Duration) {
    metrics::counter!("gemini_live_audio_dropped_milliseconds_total", "side" => "output")
        .increment(whole_ms(duration));
}

fn whole_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The `reason` label of a reconnect.
fn reason_name(reason: &ReconnectReason) -> &'static str {
    match reason {
        ReconnectReason::GoAway { .. } => "go_away",
        ReconnectReason::ConnectionLost { .. } => "connection_lost",
        ReconnectReason::MessageTooLarge { .. } => "message_too_large",
        ReconnectReason::ConnectionAge { .. } => "connection_age",
        ReconnectReason::ConfigChange => "config_change",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}
