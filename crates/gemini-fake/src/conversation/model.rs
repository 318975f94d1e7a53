//! The scripted model's turns: answers, tool calls, interruptions.

use super::*;

impl Conversation {
    pub(super) fn start_generation(&mut self) {
        // This generation answers all the input so far: a turn deferred behind the one just
        // finished is answered by it, not by a second, empty one.
        self.deferred_turn = false;
        let session = self.session.unwrap_or(SessionId(0));
        let connection = self.connection;
        let index = self.index;
        let reply = self.with_session(|s| {
            s.generations += 1;
            let text = s.state.new_user_text();
            let results = s.state.new_function_responses();
            s.state.answered_upto = s.state.context.len();
            if !results.is_empty() {
                // Results delivered as history: answer them as after a `toolResponse`.
                let answers: Vec<String> = results
                    .iter()
                    .map(|(name, response)| script::tool_answer(name, response))
                    .collect();
                return Reply::Say(answers.join(" "));
            }
            match script::reply_to(&text, &s.tools) {
                Reply::Call(name) => {
                    let id = format!("call-{session}-{}", s.tool_calls.len() + 1);
                    s.state.context.push(Turn {
                        role: Role::Model,
                        parts: vec![Part::FunctionCall {
                            id: id.clone(),
                            name: name.clone(),
                            args: Value::Object(Map::new()),
                        }],
                    });
                    s.state.pending_calls.push(PendingCall {
                        id: id.clone(),
                        name: name.clone(),
                    });
                    s.tool_calls.push(ToolCallRecord {
                        id: id.clone(),
                        name: name.clone(),
                        args: Value::Object(Map::new()),
                        connection,
                        prompt: text.clone(),
                    });
                    Reply::Call(id)
                }
                say => say,
            }
        });
        match reply {
            Some(Reply::Call(id)) => {
                let name = self
                    .with_session(|s| s.state.pending_calls.last().map(|c| c.name.clone()))
                    .flatten()
                    .unwrap_or_default();
                self.not_resumable();
                self.out.push(outbound::tool_call(vec![FunctionCall::new(
                    id,
                    name,
                    Map::new(),
                )]));
                self.turn = TurnState::AwaitingTools;
                self.last_reacted = index;
                self.record_ring();
            }
            Some(Reply::Say(answer)) => self.stream(answer),
            None => {}
        }
    }

    /// Starts streaming an answer that counts as a new generation (after tool responses).
    pub(super) fn begin_answer(&mut self, answer: String) {
        self.with_session(|s| {
            s.generations += 1;
            s.state.answered_upto = s.state.context.len();
        });
        self.stream(answer);
    }

    pub(super) fn stream(&mut self, answer: String) {
        self.not_resumable();
        self.turn = TurnState::Generating(Generation {
            chunks: script::chunks(&answer).into(),
            answer,
            produced: String::new(),
            chunk_number: 0,
            next_at: self.shared.now() + self.shared.config.chunk_interval,
            trigger_index: self.index,
        });
    }

    pub(super) fn finish_generation(&mut self) {
        let TurnState::Generating(generation) = std::mem::replace(&mut self.turn, TurnState::Idle)
        else {
            return;
        };
        self.out.push(outbound::generation_complete());
        let usage = self.usage(&generation.answer);
        self.out.push(outbound::turn_complete(usage));
        self.record_answer(generation.answer, false, generation.trigger_index);
        self.last_reacted = generation.trigger_index;
        self.record_ring();
        if std::mem::take(&mut self.deferred_turn) {
            self.start_generation();
        } else {
            self.offer_handle();
        }
    }

    /// Cuts off whatever the model is doing: `interrupted` then `turnComplete`, with a
    /// `toolCallCancellation` first for pending calls.
    pub(super) fn interrupt(&mut self) {
        match std::mem::replace(&mut self.turn, TurnState::Idle) {
            TurnState::Idle => {}
            TurnState::Generating(generation) => {
                self.out.push(outbound::interrupted());
                let usage = self.usage(&generation.produced);
                self.out.push(outbound::turn_complete(usage));
                self.record_answer(generation.produced, true, generation.trigger_index);
            }
            TurnState::AwaitingTools => {
                let ids = self
                    .with_session(|s| {
                        let ids: Vec<String> =
                            s.state.pending_calls.drain(..).map(|c| c.id).collect();
                        s.cancelled_calls.extend(ids.iter().cloned());
                        ids
                    })
                    .unwrap_or_default();
                if !ids.is_empty() {
                    self.out.push(outbound::tool_call_cancellation(ids));
                }
                self.out.push(outbound::interrupted());
                self.out.push(outbound::turn_complete(self.usage("")));
            }
        }
    }

    /// Appends the model's answer to the context, and to the handle snapshots kept for every
    /// client message from `trigger` (the message it answers) on: a lagging handle leaves out
    /// the effects of the last client messages, never the model's own output for an earlier
    /// one.
    pub(super) fn record_answer(&mut self, text: String, interrupted: bool, trigger: u64) {
        let audio = self.response_kind() == ResponseKind::Audio;
        let connection = self.connection;
        let turn = (!text.is_empty()).then(|| Turn {
            role: Role::Model,
            parts: vec![if audio {
                Part::AudioTranscript(text.clone())
            } else {
                Part::Text(text.clone())
            }],
        });
        if let Some(turn) = &turn {
            for (index, state) in self.ring.iter_mut() {
                if *index >= trigger && *index < self.index {
                    state.context.push(turn.clone());
                }
            }
        }
        self.with_session(|s| {
            if let Some(turn) = turn {
                s.state.context.push(turn);
            }
            s.answers.push(AnswerRecord {
                text,
                interrupted,
                connection,
            });
        });
    }

    pub(super) fn usage(&self, answer: &str) -> Usage {
        let prompt = self
            .shared
            .read(|state| {
                self.session
                    .and_then(|id| state.sessions.get(&id))
                    .map(|s| {
                        s.state
                            .context
                            .iter()
                            .map(|t| script::tokens(&t.text()))
                            .sum()
                    })
            })
            .unwrap_or(0);
        Usage {
            prompt,
            response: script::tokens(answer),
            audio: self.response_kind() == ResponseKind::Audio,
            vertex: self.shared.config.vertex,
        }
    }
}
