//! Lenient decoder for server frames (what the client reads).

use serde_json::Value;

use super::decode::{
    DecodeErrorKind, Mode, Obj, Path, array, boolean, duration, integer, parse_frame, string,
    to_camel, wire_enum,
};
use super::decode_content::{content, function_call};
use super::server::{
    GoAway, GroundingChunk, GroundingMetadata, ModalityTokenCount, SearchEntryPoint, ServerContent,
    ServerMessage, ServerPayload, SessionResumptionUpdate, SetupComplete, ToolCall,
    ToolCallCancellation, Transcription, UrlContextMetadata, UrlMetadata, UsageMetadata,
    VoiceActivity, WebSource,
};
use super::setup::Modality;
use crate::Error;

const MODE: Mode = Mode::Lenient;

pub(crate) fn server_message(bytes: &[u8]) -> Result<ServerMessage, Error> {
    let frame = parse_frame(bytes)?;
    let root = Path::Root;
    let map = match &frame {
        Value::Object(map) => map,
        other => {
            return Err(root.err(DecodeErrorKind::WrongType {
                expected: "object",
                found: super::decode::type_name(other),
            }));
        }
    };
    let mut out = ServerMessage::default();
    for (key, value) in map {
        let name = to_camel(key);
        if value.is_null() {
            continue;
        }
        let path = root.key(&name);
        let payload = match name.as_str() {
            "usageMetadata" => {
                out.usage_metadata = Some(usage_metadata(value, &path)?);
                continue;
            }
            "setupComplete" => ServerPayload::SetupComplete(setup_complete(value, &path)?),
            "serverContent" => {
                ServerPayload::ServerContent(Box::new(server_content(value, &path)?))
            }
            "toolCall" => ServerPayload::ToolCall(tool_call(value, &path)?),
            "toolCallCancellation" => {
                ServerPayload::ToolCallCancellation(tool_call_cancellation(value, &path)?)
            }
            "goAway" => ServerPayload::GoAway(go_away(value, &path)?),
            "sessionResumptionUpdate" => {
                ServerPayload::SessionResumptionUpdate(resumption_update(value, &path)?)
            }
            "voiceActivity" => ServerPayload::VoiceActivity(voice_activity(value, &path)?),
            _ => ServerPayload::Unknown {
                member: key.clone(),
            },
        };
        // A known member wins over an unknown one; two known members are an error.
        match (&out.payload, &payload) {
            (None, _) | (Some(ServerPayload::Unknown { .. }), _) => out.payload = Some(payload),
            (Some(_), ServerPayload::Unknown { .. }) => {}
            (Some(first), second) => {
                return Err(root.err(DecodeErrorKind::TwoMembers {
                    first: first.member_name().to_owned(),
                    second: second.member_name().to_owned(),
                }));
            }
        }
    }
    Ok(out)
}

fn setup_complete(v: &Value, path: &Path<'_>) -> Result<SetupComplete, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = SetupComplete::default();
    if let Some(v) = o.get("sessionId")? {
        let id = string(v, &path.key("sessionId"))?;
        out.session_id = (!id.is_empty()).then_some(id);
    }
    Ok(out)
}

