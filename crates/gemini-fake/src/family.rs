//! Model families and the capability table the fake enforces.
//!
//! One server serves every model: the family of a connection is chosen from the model id its
//! `setup` names ([`Family::from_model_id`]); an id no family has closes with 1008. The table
//! below is the fake's copy of docs/protocol.md section 10: [`Family::capability_table`] renders
//! it as the Markdown table that section holds, and `tests/family_table.rs` checks that the two
//! agree. Violations close the socket with the service's code (1007), so a client plan that
//! breaks a family's rules fails loudly in tests.

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// A family of Live models that behave alike on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Family {
    /// Gemini 2.5 native audio: `clientContent` at any time, one content field per frame.
    #[default]
    Gemini25,
    /// Gemini 3.1 flash live (strict, as first released): `clientContent` only as initial history
    /// (with `historyConfig.initialHistoryInClientContent`), no `contextUpdate`; lenient on
    /// request ([`FakeConfig::with_lenient_3_1`](crate::FakeConfig::with_lenient_3_1)).
    Gemini31,
    /// Gemini 3.8 live: `clientContent` at any time, `contextUpdate`, non-blocking tools by
    /// default, audio responses only, `interactionStatus` on every `turnComplete`.
    Gemini38,
    /// `gemini-3.8-live-extended-thinking`: the 3.8 rules, plus a required `thinkingLevel`,
    /// asynchronous tools only (no `BLOCKING`, no `scheduling`), turns that end `IN_PROGRESS`
    /// while a call is pending, and fillers while it waits.
    Gemini38ExtendedThinking,
}

/// How a setting is treated in `setup` (or a field in a message) on a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupRule {
    /// Accepted (and passed through).
    Accepted,
    /// Refused: the setup (or message) is closed with 1007.
    Refused,
    /// Required: a setup without it is closed with 1007.
    Required,
}

impl SetupRule {
    fn cell(self) -> &'static str {
        match self {
            SetupRule::Accepted => "accepted",
            SetupRule::Refused => "1007",
            SetupRule::Required => "required (1007 without)",
        }
    }
}

/// What a family allows; read by the connection for every client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `clientContent` is accepted outside the initial-history phase.
    pub client_content_mid_session: bool,
    /// `clientContent` without `turnComplete: true` cuts off a reply in progress (on 3.8 only a
    /// `clientContent` with `turnComplete: true` does; without it the model goes on).
    pub append_interrupts: bool,
    /// `contextUpdate` is accepted.
    pub context_update: bool,
    /// Several `serverContent` fields share one frame (audio chunk plus its transcription).
    pub packs_server_content: bool,
    /// A declaration without `behavior` is `NON_BLOCKING` (the model goes on after the call).
    pub non_blocking_by_default: bool,
    /// `behavior: NON_BLOCKING` is honoured (otherwise every call blocks).
    pub non_blocking_calls: bool,
    /// `behavior: BLOCKING` in a declaration.
    pub blocking_declaration: SetupRule,
    /// `scheduling` in a function response.
    pub scheduling: SetupRule,
    /// `generationConfig.thinkingConfig` (on extended thinking: with `thinkingLevel`).
    pub thinking_config: SetupRule,
    /// `TEXT` as the response modality.
    pub text_responses: SetupRule,
    /// `generationConfig.enableAffectiveDialog` (on the Developer API).
    pub affective_dialog: SetupRule,
    /// `proactivity.proactiveAudio: false`.
    pub proactive_audio_off: SetupRule,
    /// `interactionStatus` accompanies every `turnComplete`.
    pub interaction_status: bool,
    /// A turn completes `IN_PROGRESS` while a call is pending, and the model speaks fillers
    /// while it waits.
    pub in_progress_while_calls_pending: bool,
    /// `voiceActivity` start and end come from the server's activity detection.
    pub voice_activity: bool,
}

impl Family {
    /// Every family, oldest first.
    pub const ALL: [Family; 4] = [
        Family::Gemini25,
        Family::Gemini31,
        Family::Gemini38,
        Family::Gemini38ExtendedThinking,
    ];

    /// The capability table row of this family (3.1 as first released: strict).
    #[must_use]
    pub fn capabilities(self) -> Capabilities {
        let older = Capabilities {
            client_content_mid_session: true,
            append_interrupts: true,
            context_update: false,
            packs_server_content: false,
            non_blocking_by_default: false,
            non_blocking_calls: true,
            blocking_declaration: SetupRule::Accepted,
            scheduling: SetupRule::Accepted,
            thinking_config: SetupRule::Accepted,
            text_responses: SetupRule::Accepted,
            affective_dialog: SetupRule::Accepted,
            proactive_audio_off: SetupRule::Accepted,
            interaction_status: false,
            in_progress_while_calls_pending: false,
            voice_activity: false,
        };
        let gemini38 = Capabilities {
            client_content_mid_session: true,
            append_interrupts: false,
            context_update: true,
            packs_server_content: true,
            non_blocking_by_default: true,
            non_blocking_calls: true,
            blocking_declaration: SetupRule::Accepted,
            scheduling: SetupRule::Accepted,
            thinking_config: SetupRule::Refused,
            text_responses: SetupRule::Refused,
            affective_dialog: SetupRule::Refused,
            proactive_audio_off: SetupRule::Refused,
            interaction_status: true,
            in_progress_while_calls_pending: false,
            voice_activity: true,
        };
        match self {
            Family::Gemini25 => older,
            Family::Gemini31 => Capabilities {
                client_content_mid_session: false,
                packs_server_content: true,
                non_blocking_calls: false,
                voice_activity: true,
                ..older
            },
            Family::Gemini38 => gemini38,
            Family::Gemini38ExtendedThinking => Capabilities {
                blocking_declaration: SetupRule::Refused,
                scheduling: SetupRule::Refused,
                thinking_config: SetupRule::Required,
                in_progress_while_calls_pending: true,
                ..gemini38
            },
        }
    }

