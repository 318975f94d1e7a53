//! Client messages after `setup`.

use gemini_transport::wire::VoiceActivityType;

use super::*;
use crate::setup::function_behaviors;

/// A function response that answered (finally or for now) a pending call.
struct Taken {
    part: Part,
    blocking: bool,
    interim: bool,
    scheduling: Option<Scheduling>,
}

impl Conversation {
    pub(super) fn on_message(&mut self, message: ClientMessage) -> (Step, bool) {
        match message {
            ClientMessage::Setup(_) => (Step::invalid(), false),
            ClientMessage::ClientContent(content) => self.on_client_content(content),
            ClientMessage::RealtimeInput(input) => self.on_realtime(input),
            ClientMessage::ToolResponse(response) => {
                self.on_tool_response(response.function_responses)
            }
            ClientMessage::ContextUpdate(update) => self.on_context_update(update),
        }
    }

    pub(super) fn on_client_content(&mut self, content: ClientContent) -> (Step, bool) {
        let turns: Vec<Turn> = content.turns.iter().map(turn_from_wire).collect();
        if self.history_phase {
            self.with_session(|s| s.state.context.extend(turns));
            if content.turn_complete {
                self.history_phase = false;
            }
            // Seeded history is never answered.
            self.with_session(|s| s.state.answered_upto = s.state.context.len());
            return (Step::Continue, true);
        }
        if !self.caps.client_content_mid_session {
            return (Step::invalid(), false);
        }
        // Any `clientContent` cuts a reply in progress, except on 3.8, where only one with
        // `turnComplete: true` does; without it the model goes on (docs/protocol.md 10.1).
        if content.turn_complete || self.caps.append_interrupts {
            self.interrupt();
        } else {
            self.note_append();
        }
        self.with_session(|s| {
            // A model turn the client puts in the context (history it carries) answers the
            // user turns before it: they are not new input for the next generation.
            let answered = turns
                .iter()
                .rposition(|turn| turn.role == Role::Model)
                .map(|at| s.state.context.len() + at + 1);
            s.state.context.extend(turns);
            if let Some(upto) = answered {
                s.state.answered_upto = s.state.answered_upto.max(upto);
            }
        });
        if content.turn_complete {
            self.start_generation();
        }
        (Step::Continue, true)
    }

    pub(super) fn on_realtime(&mut self, input: RealtimeInput) -> (Step, bool) {
        let manual = self.setup.as_ref().is_some_and(|s| s.manual_activity);
        match input {
            RealtimeInput::Text(text) => {
                self.interrupt();
                self.with_session(|s| s.state.context.push(Turn::user_text(text)));
                self.start_generation();
                (Step::Continue, true)
            }
            RealtimeInput::Audio(blob) => {
                (Step::Continue, self.on_audio(&blob.data, &blob.mime_type))
            }
            RealtimeInput::MediaChunks(chunks) => match chunks.first() {
                Some(blob) if blob.mime_type.starts_with("audio/") => {
                    (Step::Continue, self.on_audio(&blob.data, &blob.mime_type))
                }
                _ => (Step::Continue, false),
            },
            RealtimeInput::Video(_) => {
                self.count_media(0.0, true);
                (Step::Continue, false)
            }
            RealtimeInput::ActivityStart | RealtimeInput::ActivityEnd if !manual => {
                (Step::invalid(), false)
            }
            RealtimeInput::ActivityStart => {
                self.barge_in();
                self.activity = Some(0.0);
                (Step::Continue, false)
            }
            RealtimeInput::ActivityEnd => match self.activity.take() {
                Some(seconds) => {
                    self.user_spoke(seconds);
                    (Step::Continue, true)
                }
                None => (Step::Continue, false),
            },
            RealtimeInput::AudioStreamEnd => match self.vad.flush() {
                Some(VadEvent::SpeechEnded { seconds }) if !manual => {
                    self.voice_activity(VoiceActivityType::ActivityEnd);
                    self.user_spoke(seconds);
                    (Step::Continue, true)
                }
                _ => (Step::Continue, false),
            },
        }
    }