fn server_content(v: &Value, path: &Path<'_>) -> Result<ServerContent, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ServerContent::default();
    if let Some(v) = o.get("modelTurn")? {
        out.model_turn = Some(content(v, &path.key("modelTurn"), MODE)?);
    }
    if let Some(v) = o.get("generationComplete")? {
        out.generation_complete = boolean(v, &path.key("generationComplete"))?;
    }
    if let Some(v) = o.get("turnComplete")? {
        out.turn_complete = boolean(v, &path.key("turnComplete"))?;
    }
    if let Some(v) = o.get("interrupted")? {
        out.interrupted = boolean(v, &path.key("interrupted"))?;
    }
    if let Some(v) = o.get("groundingMetadata")? {
        out.grounding_metadata = Some(grounding_metadata(v, &path.key("groundingMetadata"))?);
    }
    if let Some(v) = o.get("inputTranscription")? {
        out.input_transcription = Some(transcription(v, &path.key("inputTranscription"))?);
    }
    if let Some(v) = o.get("interimInputTranscription")? {
        out.interim_input_transcription =
            Some(transcription(v, &path.key("interimInputTranscription"))?);
    }
    if let Some(v) = o.get("outputTranscription")? {
        out.output_transcription = Some(transcription(v, &path.key("outputTranscription"))?);
    }
    if let Some(v) = o.get("urlContextMetadata")? {
        out.url_context_metadata = Some(url_context_metadata(v, &path.key("urlContextMetadata"))?);
    }
    if let Some(v) = o.get("waitingForInput")? {
        out.waiting_for_input = boolean(v, &path.key("waitingForInput"))?;
    }
    if let Some(v) = o.get("turnCompleteReason")? {
        out.turn_complete_reason = Some(wire_enum(v, &path.key("turnCompleteReason"))?);
    }
    if let Some(v) = o.get("interactionStatus")? {
        out.interaction_status = Some(wire_enum(v, &path.key("interactionStatus"))?);
    }
    Ok(out)
}

fn transcription(v: &Value, path: &Path<'_>) -> Result<Transcription, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = Transcription::default();
    if let Some(v) = o.get("text")? {
        out.text = string(v, &path.key("text"))?;
    }
    if let Some(v) = o.get("finished")? {
        out.finished = boolean(v, &path.key("finished"))?;
    }
    Ok(out)
}

fn grounding_metadata(v: &Value, path: &Path<'_>) -> Result<GroundingMetadata, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = GroundingMetadata::default();
    if let Some(v) = o.get("groundingChunks")? {
        out.grounding_chunks = array(v, &path.key("groundingChunks"), grounding_chunk)?;
    }
    if let Some(v) = o.get("searchEntryPoint")? {
        let p = path.key("searchEntryPoint");
        let mut s = Obj::new(v, &p, MODE)?;
        let mut entry = SearchEntryPoint::default();
        if let Some(v) = s.get("renderedContent")? {
            entry.rendered_content = string(v, &p.key("renderedContent"))?;
        }
        out.search_entry_point = Some(entry);
    }
    if let Some(v) = o.get("webSearchQueries")? {
        out.web_search_queries = array(v, &path.key("webSearchQueries"), string)?;
    }
    Ok(out)
}

fn grounding_chunk(v: &Value, path: &Path<'_>) -> Result<GroundingChunk, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = GroundingChunk::default();
    if let Some(v) = o.get("web")? {
        let p = path.key("web");
        let mut w = Obj::new(v, &p, MODE)?;
        let mut web = WebSource::default();
        if let Some(v) = w.get("title")? {
            web.title = string(v, &p.key("title"))?;
        }
        if let Some(v) = w.get("uri")? {
            web.uri = string(v, &p.key("uri"))?;
        }
        out.web = Some(web);
    }
    Ok(out)
}

fn url_context_metadata(v: &Value, path: &Path<'_>) -> Result<UrlContextMetadata, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = UrlContextMetadata::default();
    if let Some(v) = o.get("urlMetadata")? {
        out.url_metadata = array(v, &path.key("urlMetadata"), |v, p| {
            let mut u = Obj::new(v, p, MODE)?;
            let mut m = UrlMetadata::default();
            if let Some(v) = u.get("retrievedUrl")? {
                m.retrieved_url = string(v, &p.key("retrievedUrl"))?;
            }
            if let Some(v) = u.get("urlRetrievalStatus")? {
                m.url_retrieval_status = string(v, &p.key("urlRetrievalStatus"))?;
            }
            Ok(m)
        })?;
    }
    Ok(out)
}

fn tool_call(v: &Value, path: &Path<'_>) -> Result<ToolCall, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ToolCall::default();
    if let Some(v) = o.get("functionCalls")? {
        out.function_calls = array(v, &path.key("functionCalls"), |v, p| {
            function_call(v, p, MODE)
        })?;
    }
    Ok(out)
}