    /// The bare model ids (without `models/`) of this family on a surface.
    ///
    /// On Vertex the 2.5 family uses Vertex's own id; a Developer-API id on Vertex (or the
    /// reverse) is unknown and closes with 1008, as on the real service.
    #[must_use]
    pub fn model_ids(self, vertex: bool) -> &'static [&'static str] {
        match (self, vertex) {
            (Family::Gemini25, false) => &[
                "gemini-2.5-flash-native-audio-preview-12-2025",
                "gemini-2.5-flash-native-audio-preview-09-2025",
                "gemini-2.5-flash-native-audio-latest",
            ],
            (Family::Gemini25, true) => &["gemini-live-2.5-flash-native-audio"],
            (Family::Gemini31, _) => &["gemini-3.1-flash-live-preview"],
            (Family::Gemini38, _) => &["gemini-3.8-live"],
            (Family::Gemini38ExtendedThinking, _) => &["gemini-3.8-live-extended-thinking"],
        }
    }

    /// The family whose model this bare id names on a surface (`None`: unknown, 1008).
    #[must_use]
    pub fn from_model_id(bare_id: &str, vertex: bool) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|family| family.model_ids(vertex).contains(&bare_id))
    }

    /// The `setup.model` string a client should send for this family: `models/{id}` on the
    /// Developer API, a full publisher resource name on Vertex.
    #[must_use]
    pub fn setup_model(self, vertex: bool) -> String {
        let id = self.model_ids(vertex).first().copied().unwrap_or_default();
        if vertex {
            format!("projects/fake-project/locations/us-central1/publishers/google/models/{id}")
        } else {
            format!("models/{id}")
        }
    }

    /// The short name used on the command line: `2.5`, `3.1`, `3.8` or
    /// `3.8-extended-thinking`.
    #[must_use]
    pub fn short_name(self) -> &'static str {
        match self {
            Family::Gemini25 => "2.5",
            Family::Gemini31 => "3.1",
            Family::Gemini38 => "3.8",
            Family::Gemini38ExtendedThinking => "3.8-extended-thinking",
        }
    }

    /// Whether this is one of the 3.8 families.
    #[must_use]
    pub fn is_3_8(self) -> bool {
        matches!(self, Family::Gemini38 | Family::Gemini38ExtendedThinking)
    }

    /// How long a connection lives by default before the server ends it, with a `goAway`
    /// [`FakeConfig::with_go_away_lead`](crate::FakeConfig::with_go_away_lead) before the end:
    /// about ten minutes (docs/protocol.md section 7.1) on 2.5 and 3.1; none on 3.8, whose
    /// connections run to the hard close ([`Family::default_hard_close`]).
    #[must_use]
    pub fn default_lifetime(self) -> Option<Duration> {
        if self.is_3_8() {
            None
        } else {
            Some(Duration::from_secs(10 * 60))
        }
    }

    /// The connection age at which the server closes without a `goAway` (1011 `Deadline
    /// expired …`, compression or not): 58:00 on 3.8 (docs/protocol.md section 10.1), none
    /// elsewhere.
    #[must_use]
    pub fn default_hard_close(self) -> Option<Duration> {
        self.is_3_8().then_some(Duration::from_secs(58 * 60))
    }

    /// The fake's family table as the Markdown table docs/protocol.md section 10 holds
    /// (between the `fake-family-table` markers; `tests/family_table.rs` checks they agree).
    #[must_use]
    pub fn capability_table() -> String {
        let rows: [Row; 18] = [
            ("model ids (Developer API)", |f| ids(f.model_ids(false))),
            ("model ids (Vertex)", |f| ids(f.model_ids(true))),
            ("`clientContent` mid-session", |f| {
                if f.capabilities().client_content_mid_session {
                    "yes".to_owned()
                } else {
                    "initial history only (1007; `--lenient-3.1`: yes)".to_owned()
                }
            }),
            ("`clientContent` without `turnComplete` cuts a reply", |f| {
                yes_no(f.capabilities().append_interrupts)
            }),
            ("`contextUpdate`", |f| {
                accepted_or_1007(f.capabilities().context_update)
            }),
            ("several content fields per frame", |f| {
                yes_no(f.capabilities().packs_server_content)
            }),
            ("declaration without `behavior`", |f| {
                let caps = f.capabilities();
                if caps.non_blocking_by_default {
                    "NON_BLOCKING".to_owned()
                } else {
                    "BLOCKING".to_owned()
                }
            }),
            ("`behavior: NON_BLOCKING`", |f| {
                if f.capabilities().non_blocking_calls {
                    "honoured".to_owned()
                } else {
                    "ignored (calls block)".to_owned()
                }
            }),
            ("`behavior: BLOCKING`", |f| {
                f.capabilities().blocking_declaration.cell().to_owned()
            }),
            ("`scheduling` in a response", |f| {
                f.capabilities().scheduling.cell().to_owned()
            }),
            (
                "`thinkingConfig` (extended thinking: with `thinkingLevel`)",
                |f| f.capabilities().thinking_config.cell().to_owned(),
            ),
            ("`TEXT` responses", |f| {
                f.capabilities().text_responses.cell().to_owned()
            }),
            ("`enableAffectiveDialog` (Developer API)", |f| {
                f.capabilities().affective_dialog.cell().to_owned()
            }),
            ("`proactiveAudio: false`", |f| {
                f.capabilities().proactive_audio_off.cell().to_owned()
            }),
            ("`interactionStatus` with `turnComplete`", |f| {
                let caps = f.capabilities();
                match (
                    caps.interaction_status,
                    caps.in_progress_while_calls_pending,
                ) {
                    (false, _) => "no".to_owned(),
                    (true, false) => "`IDLE`".to_owned(),
                    (true, true) => "`IN_PROGRESS` while a call is pending, else `IDLE`".to_owned(),
                }
            }),
            ("`voiceActivity` events", |f| {
                yes_no(f.capabilities().voice_activity)
            }),
            ("connection lifetime (`goAway` 50 s before)", |f| {
                f.default_lifetime()
                    .map_or_else(|| "none".to_owned(), minutes)
            }),
            ("hard close (1011, no `goAway`)", |f| {
                f.default_hard_close()
                    .map_or_else(|| "none".to_owned(), minutes)
            }),
        ];
        let mut table = String::from("| |");
        for family in Family::ALL {
            let _ = write!(table, " {} |", family.short_name());
        }
        table.push_str("\n|---|");
        for _ in Family::ALL {
            table.push_str("---|");
        }
        table.push('\n');
        for (name, cell) in rows {
            let _ = write!(table, "| {name} |");
            for family in Family::ALL {
                let _ = write!(table, " {} |", cell(family));
            }
            table.push('\n');
        }
        table
    }
}