    pub(super) fn on_audio(&mut self, pcm: &[u8], mime_type: &str) -> bool {
        let rate = vad::rate_of(mime_type);
        self.count_media(vad::duration_of(pcm, rate), false);
        if self.setup.as_ref().is_some_and(|s| s.manual_activity) {
            if let Some(seconds) = self.activity.as_mut() {
                *seconds += vad::duration_of(pcm, rate);
            }
            return false;
        }
        match self.vad.feed(pcm, rate) {
            Some(VadEvent::SpeechStarted) => {
                self.voice_activity(VoiceActivityType::ActivityStart);
                self.barge_in();
                false
            }
            Some(VadEvent::SpeechEnded { seconds }) => {
                self.voice_activity(VoiceActivityType::ActivityEnd);
                self.user_spoke(seconds);
                true
            }
            None => false,
        }
    }

    /// `voiceActivity` from the server's activity detection, on the families that send it.
    fn voice_activity(&mut self, kind: VoiceActivityType) {
        if self.caps.voice_activity {
            self.out.push(outbound::voice_activity(kind));
        }
    }

    /// Counts client audio (and notes video) against the session's limits without compression:
    /// past them the session ends (`crate::limits`).
    pub(super) fn count_media(&mut self, seconds: f64, video: bool) {
        let compressed = self.setup.as_ref().is_some_and(|s| s.compression.is_some());
        let limits = self.shared.config.limits;
        let over = self.with_session(|s| {
            s.audio_seconds += seconds;
            s.video |= video;
            let limit = if s.video {
                limits.audio_with_video
            } else {
                limits.audio_only
            };
            !compressed && s.audio_seconds > limit.as_secs_f64()
        });
        if over == Some(true) && self.close.is_none() {
            let (code, reason) = crate::limits::LIMIT_CLOSE;
            self.close = Some(Step::Close(code, reason.to_owned()));
        }
    }

    /// Start of user activity: interrupts unless the setup asked for `NO_INTERRUPTION`.
    pub(super) fn barge_in(&mut self) {
        if !self.setup.as_ref().is_some_and(|s| s.no_interruption) {
            self.interrupt();
        }
    }

    /// A spoken user turn ended. Like a typed turn, it cuts off what the model is doing (the
    /// model yields to the user who just finished) and is answered at once: every user turn
    /// gets its own reaction, in the order the turns complete. With `NO_INTERRUPTION` the
    /// model finishes first and then answers the turn.
    pub(super) fn user_spoke(&mut self, seconds: f64) {
        let text = vad::transcript(seconds);
        let yields = !self.setup.as_ref().is_some_and(|s| s.no_interruption);
        if yields {
            self.interrupt();
        }
        if self.setup.as_ref().is_some_and(|s| s.input_transcription) {
            self.out.push(outbound::input_transcription(&text));
        }
        self.with_session(|s| {
            s.state.context.push(Turn {
                role: Role::User,
                parts: vec![Part::AudioTranscript(text)],
            });
        });
        if matches!(self.turn, TurnState::Idle) {
            self.start_generation();
        } else {
            self.deferred_turn = true;
        }
    }

