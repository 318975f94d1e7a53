//! Strict decoder for client frames (what `gemini-fake` uses to validate a client).

use serde_json::Value;

use super::client::{ClientContent, ClientMessage, ContextUpdate, RealtimeInput, ToolResponse};
use super::decode::{
    DecodeErrorKind, Mode, Obj, Path, array, boolean, float, integer, is_snake_of, parse_frame,
    string, wire_enum,
};
use super::decode_content::{blob, content, function_response, tool};
use super::setup::{
    AudioTranscriptionConfig, AutomaticActivityDetection, ContextWindowCompression,
    GenerationConfig, HistoryConfig, PrebuiltVoiceConfig, ProactivityConfig, RealtimeInputConfig,
    SafetySetting, SessionResumptionConfig, Setup, SlidingWindow, SpeechConfig, ThinkingConfig,
    VoiceConfig,
};
use crate::Error;

const MODE: Mode = Mode::Strict;

pub(crate) fn client_message(bytes: &[u8]) -> Result<ClientMessage, Error> {
    let frame = parse_frame(bytes)?;
    let root = Path::Root;
    let (member, value) = Obj::single_member(&frame, &root)?;
    let path = root.key(&member);
    match member.as_str() {
        "setup" => Ok(ClientMessage::Setup(Box::new(setup(value, &path)?))),
        "clientContent" => Ok(ClientMessage::ClientContent(client_content(value, &path)?)),
        "realtimeInput" => Ok(ClientMessage::RealtimeInput(realtime_input(value, &path)?)),
        "toolResponse" => Ok(ClientMessage::ToolResponse(tool_response(value, &path)?)),
        "contextUpdate" => Ok(ClientMessage::ContextUpdate(context_update(value, &path)?)),
        _ => Err(path.err(DecodeErrorKind::UnknownField)),
    }
}

fn setup(v: &Value, path: &Path<'_>) -> Result<Setup, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = Setup::default();
    match o.get("model")? {
        Some(v) => out.model = string(v, &path.key("model"))?,
        None => return Err(path.key("model").err(DecodeErrorKind::Missing)),
    }
    if let Some(v) = o.get("generationConfig")? {
        out.generation_config = Some(generation_config(v, &path.key("generationConfig"))?);
    }
    if let Some(v) = o.get("systemInstruction")? {
        out.system_instruction = Some(content(v, &path.key("systemInstruction"), MODE)?);
    }
    if let Some(v) = o.get("tools")? {
        out.tools = array(v, &path.key("tools"), |v, p| tool(v, p, MODE))?;
    }
    if let Some(v) = o.get("realtimeInputConfig")? {
        out.realtime_input_config =
            Some(realtime_input_config(v, &path.key("realtimeInputConfig"))?);
    }
    if let Some(v) = o.get("sessionResumption")? {
        out.session_resumption = Some(session_resumption(v, &path.key("sessionResumption"))?);
    }
    if let Some(v) = o.get("contextWindowCompression")? {
        out.context_window_compression = Some(context_window_compression(
            v,
            &path.key("contextWindowCompression"),
        )?);
    }
    if let Some(v) = o.get("inputAudioTranscription")? {
        out.input_audio_transcription = Some(transcription_config(
            v,
            &path.key("inputAudioTranscription"),
        )?);
    }
    if let Some(v) = o.get("outputAudioTranscription")? {
        out.output_audio_transcription = Some(transcription_config(
            v,
            &path.key("outputAudioTranscription"),
        )?);
    }
    if let Some(v) = o.get("proactivity")? {
        out.proactivity = Some(proactivity(v, &path.key("proactivity"))?);
    }
    if let Some(v) = o.get("historyConfig")? {
        out.history_config = Some(history_config(v, &path.key("historyConfig"))?);
    }
    if let Some(v) = o.get("explicitVadSignal")? {
        out.explicit_vad_signal = Some(boolean(v, &path.key("explicitVadSignal"))?);
    }
    if let Some(v) = o.get("safetySettings")? {
        out.safety_settings = array(v, &path.key("safetySettings"), safety_setting)?;
    }
    if let Some(v) = o.get("labels")? {
        let p = path.key("labels");
        let map = v.as_object().ok_or_else(|| {
            p.err(DecodeErrorKind::WrongType {
                expected: "object",
                found: super::decode::type_name(v),
            })
        })?;
        for (k, v) in map {
            out.labels.insert(k.clone(), string(v, &p.key(k))?);
        }
    }
    o.finish()?;
    Ok(out)
}

