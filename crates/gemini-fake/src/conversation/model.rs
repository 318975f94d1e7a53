//! The scripted model's turns: answers, tool calls, interruptions.

use super::*;

impl Conversation {
    /// A model turn answers the user's input: the context window is applied first (trimmed by
    /// compression, or the session ended past its limits: `crate::limits`).
    pub(super) fn start_generation(&mut self) {
        // This generation answers all the input so far: a turn deferred behind the one just
        // finished is answered by it, not by a second, empty one.
        self.deferred_turn = false;
        if !self.apply_window() {
            return;
        }
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
                return (Reply::Say(answers.join(" ")), true);
            }
            let reply = match script::reply_to(&text, &s.tools) {
                Reply::Call(name) => {
                    let blocking = !s.non_blocking.contains(&name);
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
                        blocking,
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
            };
            (reply, false)
        });
        let Some((reply, answered_results)) = reply else {
            return;
        };
        if answered_results {
            self.deferred_answers.clear();
        }
        match reply {
            Reply::Call(id) => {
                let call = self
                    .with_session(|s| s.state.pending_calls.last().cloned())
                    .flatten();
                let (name, blocking) = call.map_or((String::new(), true), |c| (c.name, c.blocking));
                let message = outbound::tool_call(vec![FunctionCall::new(id, &name, Map::new())]);
                if blocking {
                    self.not_resumable();
                    self.out.push(message);
                    self.turn = TurnState::AwaitingTools;
                } else {
                    // Non-blocking: the model goes on and completes its turn.
                    self.stream(script::call_filler(&name));
                    self.out.push(message);
                }
                self.last_reacted = index;
                self.record_ring();
            }
            Reply::Say(answer) => self.stream(answer),
        }
    }

    /// Applies the context window before a user turn is answered: past the compression
    /// trigger the oldest turns are removed down to the target; without compression, a
    /// context past the window ends the session. `false`: the session ends (the close is set).
    fn apply_window(&mut self) -> bool {
        let window = self.shared.config.limits.window_tokens;
        let compression = self.setup.as_ref().and_then(|s| s.compression);
        let connection = self.connection;
        let fits = self.with_session(|s| {
            let Some(compression) = compression else {
                return crate::limits::context_tokens(&s.state.context) <= window;
            };
            let (trigger, target) = crate::limits::thresholds(compression, window);
            let cut = crate::limits::trim_count(&s.state.context, trigger, target);
            if cut > 0 {
                let before = crate::limits::context_tokens(&s.state.context);
                let removed: Vec<Turn> = s.state.context.drain(..cut).collect();
                s.state.answered_upto = s.state.answered_upto.saturating_sub(cut);
                s.trims.push(crate::session::TrimRecord {
                    connection,
                    tokens_before: before,
                    tokens_after: crate::limits::context_tokens(&s.state.context),
                    removed,
                });
            }
            true
        });
        if fits == Some(false) {
            let (code, reason) = crate::limits::LIMIT_CLOSE;
            self.close = Some(Step::Close(code, reason.to_owned()));
            return false;
        }
        true
    }

    /// Extended thinking: a filler turn while a call is pending and the model is idle.
    pub(super) fn speak_filler(&mut self) {
        self.filler_at = None;
        let name = self
            .with_session(|s| s.state.pending_calls.first().map(|c| c.name.clone()))
            .flatten();
        if let Some(name) = name {
            self.fillers_spoken += 1;
            self.begin_answer(script::waiting_filler(&name));
        }
    }

    /// Content arrives while an answer streams without cutting it: the answer goes before it
    /// in the context, right after the input it answers.
    pub(super) fn note_append(&mut self) {
        let len = self.with_session(|s| s.state.context.len()).unwrap_or(0);
        if let TurnState::Generating(generation) = &mut self.turn {
            generation.insert_at.get_or_insert(len);
        }
    }

    /// `interactionStatus` for a `turnComplete` now: none before 3.8; `IN_PROGRESS` on
    /// extended thinking while a call is pending; `IDLE` otherwise.
    pub(super) fn interaction_status(&self) -> Option<InteractionStatus> {
        if !self.caps.interaction_status {
            return None;
        }
        let pending = self
            .with_session(|s| !s.state.pending_calls.is_empty())
            .unwrap_or(false);
        Some(if pending && self.caps.in_progress_while_calls_pending {
            InteractionStatus::InProgress
        } else {
            InteractionStatus::Idle
        })
    }

    /// The model is idle again: on extended thinking, a filler is due later while a call is
    /// pending (at most the configured number per wait).
    fn arm_filler(&mut self) {
        let pending = self
            .with_session(|s| !s.state.pending_calls.is_empty())
            .unwrap_or(false);
        if !pending {
            self.fillers_spoken = 0;
        }
        let config = &self.shared.config;
        self.filler_at = (self.caps.in_progress_while_calls_pending
            && pending
            && self.fillers_spoken < config.max_fillers)
            .then(|| self.shared.now() + config.filler_interval);
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
        self.filler_at = None;
        self.turn = TurnState::Generating(Generation {
            chunks: script::chunks(&answer).into(),
            answer,
            produced: String::new(),
            chunk_number: 0,
            next_at: self.shared.now() + self.shared.config.chunk_interval,
            trigger_index: self.index,
            insert_at: None,
        });
    }

    pub(super) fn finish_generation(&mut self) {
        let TurnState::Generating(generation) = std::mem::replace(&mut self.turn, TurnState::Idle)
        else {
            return;
        };
        self.out.push(outbound::generation_complete());
        let usage = self.usage(&generation.answer);
        self.record_answer(
            generation.answer,
            false,
            generation.trigger_index,
            generation.insert_at,
        );
        self.out
            .push(outbound::turn_complete(usage, self.interaction_status()));
        self.last_reacted = generation.trigger_index;
        self.record_ring();
        if std::mem::take(&mut self.deferred_turn) {
            self.start_generation();
        } else if !self.deferred_answers.is_empty() {
            let answer = std::mem::take(&mut self.deferred_answers).join(" ");
            self.begin_answer(answer);
        } else {
            self.offer_handle();
            self.arm_filler();
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
                self.record_answer(
                    generation.produced,
                    true,
                    generation.trigger_index,
                    generation.insert_at,
                );
                self.out
                    .push(outbound::turn_complete(usage, self.interaction_status()));
            }
            TurnState::AwaitingTools => {
                // The blocking calls the model waited for are withdrawn; non-blocking calls
                // run on.
                let ids = self
                    .with_session(|s| {
                        let mut ids = Vec::new();
                        s.state.pending_calls.retain(|c| {
                            if c.blocking {
                                ids.push(c.id.clone());
                            }
                            !c.blocking
                        });
                        s.cancelled_calls.extend(ids.iter().cloned());
                        ids
                    })
                    .unwrap_or_default();
                if !ids.is_empty() {
                    self.out.push(outbound::tool_call_cancellation(ids));
                }
                self.out.push(outbound::interrupted());
                let usage = self.usage("");
                self.out
                    .push(outbound::turn_complete(usage, self.interaction_status()));
            }
        }
    }

    /// Appends the model's answer to the context, and to the handle snapshots kept for every
    /// client message from `trigger` (the message it answers) on: a lagging handle leaves out
    /// the effects of the last client messages, never the model's own output for an earlier
    /// one.
    pub(super) fn record_answer(
        &mut self,
        text: String,
        interrupted: bool,
        trigger: u64,
        insert_at: Option<usize>,
    ) {
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
        let place = |context: &mut Vec<Turn>, turn: Turn| match insert_at {
            Some(at) if at < context.len() => context.insert(at, turn),
            _ => context.push(turn),
        };
        if let Some(turn) = &turn {
            for (index, state) in self.ring.iter_mut() {
                if *index >= trigger && *index < self.index {
                    place(&mut state.context, turn.clone());
                }
            }
        }
        self.with_session(|s| {
            if let Some(turn) = turn {
                place(&mut s.state.context, turn);
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
