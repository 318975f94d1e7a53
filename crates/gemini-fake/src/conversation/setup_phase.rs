//! The first frame: `setup`, creating or resuming a session.

use super::*;

/// The reason given with the 1011 that refuses a resume while the session has another open
/// connection.
const STILL_CONNECTED: &str = "The service is currently unavailable.";

impl Conversation {
    pub(super) fn on_setup(&mut self, request: &SetupRequest) -> Step {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let model_id = bare_model_id(&request.model);
        let Some(family) = config.family_of(model_id) else {
            return Step::Close(
                1008,
                format!(
                    "models/{model_id} is not found for API version {}, or is not supported for \
                     bidiGenerateContent. Call ListModels to see the list of available models \
                     and their supported methods.",
                    self.route_version
                ),
            );
        };
        self.family = family;
        self.caps = config.capabilities_of(family);
        if rules::refuse_setup(&self.caps, request, config.vertex) {
            return Step::invalid();
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
        self.turn = if state.pending_calls.iter().any(|c| c.blocking) {
            TurnState::AwaitingTools
        } else {
            TurnState::Idle
        };
        self.ring.push_back((0, state));
        self.setup = Some(request.clone());
        let session_id = config.vertex.then(|| format!("fake-session-{session}"));
        self.out.push(outbound::setup_complete(session_id));
        if let Some(action) = self.fire(Trigger::SetupCompleteSent) {
            return Step::from_fault(action);
        }
        self.offer_handle();
        Step::Continue
    }

    pub(super) fn create_session(&mut self, request: &SetupRequest) -> (SessionId, ModelState) {
        let connection = self.connection;
        let family = self.family;
        let non_blocking = rules::non_blocking(&self.caps, &request.behaviors);
        self.shared.update(|state| {
            state.next_session += 1;
            let id = SessionId(state.next_session);
            let mut session = SessionSnapshot::new(id, request.model.clone(), family);
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            session.non_blocking = non_blocking;
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
        let concurrent = self.shared.config.concurrent_connections;
        let non_blocking = rules::non_blocking(&self.caps, &request.behaviors);
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
                // One socket per session (docs/protocol.md section 10.1): refused while
                // another connection of the session is open.
                session.overlaps += 1;
                if !concurrent {
                    return Err(Step::Close(1011, STILL_CONNECTED.to_owned()));
                }
            }
            if session.hard_closed && state.faults.refuse_after_hard_close > 0 {
                state.faults.refuse_after_hard_close -= 1;
                return Err(Step::invalid());
            }
            let Some(session) = state.sessions.get_mut(&id) else {
                return Err(Step::invalid());
            };
            session.hard_closed = false;
            session.state = snapshot.clone();
            session.restores.push(handle.to_owned());
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            session.non_blocking = non_blocking;
            state.attach(connection, id, Some(handle));
            Ok((id, snapshot))
        })
    }
}
