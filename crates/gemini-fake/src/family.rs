//! Model families and the capability table the fake enforces.
//!
//! The table mirrors docs/protocol.md section 10 and docs/design.md section 6. Violations close
//! the socket with the service's code (1007), so a client plan that breaks a family's rules fails
//! loudly in tests.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A family of Live models that behave alike on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Family {
    /// Gemini 2.5 native audio: `clientContent` at any time, one content field per frame.
    #[default]
    Gemini25,
    /// Gemini 3.1 flash live (strict, as first released): `clientContent` only as initial history
    /// (with `historyConfig.initialHistoryInClientContent`), no `contextUpdate`.
    Gemini31,
    /// Gemini 3.8 live: `clientContent` at any time and `contextUpdate`.
    Gemini38,
}

/// What a family allows; read by the connection for every client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `clientContent` is accepted outside the initial-history phase.
    pub client_content_mid_session: bool,
    /// `contextUpdate` is accepted.
    pub context_update: bool,
    /// Several `serverContent` fields share one frame (audio chunk plus its transcription).
    pub packs_server_content: bool,
}

impl Family {
    /// Every family, oldest first.
    pub const ALL: [Family; 3] = [Family::Gemini25, Family::Gemini31, Family::Gemini38];

    /// The capability table row of this family.
    #[must_use]
    pub fn capabilities(self) -> Capabilities {
        match self {
            Family::Gemini25 => Capabilities {
                client_content_mid_session: true,
                context_update: false,
                packs_server_content: false,
            },
            Family::Gemini31 => Capabilities {
                client_content_mid_session: false,
                context_update: false,
                packs_server_content: true,
            },
            Family::Gemini38 => Capabilities {
                client_content_mid_session: true,
                context_update: true,
                packs_server_content: true,
            },
        }
    }

    /// The bare model ids (without `models/`) the fake accepts for this family.
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
        }
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

    /// The short name used on the command line: `2.5`, `3.1` or `3.8`.
    #[must_use]
    pub fn short_name(self) -> &'static str {
        match self {
            Family::Gemini25 => "2.5",
            Family::Gemini31 => "3.1",
            Family::Gemini38 => "3.8",
        }
    }
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
                reason: format!("`{s}` is not one of 2.5, 3.1, 3.8"),
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
