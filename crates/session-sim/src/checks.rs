//! The invariant, checked once a schedule has settled: the server's session (read from the
//! fake's own state, never from the client's model of it) against the application's context
//! and events.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use agent_glue::SessionEvent;
use ctx_model::{ChatContext, Item, Role};
use gemini_fake::{Part, Role as ServerRole, SessionSnapshot};
use serde_json::{Map, Value};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its class (`context`, `context after giving up`, `tool run twice`, `answered twice`,
    /// …).
    pub class: &'static str,
    /// What exactly.
    pub detail: String,
}

impl Violation {
    /// A violation of `class`.
    pub fn new(class: &'static str, detail: String) -> Self {
        Self { class, detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.detail)
    }
}

/// What a run left behind, as the checks read it: the application's side (its context, the
/// events it saw, the calls it ran) and the server's, read from the fake's own state.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `L` at the end.
    pub context: ChatContext,
    /// Earlier versions of items the application edited (as `L` held them before the edit):
    /// an item a divergence names may be on the server in any version `L` had.
    pub prior_versions: Vec<Item>,
    /// The session's events without media, in order.
    pub events: Vec<SessionEvent>,
    /// The tool call ids the application was asked to run, in order.
    pub calls: Vec<String>,
    /// Commands that failed for another reason than a closed session.
    pub command_errors: Vec<String>,
    /// Payloads the server rejected (1007/1008 after a completed setup).
    pub rejections: Vec<String>,
    /// Every server session.
    pub sessions: Vec<SessionSnapshot>,
    /// The session of the client's last set-up connection.
    pub current: Option<SessionSnapshot>,
    /// The application's latest instructions and tool names.
    pub instructions: Option<String>,
    /// See `instructions`.
    pub tools: Vec<String>,
    /// The session gave up reconnecting.
    pub gave_up: bool,
    /// The session ran a `DefaultPolicy`: every divergence must carry a reason it documents
    /// as undeliverable ([`resume_policy::UNDELIVERABLE`]).
    pub default_policy: bool,
    /// Where the microphone's audio went (the simulator only: over sockets, which bytes a
    /// frame lost with its connection carried is not known).
    pub audio: Option<AudioTally>,
    /// Where each worker after the first took the session over, as indices into `events`:
    /// the event checks run per worker (a killed worker's last reconnect never ends).
    pub owners: Vec<usize>,
    /// For each of `calls`, the lineage of the worker that ran it: a worker that took the
    /// session over after an unclean end (killed, its lease lost, its final save failed) starts a
    /// new lineage. A call the previous worker received and never saved is unknown to the
    /// next one, which may deliver its turn again and run the tool again: once per lineage.
    pub call_lineages: Vec<u64>,
}

/// Where every byte of microphone audio went, each byte named by its offset in everything the
/// application pushed (the simulator only: it knows which bytes each frame carried).
#[derive(Debug, Clone, Default)]
pub struct AudioTally {
    /// Bytes pushed by the application.
    pub pushed: u64,
    /// What the server received, by its own records (each received frame matched, content
    /// and all, to the frame written in its place on its connection). Overlaps are bytes
    /// received twice.
    pub received: Vec<Range<u64>>,
    /// Written on a connection and not received by the server: lost with the connection.
    pub lost: Vec<Range<u64>>,
    /// What the reports of unconfirmed audio cover (the last bytes written on their
    /// connection, as many as each report says).
    pub unconfirmed: Vec<Range<u64>>,
    /// Dropped at a buffer's bound before it was written.
    pub dropped: Vec<Range<u64>>,
    /// Bytes the session still holds, not written.
    pub waiting: u64,
    /// Reports of unconfirmed audio that reach back before the connection's last receipt
    /// (a pong the client had received).
    pub over_reported: Vec<String>,
    /// Server records that do not match what was written (altered, extra, out of place).
    pub mismatches: Vec<String>,
    /// `AudioDropped` events: how many, and their total in bytes.
    pub reports: u64,
    /// See `reports`.
    pub reported_bytes: u64,
    /// The total in bytes of what the session says those events were about.
    pub audited_bytes: u64,
}