/// A row of the capability table: its name and how to fill a family's cell.
type Row = (&'static str, fn(Family) -> String);

fn ids(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_owned()
}

fn accepted_or_1007(accepted: bool) -> String {
    if accepted { "accepted" } else { "1007" }.to_owned()
}

fn minutes(duration: Duration) -> String {
    let secs = duration.as_secs();
    format!("{}:{:02}", secs / 60, secs % 60)
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

impl FromStr for Family {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|family| family.short_name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                field: "family".to_owned(),
                reason: format!("`{s}` is not one of 2.5, 3.1, 3.8, 3.8-extended-thinking"),
            })
    }
}

/// Strips `models/` or a Vertex resource prefix and returns the bare model id.
pub(crate) fn bare_model_id(model: &str) -> &str {
    match model.rfind("/models/") {
        Some(at) => &model[at + "/models/".len()..],
        None => model.strip_prefix("models/").unwrap_or(model),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip() {
        for family in Family::ALL {
            assert_eq!(family.short_name().parse::<Family>().unwrap(), family);
        }
        assert!("2.0".parse::<Family>().is_err());
    }

    #[test]
    fn bare_ids_from_both_surfaces() {
        assert_eq!(bare_model_id("models/gemini-3.8-live"), "gemini-3.8-live");
        assert_eq!(
            bare_model_id(&Family::Gemini25.setup_model(true)),
            "gemini-live-2.5-flash-native-audio"
        );
        assert_eq!(bare_model_id("gemini-3.8-live"), "gemini-3.8-live");
    }

    #[test]
    fn the_model_id_chooses_the_family() {
        for family in Family::ALL {
            for vertex in [false, true] {
                for id in family.model_ids(vertex) {
                    assert_eq!(Family::from_model_id(id, vertex), Some(family));
                }
            }
        }
        assert_eq!(
            Family::from_model_id("gemini-2.5-flash-native-audio-latest", true),
            None
        );
        assert_eq!(
            Family::from_model_id("gemini-2.0-flash-live-001", false),
            None
        );
    }

    #[test]
    fn only_3_1_forbids_mid_session_client_content() {
        let strict: Vec<_> = Family::ALL
            .into_iter()
            .filter(|f| !f.capabilities().client_content_mid_session)
            .collect();
        assert_eq!(strict, vec![Family::Gemini31]);
        assert!(Family::Gemini38.capabilities().context_update);
        assert!(!Family::Gemini25.capabilities().context_update);
    }
}
