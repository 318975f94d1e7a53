//! The family rules a `setup` (or a `contextUpdate`) must follow, with the service's close
//! codes (docs/protocol.md section 10 and its table).

use gemini_transport::wire::Behavior;

use super::*;

/// The 1007 a family gives a setup that breaks its rules, if any.
pub(super) fn refuse_setup(caps: &Capabilities, request: &SetupRequest, vertex: bool) -> bool {
    let thinking = match caps.thinking_config {
        SetupRule::Accepted => false,
        SetupRule::Refused => request.thinking_config,
        SetupRule::Required => !request.thinking_level,
    };
    let text = caps.text_responses == SetupRule::Refused && request.modality == ResponseKind::Text;
    // Affective dialog is refused on the Developer API only (docs/protocol.md section 10.1).
    let affective =
        caps.affective_dialog == SetupRule::Refused && !vertex && request.affective_dialog;
    let proactive = caps.proactive_audio_off == SetupRule::Refused && request.proactive_audio_off;
    thinking || text || affective || proactive || refuse_declarations(caps, &request.behaviors)
}

/// Whether the declarations break the family's rules (`BLOCKING` on extended thinking).
pub(super) fn refuse_declarations(
    caps: &Capabilities,
    behaviors: &[(String, Option<Behavior>)],
) -> bool {
    caps.blocking_declaration == SetupRule::Refused
        && behaviors
            .iter()
            .any(|(_, behavior)| behavior.as_ref() == Some(&Behavior::Blocking))
}

/// The functions whose calls do not block, with the family's default applied.
pub(super) fn non_blocking(
    caps: &Capabilities,
    behaviors: &[(String, Option<Behavior>)],
) -> Vec<String> {
    behaviors
        .iter()
        .filter(|(_, behavior)| {
            caps.non_blocking_calls
                && match behavior {
                    Some(Behavior::Blocking) => false,
                    Some(Behavior::NonBlocking) => true,
                    _ => caps.non_blocking_by_default,
                }
        })
        .map(|(name, _)| name.clone())
        .collect()
}