/// The union of `ranges`, sorted and merged.
fn union(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

fn size(ranges: &[Range<u64>]) -> u64 {
    ranges.iter().map(|r| r.end - r.start).sum()
}

/// Bytes of `a` (merged) that are not in `b` (merged), and the first such range.
fn minus(a: &[Range<u64>], b: &[Range<u64>]) -> (u64, Option<Range<u64>>) {
    let mut missing = 0;
    let mut first = None;
    let mut j = 0;
    for r in a {
        let mut at = r.start;
        while j < b.len() && b[j].end <= at {
            j += 1;
        }
        let mut k = j;
        while at < r.end {
            match b.get(k) {
                Some(c) if c.start < r.end => {
                    if c.start > at {
                        missing += c.start - at;
                        first.get_or_insert(at..c.start);
                    }
                    at = at.max(c.end);
                    k += 1;
                }
                _ => {
                    missing += r.end - at;
                    first.get_or_insert(at..r.end);
                    at = r.end;
                }
            }
        }
    }
    (missing, first)
}

/// Every byte of microphone audio pushed was received by the server once (its own records),
/// or written on a connection that ended and covered by a report of unconfirmed audio, or
/// dropped at a bound and reported, or still waits in the session; no byte twice, no loss the
/// application was not told about. Reports may cover audio that did arrive, but only audio
/// written after the connection's last receipt.
fn audio(t: &AudioTally, found: &mut Vec<Violation>) {
    for mismatch in &t.mismatches {
        found.push(Violation::new("audio altered", mismatch.clone()));
    }
    let received = union(&t.received);
    let twice = size(&t.received) - size(&received);
    if twice > 0 {
        found.push(Violation::new(
            "audio twice",
            format!("{twice} bytes received more than once"),
        ));
    }
    let lost = union(&t.lost);
    let (unreported, first) = minus(&lost, &union(&t.unconfirmed));
    if unreported > 0 {
        found.push(Violation::new(
            "audio lost",
            format!(
                "{unreported} bytes written on a connection that ended were neither received nor reported (first: {first:?})"
            ),
        ));
    }
    let written = union(&[received.clone(), lost].concat());
    let dropped = union(&t.dropped);
    let (dropped_alone, _) = minus(&dropped, &written);
    if dropped_alone < size(&dropped) {
        found.push(Violation::new(
            "audio twice",
            format!(
                "{} bytes reported dropped at a bound were written",
                size(&dropped) - dropped_alone
            ),
        ));
    }
    let accounted = size(&union(&[written, dropped].concat()));
    let unaccounted = t.pushed.saturating_sub(accounted);
    if unaccounted != t.waiting {
        found.push(Violation::new(
            "audio lost",
            format!(
                "{unaccounted} bytes pushed were neither written nor dropped, and {} still wait",
                t.waiting
            ),
        ));
    }
    for over in &t.over_reported {
        found.push(Violation::new("audio over-reported", over.clone()));
    }
    // A report's duration may round by a byte.
    if t.reported_bytes.abs_diff(t.audited_bytes) > t.reports {
        found.push(Violation::new(
            "audio reports",
            format!(
                "AudioDropped events say {} bytes, the losses behind them {} bytes",
                t.reported_bytes, t.audited_bytes
            ),
        ));
    }
}

impl Observed {
    /// The ids of items named by divergence events.
    fn diverged_items(&self) -> std::collections::HashSet<ctx_model::ItemId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Divergence { items, .. } => Some(items.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// One part of a context, as both sides can be compared.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Text {
        user: bool,
        text: String,
    },
    Call {
        id: String,
        name: String,
    },
    Response {
        id: String,
        name: String,
        response: Value,
    },
    Other(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Text { user, text } => {
                write!(f, "{}: {text}", if *user { "user" } else { "model" })
            }
            Entry::Call { id, name } => write!(f, "call {id} {name}"),
            Entry::Response { id, name, response } => write!(f, "response {id} {name} {response}"),
            Entry::Other(what) => write!(f, "other {what}"),
        }
    }
}

fn l_entries(item: &Item) -> Vec<Entry> {
    match item {
        Item::Message(m) => m
            .parts
            .iter()
            .filter_map(|p| p.as_text())
            .map(|text| Entry::Text {
                user: m.role == Role::User,
                text: text.to_owned(),
            })
            .collect(),
        Item::FunctionCall(c) => vec![Entry::Call {
            id: c.call_id.clone(),
            name: c.name.clone(),
        }],
        Item::FunctionOutput(o) => {
            // As the client puts it on the wire: an object as it is, else wrapped.
            let response = match (&o.output, o.is_error) {
                (Value::Object(map), false) => Value::Object(map.clone()),
                (value, error) => {
                    let mut map = Map::new();
                    map.insert(
                        if error { "error" } else { "output" }.to_owned(),
                        value.clone(),
                    );
                    Value::Object(map)
                }
            };
            vec![Entry::Response {
                id: o.call_id.clone(),
                name: o.name.clone(),
                response,
            }]
        }
    }
}