    /// Function responses: each final one closes its pending call (an interim one,
    /// `willContinue: true` for a non-blocking call, leaves it open); both enter the context as
    /// one user turn. A
    /// blocking call's responses resume the model once no blocking call is pending (unless all
    /// are `SILENT`); a non-blocking call's response is answered by a later model turn as its
    /// `scheduling` says: `INTERRUPT` cuts a reply in progress, `WHEN_IDLE` (and no
    /// `scheduling`) waits until the model is idle, `SILENT` only enters the context.
    pub(super) fn on_tool_response(&mut self, responses: Vec<FunctionResponse>) -> (Step, bool) {
        if self.caps.scheduling == SetupRule::Refused
            && responses.iter().any(|r| r.scheduling.is_some())
        {
            return (Step::invalid(), false);
        }
        let connection = self.connection;
        let taken = self
            .with_session(|s| {
                let mut taken = Vec::new();
                for response in responses {
                    let pending = s
                        .state
                        .pending_calls
                        .iter()
                        .position(|c| c.id == response.id);
                    // `willContinue` applies to non-blocking calls only; a blocking call's
                    // response is final whatever it says.
                    let interim = response.will_continue == Some(true)
                        && pending.is_some_and(|at| !s.state.pending_calls[at].blocking);
                    let (fate, blocking) = match pending {
                        Some(_) if interim => (ResponseFate::Interim, false),
                        Some(at) => {
                            let call = s.state.pending_calls.remove(at);
                            (ResponseFate::Accepted, call.blocking)
                        }
                        None if s.cancelled_calls.contains(&response.id) => {
                            (ResponseFate::Cancelled, false)
                        }
                        None if s
                            .tool_responses
                            .iter()
                            .any(|r| r.id == response.id && r.fate == ResponseFate::Accepted) =>
                        {
                            (ResponseFate::Duplicate, false)
                        }
                        None => (ResponseFate::Unknown, false),
                    };
                    let value = Value::Object(response.response.clone());
                    s.tool_responses.push(ToolResponseRecord {
                        id: response.id.clone(),
                        name: response.name.clone(),
                        response: value.clone(),
                        connection,
                        fate,
                    });
                    if matches!(fate, ResponseFate::Accepted | ResponseFate::Interim) {
                        taken.push(Taken {
                            part: Part::FunctionResponse {
                                id: response.id,
                                name: response.name,
                                response: value,
                            },
                            blocking,
                            interim,
                            scheduling: response.scheduling,
                        });
                    }
                }
                taken
            })
            .unwrap_or_default();
        if taken.is_empty() {
            return (Step::Continue, false);
        }
        self.note_append();
        self.with_session(|s| {
            s.state.context.push(Turn {
                role: Role::User,
                parts: taken.iter().map(|t| t.part.clone()).collect(),
            });
        });
        let blocking_pending = self
            .with_session(|s| s.state.pending_calls.iter().any(|c| c.blocking))
            .unwrap_or(false);
        let resumes = matches!(self.turn, TurnState::AwaitingTools)
            && !blocking_pending
            && taken.iter().any(|t| t.blocking);
        let mut answers = Vec::new();
        let mut cut = false;
        for t in &taken {
            let answered = if t.blocking {
                resumes && !t.interim && t.scheduling != Some(Scheduling::Silent)
            } else {
                match t.scheduling {
                    Some(Scheduling::Silent) => false,
                    Some(Scheduling::Interrupt) => {
                        cut = true;
                        true
                    }
                    _ => true,
                }
            };
            if let (true, Part::FunctionResponse { name, response, .. }) = (answered, &t.part) {
                answers.push(script::tool_answer(name, response));
            }
        }
        if resumes {
            self.turn = TurnState::Idle;
        }
        if !answers.is_empty() {
            let answer = answers.join(" ");
            match &self.turn {
                TurnState::Idle => self.begin_answer(answer),
                TurnState::Generating(_) if cut => {
                    self.interrupt();
                    self.begin_answer(answer);
                }
                _ => self.deferred_answers.push(answer),
            }
        }
        (Step::Continue, true)
    }

    pub(super) fn on_context_update(&mut self, update: ContextUpdate) -> (Step, bool) {
        if !self.caps.context_update {
            return (Step::invalid(), false);
        }
        let behaviors = update.tools.as_deref().map(function_behaviors);
        if behaviors
            .as_deref()
            .is_some_and(|b| rules::refuse_declarations(&self.caps, b))
        {
            return (Step::invalid(), false);
        }
        let non_blocking = behaviors
            .as_deref()
            .map(|b| rules::non_blocking(&self.caps, b));
        self.with_session(|s| {
            if let Some(instruction) = &update.system_instruction {
                s.system_instruction = Some(content_text(instruction));
            }
            if let Some(tools) = &update.tools {
                s.tools = function_names(tools);
            }
            if let Some(non_blocking) = non_blocking {
                s.non_blocking = non_blocking;
            }
        });
        (Step::Continue, true)
    }
}
