//! Server messages the fake sends, built from the transport's wire types.

use std::time::Duration;

use gemini_transport::wire::{
    Content, FunctionCall, InteractionStatus, Modality, ModalityTokenCount, Part, Role,
    ServerContent, ServerMessage, ServerPayload, SessionResumptionUpdate, SetupComplete, ToolCall,
    ToolCallCancellation, Transcription, UsageMetadata, VoiceActivity, VoiceActivityType,
};

use crate::script::OUTPUT_RATE;

/// `{"setupComplete": {}}`, with `sessionId` on Vertex.
pub(crate) fn setup_complete(session_id: Option<String>) -> ServerMessage {
    ServerMessage::new(ServerPayload::SetupComplete(SetupComplete { session_id }))
}

/// `{"voiceActivity": {"type": …}}`.
pub(crate) fn voice_activity(kind: VoiceActivityType) -> ServerMessage {
    ServerMessage::new(ServerPayload::VoiceActivity(VoiceActivity {
        activity_type: kind,
        audio_offset: None,
    }))
}

/// A `modelTurn` text chunk.
pub(crate) fn text_chunk(text: &str) -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        model_turn: Some(Content::new(Role::Model, vec![Part::text(text)])),
        ..ServerContent::default()
    })
}

/// A `modelTurn` audio chunk.
pub(crate) fn audio_chunk(pcm: Vec<u8>) -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        model_turn: Some(Content::new(
            Role::Model,
            vec![Part::inline_data(
                format!("audio/pcm;rate={OUTPUT_RATE}"),
                pcm,
            )],
        )),
        ..ServerContent::default()
    })
}

/// An `outputTranscription` chunk.
pub(crate) fn output_transcription(text: &str) -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        output_transcription: Some(Transcription::new(text)),
        ..ServerContent::default()
    })
}

/// An audio chunk and its transcription in one frame (3.x packing).
pub(crate) fn packed_audio_chunk(pcm: Vec<u8>, text: &str) -> ServerMessage {
    let mut message = audio_chunk(pcm);
    if let Some(ServerPayload::ServerContent(content)) = message.payload.as_mut() {
        content.output_transcription = Some(Transcription::new(text));
    }
    message
}

/// A finished `inputTranscription` of user speech.
pub(crate) fn input_transcription(text: &str) -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        input_transcription: Some(Transcription {
            text: text.to_owned(),
            finished: true,
        }),
        ..ServerContent::default()
    })
}

/// `{"serverContent": {"generationComplete": true}}`.
pub(crate) fn generation_complete() -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        generation_complete: true,
        ..ServerContent::default()
    })
}

/// `{"serverContent": {"interrupted": true}}`.
pub(crate) fn interrupted() -> ServerMessage {
    ServerMessage::server_content(ServerContent {
        interrupted: true,
        ..ServerContent::default()
    })
}

/// Token counts of one turn, as sent beside `turnComplete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt: u32,
    pub(crate) response: u32,
    pub(crate) audio: bool,
    pub(crate) vertex: bool,
}

/// `{"serverContent": {"turnComplete": true}, "usageMetadata": {...}}`, with
/// `interactionStatus` on the families that send it.
pub(crate) fn turn_complete(usage: Usage, status: Option<InteractionStatus>) -> ServerMessage {
    let mut message = ServerMessage::server_content(ServerContent {
        turn_complete: true,
        interaction_status: status,
        ..ServerContent::default()
    });
    let modality = if usage.audio {
        Modality::Audio
    } else {
        Modality::Text
    };
    let details = vec![ModalityTokenCount {
        modality: modality.clone(),
        token_count: usage.response,
    }];
    let mut metadata = UsageMetadata {
        prompt_token_count: Some(usage.prompt),
        total_token_count: Some(usage.prompt.saturating_add(usage.response)),
        prompt_tokens_details: vec![ModalityTokenCount {
            modality: Modality::Text,
            token_count: usage.prompt,
        }],
        ..UsageMetadata::default()
    };
    // Vertex renames the response counters.
    if usage.vertex {
        metadata.candidates_token_count = Some(usage.response);
        metadata.candidates_tokens_details = details;
    } else {
        metadata.response_token_count = Some(usage.response);
        metadata.response_tokens_details = details;
    }
    message.usage_metadata = Some(metadata);
    message
}

/// `{"toolCall": {"functionCalls": [...]}}`.
pub(crate) fn tool_call(calls: Vec<FunctionCall>) -> ServerMessage {
    ServerMessage::new(ServerPayload::ToolCall(ToolCall {
        function_calls: calls,
    }))
}

/// `{"toolCallCancellation": {"ids": [...]}}`.
pub(crate) fn tool_call_cancellation(ids: Vec<String>) -> ServerMessage {
    ServerMessage::new(ServerPayload::ToolCallCancellation(ToolCallCancellation {
        ids,
    }))
}

/// `{"goAway": {"timeLeft": "Ns"}}`.
pub(crate) fn go_away(time_left: Duration) -> ServerMessage {
    ServerMessage::go_away(time_left)
}

/// A `sessionResumptionUpdate`: resumable with a handle, or `{}` (plus the index in transparent
/// mode).
pub(crate) fn resumption_update(
    handle: Option<String>,
    last_consumed: Option<u64>,
) -> ServerMessage {
    ServerMessage::new(ServerPayload::SessionResumptionUpdate(
        SessionResumptionUpdate {
            resumable: handle.is_some(),
            new_handle: handle,
            last_consumed_client_message_index: last_consumed,
        },
    ))
}
