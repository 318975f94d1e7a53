//! The audio both directions carry, and the setup every kind sends.

use std::time::Duration;

use gemini_transport::wire::{
    ClientMessage, Modality, PartData, ServerMessage, ServerPayload, SessionResumptionConfig, Setup,
};

/// One microphone chunk: 20 ms.
pub const CHUNK: Duration = Duration::from_millis(20);

/// Bytes of one chunk: 20 ms of 16 kHz PCM16 mono.
pub const CHUNK_BYTES: usize = 640;

/// Model audio chunks the server streams back per session per second (40 ms each).
pub const MODEL_CHUNKS_PER_SECOND: f64 = 25.0;

/// Sample rate of the microphone audio.
pub(crate) const INPUT_RATE: u32 = 16_000;

/// A quiet, deterministic 20 ms chunk (a low sawtooth): what a microphone in a quiet room
/// sends. The server in load mode does not look at it.
pub(crate) fn microphone_chunk() -> Vec<u8> {
    (0..CHUNK_BYTES / 2)
        .flat_map(|i| {
            let sample = i16::try_from(i % 64).unwrap_or(0) - 32;
            sample.to_le_bytes()
        })
        .collect()
}

/// The setup `LiveSession` sends by default (audio out, session resumption on), as the bare
/// clients send it.
#[must_use]
pub fn setup_json(model: &str) -> String {
    let setup = Setup::new(model.to_owned())
        .with_response_modality(Modality::Audio)
        .with_session_resumption(SessionResumptionConfig::default());
    ClientMessage::setup(setup).to_json()
}

/// The very `setup` a `LiveSession` for `model` at `endpoint` sends on its first connection
/// (taken from its sans-IO core), so that the bare clients ask the server for the same work;
/// `None` if the builder refuses the model.
#[must_use]
pub fn live_setup_json(endpoint: &gemini_transport::Endpoint, model: &str) -> Option<String> {
    let mut core = agent_glue::LiveSession::builder(endpoint.clone(), model)
        .audio_chunk(CHUNK)
        .into_core(resume_policy::Millis(0), 1)
        .ok()?;
    match core.poll_action()? {
        agent_glue::conduit::Action::Open { setup, .. } => Some(setup.to_json()),
        _ => None,
    }
}

/// How many chunks of model audio a server message carries (`inlineData` parts of a model
/// turn with an `audio/` MIME type).
#[must_use]
pub fn model_audio_chunks(message: &ServerMessage) -> u64 {
    let Some(ServerPayload::ServerContent(content)) = &message.payload else {
        return 0;
    };
    let Some(turn) = &content.model_turn else {
        return 0;
    };
    let audio = turn.parts.iter().filter(|part| {
        matches!(&part.data, PartData::InlineData(blob) if blob.mime_type.starts_with("audio/"))
    });
    u64::try_from(audio.count()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_is_20ms_of_16khz_pcm16() {
        assert_eq!(microphone_chunk().len(), CHUNK_BYTES);
        assert_eq!(CHUNK_BYTES as u32, INPUT_RATE * 2 / 50);
        let setup = setup_json("models/x");
        assert!(
            setup.starts_with(r#"{"setup":{"model":"models/x""#),
            "{setup}"
        );
        assert!(setup.contains("sessionResumption"), "{setup}");
    }
}