fn s_entries(session: &SessionSnapshot) -> Vec<Entry> {
    turn_entries(session.context())
}

/// The entries of `turns`, in order.
fn turn_entries(turns: &[gemini_fake::Turn]) -> Vec<Entry> {
    turns
        .iter()
        .flat_map(|turn| {
            let user = turn.role == ServerRole::User;
            turn.parts.iter().map(move |part| match part {
                Part::Text(text) | Part::AudioTranscript(text) => Entry::Text {
                    user,
                    text: text.clone(),
                },
                Part::FunctionCall { id, name, .. } => Entry::Call {
                    id: id.clone(),
                    name: name.clone(),
                },
                Part::FunctionResponse { id, name, response } => Entry::Response {
                    id: id.clone(),
                    name: name.clone(),
                    response: response.clone(),
                },
                other => Entry::Other(format!("{other:?}")),
            })
        })
        .collect()
}

/// Every check of the invariant.
pub fn check(o: &Observed) -> Vec<Violation> {
    let mut found = Vec::new();
    if let Some(tally) = &o.audio {
        audio(tally, &mut found);
    }
    context(o, &mut found);
    tools_and_answers(o, &mut found);
    reconnect_pairs(o, &mut found);
    one_interrupted_per_turn(o, &mut found);
    if o.default_policy {
        divergence_reasons(o, &mut found);
    }
    for rejection in &o.rejections {
        found.push(Violation::new("rejected payload", rejection.clone()));
    }
    for error in &o.command_errors {
        found.push(Violation::new("command error", error.clone()));
    }
    for s in &o.sessions {
        if s.overlaps() > 0 {
            found.push(Violation::new(
                "two sockets",
                format!(
                    "session {} saw {} overlapping connections",
                    s.id(),
                    s.overlaps()
                ),
            ));
        }
    }
    if let (Some(session), false) = (&o.current, o.gave_up) {
        if session.system_instruction() != o.instructions.as_deref() {
            found.push(Violation::new(
                "configuration",
                format!(
                    "server instructions {:?}, application's {:?}",
                    session.system_instruction(),
                    o.instructions
                ),
            ));
        }
        if session.tools() != o.tools.as_slice() {
            found.push(Violation::new(
                "configuration",
                format!(
                    "server tools {:?}, application's {:?}",
                    session.tools(),
                    o.tools
                ),
            ));
        }
    }
    found
}

fn context(o: &Observed, found: &mut Vec<Violation>) {
    // A session that gave up without a server session (a new owner that never connected and
    // had no handle) must have reported all of `L`: it is walked against an empty context.
    let session = o.current.as_ref();
    if session.is_none() && !o.gave_up {
        if !o.context.is_empty() {
            found.push(Violation::new(
                "context",
                "no server session, but L is not empty".to_owned(),
            ));
        }
        return;
    }
    let diverged = o.diverged_items();
    let mut expected = Vec::new();
    let mut excused = Vec::new();
    for item in o.context.iter() {
        let entries = l_entries(item);
        if diverged.contains(item.id()) {
            excused.extend(entries);
        } else {
            expected.extend(entries);
        }
    }
    for item in o
        .prior_versions
        .iter()
        .filter(|i| diverged.contains(i.id()))
    {
        excused.extend(l_entries(item));
    }
    let server = session.map(s_entries).unwrap_or_default();
    let gave_up = o.gave_up;
    // With compression the server forgot its oldest turns: `L` is expected from where the
    // server's context begins, never in part or out of order after that.
    if let Some(session) = session.filter(|s| !s.trims().is_empty()) {
        // What the server forgot: the turns its trims removed.
        let forgotten: Vec<Entry> = session
            .trims()
            .iter()
            .flat_map(|trim| turn_entries(&trim.removed))
            .collect();
        let k = forgotten_prefix(&expected, &excused, &server, &forgotten, gave_up);
        expected.drain(..k);
    }
    let (next, actual) = walk(&expected, excused, &server, gave_up);
    if gave_up {
        if next < expected.len() {
            found.push(Violation::new(
                "context after giving up",
                format!(
                    "after giving up, {} is neither on the server (in order) nor reported",
                    expected[next]
                ),
            ));
        }
        return;
    }
    if expected != actual {
        let first = expected
            .iter()
            .zip(actual.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(actual.len()));
        let show = |v: &[Entry]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        };
        found.push(Violation::new(
            "context",
            format!(
                "L != S from entry {first}\n      L: {}\n      S: {}",
                show(&expected),
                show(&actual)
            ),
        ));
    }
}

