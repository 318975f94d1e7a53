//! Client messages after `setup`.

use super::*;

impl Conversation {
    pub(super) fn on_message(&mut self, message: ClientMessage) -> (Step, bool) {
        match message {
            ClientMessage::Setup(_) => (Step::invalid(), false),
            ClientMessage::ClientContent(content) => self.on_client_content(content),
            ClientMessage::RealtimeInput(input) => self.on_realtime(input),
            ClientMessage::ToolResponse(response) => (
                Step::Continue,
                self.on_tool_response(response.function_responses),
            ),
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
        if !self
            .shared
            .config
            .family
            .capabilities()
            .client_content_mid_session
        {
            return (Step::invalid(), false);
        }
        self.interrupt();
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
            RealtimeInput::Video(_) => (Step::Continue, false),
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
                    self.user_spoke(seconds);
                    (Step::Continue, true)
                }
                _ => (Step::Continue, false),
            },
        }
    }

    pub(super) fn on_audio(&mut self, pcm: &[u8], mime_type: &str) -> bool {
        let rate = vad::rate_of(mime_type);
        if self.setup.as_ref().is_some_and(|s| s.manual_activity) {
            if let Some(seconds) = self.activity.as_mut() {
                *seconds += vad::duration_of(pcm, rate);
            }
            return false;
        }
        match self.vad.feed(pcm, rate) {
            Some(VadEvent::SpeechStarted) => {
                self.barge_in();
                false
            }
            Some(VadEvent::SpeechEnded { seconds }) => {
                self.user_spoke(seconds);
                true
            }
            None => false,
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

    pub(super) fn on_tool_response(&mut self, responses: Vec<FunctionResponse>) -> bool {
        let connection = self.connection;
        let mut accepted = Vec::new();
        let mut silent = true;
        self.with_session(|s| {
            for response in responses {
                let pending = s
                    .state
                    .pending_calls
                    .iter()
                    .position(|c| c.id == response.id);
                let fate = if let Some(at) = pending {
                    s.state.pending_calls.remove(at);
                    ResponseFate::Accepted
                } else if s.cancelled_calls.contains(&response.id) {
                    ResponseFate::Cancelled
                } else if s
                    .tool_responses
                    .iter()
                    .any(|r| r.id == response.id && r.fate == ResponseFate::Accepted)
                {
                    ResponseFate::Duplicate
                } else {
                    ResponseFate::Unknown
                };
                let value = Value::Object(response.response.clone());
                s.tool_responses.push(ToolResponseRecord {
                    id: response.id.clone(),
                    name: response.name.clone(),
                    response: value.clone(),
                    connection,
                    fate,
                });
                if fate == ResponseFate::Accepted {
                    silent &= response.scheduling == Some(Scheduling::Silent);
                    accepted.push(Part::FunctionResponse {
                        id: response.id,
                        name: response.name,
                        response: value,
                    });
                }
            }
            if !accepted.is_empty() {
                s.state.context.push(Turn {
                    role: Role::User,
                    parts: accepted.clone(),
                });
            }
        });
        if accepted.is_empty() {
            return false;
        }
        let all_answered = self
            .with_session(|s| s.state.pending_calls.is_empty())
            .unwrap_or(true);
        if all_answered && matches!(self.turn, TurnState::AwaitingTools) {
            self.turn = TurnState::Idle;
            if !silent {
                let answer = accepted
                    .iter()
                    .filter_map(|part| match part {
                        Part::FunctionResponse { name, response, .. } => {
                            Some(script::tool_answer(name, response))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                self.begin_answer(answer);
            }
        }
        true
    }

    pub(super) fn on_context_update(&mut self, update: ContextUpdate) -> (Step, bool) {
        if !self.shared.config.family.capabilities().context_update {
            return (Step::invalid(), false);
        }
        self.with_session(|s| {
            if let Some(instruction) = &update.system_instruction {
                s.system_instruction = Some(content_text(instruction));
            }
            if let Some(tools) = &update.tools {
                s.tools = function_names(tools);
            }
        });
        (Step::Continue, true)
    }
}