fn generation_config(v: &Value, path: &Path<'_>) -> Result<GenerationConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = GenerationConfig::default();
    if let Some(v) = o.get("responseModalities")? {
        out.response_modalities = array(v, &path.key("responseModalities"), wire_enum)?;
    }
    if let Some(v) = o.get("speechConfig")? {
        out.speech_config = Some(speech_config(v, &path.key("speechConfig"))?);
    }
    if let Some(v) = o.get("thinkingConfig")? {
        out.thinking_config = Some(thinking_config(v, &path.key("thinkingConfig"))?);
    }
    if let Some(v) = o.get("enableAffectiveDialog")? {
        out.enable_affective_dialog = Some(boolean(v, &path.key("enableAffectiveDialog"))?);
    }
    if let Some(v) = o.get("temperature")? {
        out.temperature = Some(float(v, &path.key("temperature"))?);
    }
    if let Some(v) = o.get("topP")? {
        out.top_p = Some(float(v, &path.key("topP"))?);
    }
    if let Some(v) = o.get("topK")? {
        out.top_k = Some(integer(v, &path.key("topK"))?);
    }
    if let Some(v) = o.get("maxOutputTokens")? {
        out.max_output_tokens = Some(integer(v, &path.key("maxOutputTokens"))?);
    }
    if let Some(v) = o.get("seed")? {
        out.seed = Some(integer(v, &path.key("seed"))?);
    }
    if let Some(v) = o.get("candidateCount")? {
        out.candidate_count = Some(integer(v, &path.key("candidateCount"))?);
    }
    if let Some(v) = o.get("presencePenalty")? {
        out.presence_penalty = Some(float(v, &path.key("presencePenalty"))?);
    }
    if let Some(v) = o.get("frequencyPenalty")? {
        out.frequency_penalty = Some(float(v, &path.key("frequencyPenalty"))?);
    }
    if let Some(v) = o.get("mediaResolution")? {
        out.media_resolution = Some(wire_enum(v, &path.key("mediaResolution"))?);
    }
    o.finish()?;
    Ok(out)
}

fn speech_config(v: &Value, path: &Path<'_>) -> Result<SpeechConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = SpeechConfig::default();
    if let Some(v) = o.get("voiceConfig")? {
        let p = path.key("voiceConfig");
        let mut vo = Obj::new(v, &p, MODE)?;
        let mut voice = VoiceConfig::default();
        if let Some(v) = vo.get("prebuiltVoiceConfig")? {
            let pp = p.key("prebuiltVoiceConfig");
            let mut po = Obj::new(v, &pp, MODE)?;
            let mut prebuilt = PrebuiltVoiceConfig::default();
            if let Some(v) = po.get("voiceName")? {
                prebuilt.voice_name = string(v, &pp.key("voiceName"))?;
            }
            po.finish()?;
            voice.prebuilt_voice_config = Some(prebuilt);
        }
        vo.finish()?;
        out.voice_config = Some(voice);
    }
    if let Some(v) = o.get("languageCode")? {
        out.language_code = Some(string(v, &path.key("languageCode"))?);
    }
    o.finish()?;
    Ok(out)
}