/// With compression, how many of `expected`'s first entries the server forgot: the fewest
/// that are all among the entries its trims removed (`forgotten`) and after which the rest of
/// `expected` matches the server's context. Only forgotten entries may be missing at the
/// front; a loss anywhere else is still a violation.
fn forgotten_prefix(
    expected: &[Entry],
    excused: &[Entry],
    server: &[Entry],
    forgotten: &[Entry],
    gave_up: bool,
) -> usize {
    let forgettable = |k: usize| {
        let mut left = forgotten.to_vec();
        expected[..k]
            .iter()
            .all(|e| match left.iter().position(|f| f == e) {
                Some(at) => {
                    left.swap_remove(at);
                    true
                }
                None => false,
            })
    };
    let fits = |k: usize| {
        let (next, actual) = walk(&expected[k..], excused.to_vec(), server, gave_up);
        if gave_up {
            next == expected.len() - k
        } else {
            actual == expected[k..]
        }
    };
    (0..=expected.len())
        .take_while(|&k| forgettable(k))
        .find(|&k| fits(k))
        .unwrap_or(0)
}

/// Walks the server's context against `expected`: each entry is the next expected one, or an
/// item named by a divergence (`excused`: it may or may not be on the server), or, once the
/// session gave up, output the client never received. Returns how many expected entries were
/// met in order, and the server's entries the walk did not excuse.
fn walk(
    expected: &[Entry],
    mut excused: Vec<Entry>,
    server: &[Entry],
    gave_up: bool,
) -> (usize, Vec<Entry>) {
    let mut next = 0;
    let mut actual = Vec::new();
    for entry in server {
        if expected.get(next) == Some(entry) {
            next += 1;
            actual.push(entry.clone());
        } else if let Some(at) = excused.iter().position(|e| e == entry) {
            excused.remove(at);
        } else if !gave_up {
            actual.push(entry.clone());
        }
    }
    (next, actual)
}

fn tools_and_answers(o: &Observed, found: &mut Vec<Violation>) {
    let mut prompt_of: HashMap<String, String> = HashMap::new();
    for s in &o.sessions {
        let id = s.id();
        for call in s.tool_calls() {
            prompt_of.insert(call.id.clone(), call.prompt.clone());
        }
        // A response the session ignored as a duplicate or for a call it never issued was
        // sent wrongly. (The same response accepted again on a resumed branch whose handle
        // did not hold it is a correct replay: the context check sees it once.)
        for r in s.tool_responses() {
            match r.fate {
                gemini_fake::ResponseFate::Accepted
                | gemini_fake::ResponseFate::Interim
                | gemini_fake::ResponseFate::Cancelled => {}
                fate => found.push(Violation::new(
                    "tool response",
                    format!("session {id}: response for {} was {fate:?}", r.id),
                )),
            }
        }
    }
    // The application runs a tool once per turn that asked for it.
    let mut runs: HashMap<(String, u64), Vec<&str>> = HashMap::new();
    for (k, call) in o.calls.iter().enumerate() {
        if let Some(prompt) = prompt_of.get(call) {
            let lineage = o.call_lineages.get(k).copied().unwrap_or(0);
            runs.entry((prompt.clone(), lineage))
                .or_default()
                .push(call);
        }
    }
    for ((prompt, _), calls) in runs {
        if calls.len() > 1 {
            found.push(Violation::new(
                "tool run twice",
                format!("the turn {prompt:?} made the application run {calls:?}"),
            ));
        }
    }
    // No turn answered twice in what the application heard.
    let mut answers: HashMap<String, u32> = HashMap::new();
    for item in o.context.iter() {
        if let Some(m) = item.as_message().filter(|m| m.role == Role::Model) {
            let text = m.text();
            // An echo is keyed by the turn it answers ("echo: t7 …"); a tool answer by its
            // whole text, once complete (it names the call's result).
            let key = match text.strip_prefix("echo: ") {
                Some(rest) => rest.split(' ').next().unwrap_or_default().to_owned(),
                None if text.contains("r-call-") => text.clone(),
                None => continue,
            };
            if !key.starts_with('t') && !key.contains("r-call-") {
                continue;
            }
            *answers.entry(key).or_default() += 1;
        }
    }
    for (turn, n) in answers {
        if n > 1 {
            found.push(Violation::new(
                "answered twice",
                format!("{turn:?} answered {n} times in L"),
            ));
        }
    }
}

/// Under the default policy, a divergence only for a reason the protocol cannot deliver.
fn divergence_reasons(o: &Observed, found: &mut Vec<Violation>) {
    for event in &o.events {
        if let SessionEvent::Divergence { why, items, .. } = event {
            if !resume_policy::UNDELIVERABLE.contains(why) {
                found.push(Violation::new(
                    "divergence reason",
                    format!("{why:?} is not a reason the default policy documents as undeliverable (items {items:?})"),
                ));
            }
        }
    }
}

