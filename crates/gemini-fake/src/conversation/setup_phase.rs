//! The first frame: `setup`, creating or resuming a session.

use super::*;

impl Conversation {
    pub(super) fn on_setup(&mut self, request: &SetupRequest) -> Step {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let model_id = bare_model_id(&request.model);
        if !config.accepts_model(model_id) {
            return Step::Close(
                1008,
                format!(
                    "models/{model_id} is not found for API version {}, or is not supported for \
                     bidiGenerateContent. Call ListModels to see the list of available models \
                     and their supported methods.",
                    self.route_version
                ),
            );
        }
        let transparent = request.resumption.as_ref().is_some_and(|r| r.transparent);
        if transparent && !config.vertex && !config.transparent_on_developer_api {
            return Step::invalid();
        }
        if let Some(action) = self.fire(Trigger::SetupReceived) {
            return Step::from_fault(action);
        }
        let handle = request.resumption.as_ref().and_then(|r| r.handle.clone());
        let joined = match handle {
            Some(handle) => self.resume(&handle, request),
            None => Ok(self.create_session(request)),
        };
        let (session, state) = match joined {
            Ok(joined) => joined,
            Err(step) => return step,
        };
        self.session = Some(session);
        self.history_phase = request.initial_history;
        if let Some(ms) = request.silence_ms {
            self.vad = Vad::new(config.vad_threshold, Duration::from_millis(ms));
        }
        self.turn = if state.pending_calls.is_empty() {
            TurnState::Idle
        } else {
            TurnState::AwaitingTools
        };
        self.ring.push_back((0, state));
        self.setup = Some(request.clone());
        self.out.push(outbound::setup_complete());
        if let Some(action) = self.fire(Trigger::SetupCompleteSent) {
            return Step::from_fault(action);
        }
        self.offer_handle();
        Step::Continue
    }

    pub(super) fn create_session(&mut self, request: &SetupRequest) -> (SessionId, ModelState) {
        let connection = self.connection;
        self.shared.update(|state| {
            state.next_session += 1;
            let id = SessionId(state.next_session);
            let mut session = SessionSnapshot::new(id, request.model.clone());
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            state.sessions.insert(id, session);
            state.attach(connection, id, None);
            (id, ModelState::default())
        })
    }

    pub(super) fn resume(
        &mut self,
        handle: &str,
        request: &SetupRequest,
    ) -> Result<(SessionId, ModelState), Step> {
        let connection = self.connection;
        let expiry = self.shared.config.handle_expiry;
        let now = self.shared.now();
        self.shared.update(|state| {
            if let Some((code, reason)) = state.faults.refuse_next_resume.take() {
                return Err(Step::Close(code, reason));
            }
            let sessions = &state.sessions;
            let found = state.handles.resume(handle, now, expiry, |id| {
                sessions.get(&id).map_or((false, None), |s| {
                    (s.active_connection().is_some(), s.last_ended)
                })
            });
            let (id, snapshot) = found.map_err(|refusal| {
                tracing::debug!(?refusal, "resume refused");
                match refusal {
                    HandleRefusal::Unknown | HandleRefusal::Expired => Step::invalid(),
                }
            })?;
            let Some(session) = state.sessions.get_mut(&id) else {
                return Err(Step::invalid());
            };
            if bare_model_id(&session.model) != bare_model_id(&request.model) {
                return Err(Step::invalid());
            }
            if session.active_connection().is_some() {
                session.overlaps += 1;
            }
            session.state = snapshot.clone();
            session.restores.push(handle.to_owned());
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            state.attach(connection, id, Some(handle));
            Ok((id, snapshot))
        })
    }
}