fn thinking_config(v: &Value, path: &Path<'_>) -> Result<ThinkingConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ThinkingConfig::default();
    if let Some(v) = o.get("thinkingBudget")? {
        out.thinking_budget = Some(integer(v, &path.key("thinkingBudget"))?);
    }
    if let Some(v) = o.get("includeThoughts")? {
        out.include_thoughts = Some(boolean(v, &path.key("includeThoughts"))?);
    }
    if let Some(v) = o.get("thinkingLevel")? {
        out.thinking_level = Some(wire_enum(v, &path.key("thinkingLevel"))?);
    }
    o.finish()?;
    Ok(out)
}

fn realtime_input_config(v: &Value, path: &Path<'_>) -> Result<RealtimeInputConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = RealtimeInputConfig::default();
    if let Some(v) = o.get("automaticActivityDetection")? {
        let p = path.key("automaticActivityDetection");
        let mut a = Obj::new(v, &p, MODE)?;
        let mut aad = AutomaticActivityDetection::default();
        if let Some(v) = a.get("disabled")? {
            aad.disabled = Some(boolean(v, &p.key("disabled"))?);
        }
        if let Some(v) = a.get("startOfSpeechSensitivity")? {
            aad.start_of_speech_sensitivity =
                Some(wire_enum(v, &p.key("startOfSpeechSensitivity"))?);
        }
        if let Some(v) = a.get("endOfSpeechSensitivity")? {
            aad.end_of_speech_sensitivity = Some(wire_enum(v, &p.key("endOfSpeechSensitivity"))?);
        }
        if let Some(v) = a.get("prefixPaddingMs")? {
            aad.prefix_padding_ms = Some(integer(v, &p.key("prefixPaddingMs"))?);
        }
        if let Some(v) = a.get("silenceDurationMs")? {
            aad.silence_duration_ms = Some(integer(v, &p.key("silenceDurationMs"))?);
        }
        a.finish()?;
        out.automatic_activity_detection = Some(aad);
    }
    if let Some(v) = o.get("activityHandling")? {
        out.activity_handling = Some(wire_enum(v, &path.key("activityHandling"))?);
    }
    if let Some(v) = o.get("turnCoverage")? {
        out.turn_coverage = Some(wire_enum(v, &path.key("turnCoverage"))?);
    }
    o.finish()?;
    Ok(out)
}

fn session_resumption(v: &Value, path: &Path<'_>) -> Result<SessionResumptionConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = SessionResumptionConfig::default();
    if let Some(v) = o.get("handle")? {
        out.handle = Some(string(v, &path.key("handle"))?);
    }
    if let Some(v) = o.get("transparent")? {
        out.transparent = Some(boolean(v, &path.key("transparent"))?);
    }
    o.finish()?;
    Ok(out)
}

fn context_window_compression(
    v: &Value,
    path: &Path<'_>,
) -> Result<ContextWindowCompression, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ContextWindowCompression::default();
    if let Some(v) = o.get("triggerTokens")? {
        out.trigger_tokens = Some(integer(v, &path.key("triggerTokens"))?);
    }
    if let Some(v) = o.get("slidingWindow")? {
        let p = path.key("slidingWindow");
        let mut s = Obj::new(v, &p, MODE)?;
        let mut window = SlidingWindow::default();
        if let Some(v) = s.get("targetTokens")? {
            window.target_tokens = Some(integer(v, &p.key("targetTokens"))?);
        }
        s.finish()?;
        out.sliding_window = Some(window);
    }
    o.finish()?;
    Ok(out)
}