/// The application is told once that a turn was cut off: between two turn boundaries (a
/// `TurnComplete`, a new connection, the end), at most one `Interrupted` (scenario S46).
fn one_interrupted_per_turn(o: &Observed, found: &mut Vec<Violation>) {
    let mut cut = false;
    for (at, event) in o.events.iter().enumerate() {
        if o.owners.contains(&at) {
            cut = false;
        }
        match event {
            SessionEvent::Interrupted if cut => found.push(Violation::new(
                "events",
                format!("event {at}: a second Interrupted for one turn"),
            )),
            SessionEvent::Interrupted => cut = true,
            SessionEvent::TurnComplete
            | SessionEvent::Reconnected(_)
            | SessionEvent::Closed { .. } => cut = false,
            _ => {}
        }
    }
}

fn reconnect_pairs(o: &Observed, found: &mut Vec<Violation>) {
    let mut open = false;
    let mut opened_at = 0;
    for (at, event) in o.events.iter().enumerate() {
        if o.owners.contains(&at) {
            // The worker before ended (killed, drained or lease lost) with what it had open.
            open = false;
        }
        match event {
            SessionEvent::Reconnecting { .. } => {
                opened_at = at;
                if open {
                    found.push(Violation::new(
                        "events",
                        format!("event {at}: Reconnecting before the previous reconnect ended"),
                    ));
                }
                open = true;
            }
            SessionEvent::Reconnected(_) => {
                if !open {
                    found.push(Violation::new(
                        "events",
                        format!("event {at}: Reconnected without Reconnecting"),
                    ));
                }
                open = false;
            }
            SessionEvent::Closed { .. } => open = false,
            _ => {}
        }
    }
    if open && !o.owners.iter().any(|&k| k > opened_at) {
        found.push(Violation::new(
            "events",
            "a Reconnecting never followed by Reconnected or Closed".to_owned(),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn tally() -> AudioTally {
        AudioTally {
            pushed: 100,
            received: vec![0..40],
            lost: vec![40..60],
            unconfirmed: vec![40..70],
            dropped: vec![90..100],
            waiting: 30,
            ..AudioTally::default()
        }
    }

    fn classes(t: &AudioTally) -> Vec<&'static str> {
        let mut found = Vec::new();
        audio(t, &mut found);
        found.iter().map(|v| v.class).collect()
    }

    fn text(t: &str) -> super::Entry {
        super::Entry::Text {
            user: true,
            text: t.to_owned(),
        }
    }

    /// Compression excuses only what the server's trims removed: L = a b c d e, the server
    /// forgot a and holds e; b, c and d were lost, and the check must see it.
    #[test]
    fn only_what_a_trim_removed_may_be_missing() {
        let expected: Vec<_> = ["a", "b", "c", "d", "e"].map(text).to_vec();
        let server = vec![text("e")];
        let k = super::forgotten_prefix(&expected, &[], &server, &[text("a")], false);
        assert_eq!(
            k, 0,
            "b, c and d were never forgotten: no prefix is excused"
        );
        let k = super::forgotten_prefix(&expected, &[], &server, &[text("a")], true);
        assert_eq!(k, 0, "nor after giving up");
        let server = vec![text("b"), text("c"), text("d"), text("e")];
        let k = super::forgotten_prefix(&expected, &[], &server, &[text("a")], false);
        assert_eq!(k, 1, "a was forgotten");
    }

    #[test]
    fn every_byte_is_received_reported_or_waiting() {
        assert!(classes(&tally()).is_empty());
        assert_eq!(minus(&[0..10, 20..30], &[5..25]), (10, Some(0..5)));
        assert_eq!(union(&[20..30, 0..10, 5..12]), vec![0..12, 20..30]);
    }

    #[test]
    fn an_unreported_loss_a_byte_twice_or_a_silent_drop_is_a_violation() {
        let mut t = tally();
        t.unconfirmed = vec![50..70];
        assert_eq!(classes(&t), ["audio lost"]);
        let mut t = tally();
        t.received.push(30..41);
        assert!(classes(&t).contains(&"audio twice"));
        let mut t = tally();
        t.waiting = 20;
        assert_eq!(classes(&t), ["audio lost"]);
        let mut t = tally();
        t.reports = 1;
        t.reported_bytes = 10;
        assert_eq!(classes(&t), ["audio reports"]);
    }
}
