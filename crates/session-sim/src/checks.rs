//! The invariant, checked once a schedule has settled: the server's session (read from the
//! fake's own state, never from the client's model of it) against the application's context
//! and events.

use std::collections::HashMap;
use std::fmt;

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
    /// Where the microphone's audio went (the simulator only: over sockets, what was lost
    /// in flight is not known).
    pub audio: Option<AudioTally>,
}

/// Bytes of microphone audio: pushed by the application, and where they went.
#[derive(Debug, Clone, Copy, Default)]
pub struct AudioTally {
    /// Pushed by the application.
    pub pushed: u64,
    /// Received by the server (its own records).
    pub received: u64,
    /// Reported dropped (`AudioDropped`), and in how many reports.
    pub dropped: u64,
    /// See `dropped`.
    pub drops: u64,
    /// On the wire when its connection broke.
    pub lost_in_flight: u64,
    /// Framed for a connection that could no longer take it.
    pub unsent: u64,
    /// Still waiting in the shell's audio path.
    pub held: u64,
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

/// Every byte of microphone audio reached the server, was reported dropped, was lost on the
/// wire with its connection, or still waits; none was sent twice (a report's duration may
/// round by a byte).
fn audio(t: &AudioTally, found: &mut Vec<Violation>) {
    let accounted = t.received + t.dropped + t.lost_in_flight + t.held;
    if t.unsent > 0 || accounted + t.drops < t.pushed {
        found.push(Violation::new(
            "audio lost",
            format!(
                "{t:?}: {} bytes unaccounted for",
                t.pushed.saturating_sub(accounted)
            ),
        ));
    }
    if t.received > t.pushed || accounted > t.pushed + t.drops {
        found.push(Violation::new(
            "audio twice",
            format!(
                "{t:?}: {} bytes more than pushed",
                accounted.saturating_sub(t.pushed)
            ),
        ));
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
    session
        .context()
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
    let Some(session) = o.current.as_ref() else {
        if !o.context.is_empty() {
            found.push(Violation::new(
                "context",
                "no server session, but L is not empty".to_owned(),
            ));
        }
        return;
    };
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
    let server = s_entries(session);
    let gave_up = o.gave_up;
    // Walk the server's context: each entry is the next expected one, or an item named by a
    // divergence (which may or may not be on the server), or, once the session gave up,
    // output the client never received.
    let mut next = 0;
    let mut actual = Vec::new();
    for entry in server {
        if expected.get(next) == Some(&entry) {
            next += 1;
            actual.push(entry);
        } else if let Some(at) = excused.iter().position(|e| *e == entry) {
            excused.remove(at);
        } else if !gave_up {
            actual.push(entry);
        }
    }
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
                gemini_fake::ResponseFate::Accepted | gemini_fake::ResponseFate::Cancelled => {}
                fate => found.push(Violation::new(
                    "tool response",
                    format!("session {id}: response for {} was {fate:?}", r.id),
                )),
            }
        }
    }
    // The application runs a tool once per turn that asked for it.
    let mut runs: HashMap<String, Vec<&str>> = HashMap::new();
    for call in &o.calls {
        if let Some(prompt) = prompt_of.get(call) {
            runs.entry(prompt.clone()).or_default().push(call);
        }
    }
    for (prompt, calls) in runs {
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

fn reconnect_pairs(o: &Observed, found: &mut Vec<Violation>) {
    let mut open = false;
    for (at, event) in o.events.iter().enumerate() {
        match event {
            SessionEvent::Reconnecting { .. } => {
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
    if open {
        found.push(Violation::new(
            "events",
            "a Reconnecting never followed by Reconnected or Closed".to_owned(),
        ));
    }
}