/// Opaque even to the strict decoder: fields other than `languageCodes` are kept as sent
/// (`AudioTranscriptionConfig::other`), as the service accepts them.
fn transcription_config(v: &Value, path: &Path<'_>) -> Result<AudioTranscriptionConfig, Error> {
    let mut o = Obj::new(v, path, Mode::Lenient)?;
    let mut out = AudioTranscriptionConfig::default();
    if let Some(v) = o.get("languageCodes")? {
        out.language_codes = array(v, &path.key("languageCodes"), string)?;
    }
    if let Value::Object(map) = v {
        out.other = map
            .iter()
            .filter(|(k, _)| k.as_str() != "languageCodes" && !is_snake_of(k, "languageCodes"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    Ok(out)
}

fn proactivity(v: &Value, path: &Path<'_>) -> Result<ProactivityConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ProactivityConfig::default();
    if let Some(v) = o.get("proactiveAudio")? {
        out.proactive_audio = Some(boolean(v, &path.key("proactiveAudio"))?);
    }
    if let Some(v) = o.get("proactiveVideo")? {
        out.proactive_video = Some(boolean(v, &path.key("proactiveVideo"))?);
    }
    o.finish()?;
    Ok(out)
}

fn history_config(v: &Value, path: &Path<'_>) -> Result<HistoryConfig, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = HistoryConfig::default();
    if let Some(v) = o.get("initialHistoryInClientContent")? {
        out.initial_history_in_client_content =
            Some(boolean(v, &path.key("initialHistoryInClientContent"))?);
    }
    o.finish()?;
    Ok(out)
}

fn safety_setting(v: &Value, path: &Path<'_>) -> Result<SafetySetting, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = SafetySetting::default();
    if let Some(v) = o.get("category")? {
        out.category = string(v, &path.key("category"))?;
    }
    if let Some(v) = o.get("threshold")? {
        out.threshold = string(v, &path.key("threshold"))?;
    }
    o.finish()?;
    Ok(out)
}

fn client_content(v: &Value, path: &Path<'_>) -> Result<ClientContent, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ClientContent::default();
    if let Some(v) = o.get("turns")? {
        out.turns = array(v, &path.key("turns"), |v, p| content(v, p, MODE))?;
    }
    if let Some(v) = o.get("turnComplete")? {
        out.turn_complete = boolean(v, &path.key("turnComplete"))?;
    }
    o.finish()?;
    Ok(out)
}

fn realtime_input(v: &Value, path: &Path<'_>) -> Result<RealtimeInput, Error> {
    let (member, value) = Obj::single_member(v, path)?;
    let p = path.key(&member);
    Ok(match member.as_str() {
        "audio" => RealtimeInput::Audio(blob(value, &p, MODE)?),
        "video" => RealtimeInput::Video(blob(value, &p, MODE)?),
        "text" => RealtimeInput::Text(string(value, &p)?),
        "activityStart" => {
            Obj::new(value, &p, MODE)?.finish()?;
            RealtimeInput::ActivityStart
        }
        "activityEnd" => {
            Obj::new(value, &p, MODE)?.finish()?;
            RealtimeInput::ActivityEnd
        }
        "audioStreamEnd" => {
            if !boolean(value, &p)? {
                return Err(path.err(DecodeErrorKind::NoMember));
            }
            RealtimeInput::AudioStreamEnd
        }
        "mediaChunks" => RealtimeInput::MediaChunks(array(value, &p, |v, p| blob(v, p, MODE))?),
        _ => return Err(p.err(DecodeErrorKind::UnknownField)),
    })
}

fn tool_response(v: &Value, path: &Path<'_>) -> Result<ToolResponse, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ToolResponse::default();
    if let Some(v) = o.get("functionResponses")? {
        out.function_responses = array(v, &path.key("functionResponses"), |v, p| {
            function_response(v, p, MODE)
        })?;
    }
    o.finish()?;
    Ok(out)
}

fn context_update(v: &Value, path: &Path<'_>) -> Result<ContextUpdate, Error> {
    let mut o = Obj::new(v, path, MODE)?;
    let mut out = ContextUpdate::default();
    if let Some(v) = o.get("systemInstruction")? {
        out.system_instruction = Some(content(v, &path.key("systemInstruction"), MODE)?);
    }
    if let Some(v) = o.get("tools")? {
        let p = path.key("tools");
        let mut w = Obj::new(v, &p, MODE)?;
        let tools = match w.get("tools")? {
            Some(list) => array(list, &p.key("tools"), |v, p| tool(v, p, MODE))?,
            None => Vec::new(),
        };
        w.finish()?;
        out.tools = Some(tools);
    }
    o.finish()?;
    Ok(out)
}