fn tool_call_cancellation(v: &Value, path: &Path<'_>) -> Result<ToolCallCancellation, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ToolCallCancellation::default();
    if let Some(v) = o.get("ids")? {
        out.ids = array(v, &path.key("ids"), string)?;
    }
    Ok(out)
}

fn go_away(v: &Value, path: &Path<'_>) -> Result<GoAway, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = GoAway::default();
    if let Some(v) = o.get("timeLeft")? {
        out.time_left = duration(v, &path.key("timeLeft"))?;
    }
    Ok(out)
}

fn resumption_update(v: &Value, path: &Path<'_>) -> Result<SessionResumptionUpdate, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = SessionResumptionUpdate::default();
    if let Some(v) = o.get("newHandle")? {
        let handle = string(v, &path.key("newHandle"))?;
        out.new_handle = (!handle.is_empty()).then_some(handle);
    }
    if let Some(v) = o.get("resumable")? {
        out.resumable = boolean(v, &path.key("resumable"))?;
    }
    if let Some(v) = o.get("lastConsumedClientMessageIndex")? {
        out.last_consumed_client_message_index =
            Some(integer(v, &path.key("lastConsumedClientMessageIndex"))?);
    }
    Ok(out)
}

fn voice_activity(v: &Value, path: &Path<'_>) -> Result<VoiceActivity, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let activity_type = match o.get("type")? {
        Some(v) => wire_enum(v, &path.key("type"))?,
        None => super::server::VoiceActivityType::Unspecified,
    };
    let audio_offset = match o.get("audioOffset")? {
        Some(v) => Some(duration(v, &path.key("audioOffset"))?),
        None => None,
    };
    Ok(VoiceActivity {
        activity_type,
        audio_offset,
    })
}

fn usage_metadata(v: &Value, path: &Path<'_>) -> Result<UsageMetadata, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = UsageMetadata::default();
    let counts: [(&'static str, &mut Option<u32>); 7] = [
        ("promptTokenCount", &mut out.prompt_token_count),
        (
            "cachedContentTokenCount",
            &mut out.cached_content_token_count,
        ),
        ("responseTokenCount", &mut out.response_token_count),
        ("candidatesTokenCount", &mut out.candidates_token_count),
        (
            "toolUsePromptTokenCount",
            &mut out.tool_use_prompt_token_count,
        ),
        ("thoughtsTokenCount", &mut out.thoughts_token_count),
        ("totalTokenCount", &mut out.total_token_count),
    ];
    for (name, slot) in counts {
        if let Some(v) = o.get(name)? {
            *slot = Some(integer(v, &path.key(name))?);
        }
    }
    let details: [(&'static str, &mut Vec<ModalityTokenCount>); 5] = [
        ("promptTokensDetails", &mut out.prompt_tokens_details),
        ("cacheTokensDetails", &mut out.cache_tokens_details),
        ("responseTokensDetails", &mut out.response_tokens_details),
        (
            "candidatesTokensDetails",
            &mut out.candidates_tokens_details,
        ),
        (
            "toolUsePromptTokensDetails",
            &mut out.tool_use_prompt_tokens_details,
        ),
    ];
    for (name, slot) in details {
        if let Some(v) = o.get(name)? {
            *slot = array(v, &path.key(name), modality_token_count)?;
        }
    }
    Ok(out)
}

fn modality_token_count(v: &Value, path: &Path<'_>) -> Result<ModalityTokenCount, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let modality = match o.get("modality")? {
        Some(v) => wire_enum(v, &path.key("modality"))?,
        None => Modality::Unspecified,
    };
    let token_count = match o.get("tokenCount")? {
        Some(v) => integer(v, &path.key("tokenCount"))?,
        None => 0,
    };
    Ok(ModalityTokenCount {
        modality,
        token_count,
    })
}
