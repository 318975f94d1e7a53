//! `CoverageTracker`: turns what happened on a connection into handle records with sound
//! coverage.

use std::collections::VecDeque;

use crate::{
    ClientMessageIndex, ConnectionId, Coverage, Error, Freshness, HandleRecord, HandleSerial,
    HandleToken, MessagePosition, Millis, SessionEpoch, ToolCallStatus, ToolCalls,
};

/// The deliberately wrong tracker built with `--cfg mutant_send_order` (only by
/// `cargo xtask sim --mutant send-order`): a run of audio awaits its reaction from its first
/// chunk, as a typed turn does, so reactions are credited in the order turns were *sent*. The
/// simulator's regressions and random schedules must catch it.
const SEND_ORDER_MUTANT: bool = cfg!(mutant_send_order);

/// What kind of reaction a client message can provoke, as the session layer knows when it
/// sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Starts a model turn: `clientContent` with `turnComplete: true`, `realtimeInput.text`,
    /// a `generate_reply` request, `activityEnd`. The server answers with a `toolCall` or a
    /// `turnComplete`.
    TurnStart,
    /// A `toolResponse` the model continues from (blocking calls): answered by the
    /// `turnComplete` (or next `toolCall`) of the turn it resumes.
    ToolResponse,
    /// Realtime audio (or video) under automatic activity detection: the server decides where
    /// turns start and end, so a reaction proves only that the first chunk of the current run
    /// of audio was processed. Typed messages sent behind a run of audio are therefore covered
    /// only by a later tool-response reaction or exactly in transparent mode.
    Audio,
    /// Provokes no visible reaction: `clientContent` with `turnComplete: false`, a
    /// `contextUpdate`, a silent (non-blocking) tool response. Only covered through a later
    /// message's reaction (or exactly, in transparent mode).
    Silent,
    /// Realtime audio with no sample loud enough to be speech (the session layer's judgement,
    /// e.g. a floor far below any voice detector's): counted like [`Audio`](Self::Audio),
    /// but it is no turn: an `audioStreamEnd` after nothing but such audio ends no spoken
    /// turn, and without transcripts it awaits no reaction of its own (it only extends a run
    /// of speech it follows).
    QuietAudio,
    /// `audioStreamEnd` (automatic activity detection): speech in progress ends here, if audio
    /// was sent since the last end. With transcripts the spoken turn is placed here (see
    /// [`CoverageTracker::on_spoken_turn`]); without them, the run of audio before it gets the
    /// reaction.
    AudioStreamEnd,
    /// `activityStart` (manual activity detection): the user's activity opens; it provokes
    /// nothing by itself.
    ActivityStart,
    /// `activityEnd` (manual activity detection): the open activity, if any, ends here and
    /// becomes a spoken turn the model answers (an `activityEnd` with no activity open ends
    /// nothing).
    ActivityEnd,
}

/// Where a spoken user turn ended ([`CoverageTracker::on_spoken_turn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpokenTurnEnd {
    /// The earliest client message it may have ended on.
    pub earliest: ClientMessageIndex,
    /// The message it ended on, as far as the client can tell (the latest it may have ended
    /// on): where it sits in the server's context and in the order of reactions.
    pub end: ClientMessageIndex,
}

/// A server message that proves the server processed a client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerReaction {
    /// `serverContent.turnComplete`.
    TurnComplete,
    /// `toolCall` of a call the model waits for (record the calls themselves with
    /// [`CoverageTracker::on_tool_call`]). The model turn stays open; its next reaction
    /// answers the tool responses sent since.
    ToolCall,
    /// `toolCall` whose calls are all non-blocking: the model talks on and completes its turn
    /// without waiting. The turn's next reactions (another such call, its `turnComplete`)
    /// answer nothing new; each result is answered later by a turn of its own
    /// ([`ctx_model::Delivery`]).
    NonBlockingToolCall,
    /// `serverContent.turnComplete` of a turn the server cut off (`interrupted` came first:
    /// new input arrived while the model answered). It answers its turn as
    /// [`TurnComplete`](Self::TurnComplete) does, but the model did not finish it: a lagging
    /// handle issued after it may predate the turn.
    InterruptedTurnComplete,
    /// `serverContent.turnComplete` of a turn whose tool calls the server cancelled (a
    /// `toolCallCancellation` came first: new input interrupted the model while it waited for
    /// results). It proves nothing after the call: the interrupting message gets its own
    /// reaction, and a tool response for a cancelled call gets none.
    CancelledTurnComplete,
}

/// The content of a `sessionResumptionUpdate`, decoded by the transport.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandleUpdate {
    /// `newHandle`, absent or empty when not resumable.
    pub new_handle: Option<String>,
    /// `resumable`.
    pub resumable: bool,
    /// `lastConsumedClientMessageIndex` (transparent mode only).
    pub last_consumed: Option<ClientMessageIndex>,
}

/// How a connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectMode {
    /// No handle in `setup`: a new server session.
    Fresh,
    /// `setup` carried the tracker's current handle.
    Resumed,
}

/// A user turn (or run of audio messages) that awaits the server's reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Awaiting {
    /// The message that completes the turn (of a run of audio without transcripts: the first
    /// chunk not yet known processed).
    first: ClientMessageIndex,
    /// The last message of the run (`first` for other kinds).
    last: ClientMessageIndex,
    kind: Pending,
}

/// The model turn that made tool calls, while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ToolTurn {
    /// No tool call in the open turn.
    #[default]
    None,
    /// It waits for the results (blocking calls): its next reaction answers them.
    Blocking,
    /// It talks on (non-blocking calls): its next reactions answer nothing new.
    Continuing,
}

/// What awaits a reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A typed turn (or any message that starts a model turn).
    Turn,
    /// A tool response the model continues from.
    ToolResponse,
    /// A run of audio (without transcripts: the server's voice detection decides its turns).
    Audio,
    /// A spoken turn the server transcribed, completed at `first`.
    Spoken,
}

/// The pure state machine that assigns client message indices, watches server reactions and
/// handle updates, and yields [`HandleRecord`]s whose coverage is sound.
///
/// Coverage rules (docs/design.md section 4):
/// - transparent mode: `lastConsumedClientMessageIndex` gives it exactly;
/// - otherwise the server processes a connection's messages in order, so a handle that arrives
///   after the server visibly reacted to message *m* covers *m* and everything before it.
///   Reactions are matched to user turns in the order the turns *complete*, which is the
///   order the server answers them: a typed turn completes with its own message, a spoken
///   turn with the message that ends it (see [`on_spoken_turn`](Self::on_spoken_turn)), so a
///   typed turn sent while the user speaks is answered before the spoken turn around it. A
///   `toolCall` or `turnComplete` answers the first turn in that order still awaiting one;
///   after a `toolCall` the same model turn is still open, so its next reaction answers only
///   the tool responses sent since (scenario S12: a handle that merely arrives after a
///   message was sent does not cover it). Without transcripts the client does not see where
///   spoken turns end: a reaction to a run of audio proves only its first chunk processed,
///   since the server's voice detection may split it into several turns;
/// - `resumable: false` marks the current handle stale from that moment and keeps it.
///
/// ```
/// use resume_policy::{
///     ConnectMode, ConnectionId, CoverageTracker, HandleUpdate, MessageKind, Millis,
///     ServerReaction,
/// };
///
/// let mut tracker = CoverageTracker::new(false);
/// tracker.on_connected(ConnectionId(1), ConnectMode::Fresh)?;
/// let turn = tracker.on_sent(MessageKind::TurnStart)?; // index 1
/// let update = HandleUpdate { new_handle: Some("h1".into()), resumable: true, last_consumed: None };
/// // The handle arrived before any reaction: it does not cover the turn.
/// let h1 = tracker.on_handle_update(&update, Millis(10))?.expect("resumable");
/// assert!(!h1.covers(turn));
/// tracker.on_reaction(ServerReaction::TurnComplete);
/// let update = HandleUpdate { new_handle: Some("h2".into()), ..update };
/// let h2 = tracker.on_handle_update(&update, Millis(20))?.expect("resumable");
/// assert!(h2.covers(turn));
/// # Ok::<(), resume_policy::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CoverageTracker {
    transparent: bool,
    connection: Option<ConnectionId>,
    epoch: SessionEpoch,
    last_sent: ClientMessageIndex,
    awaiting: VecDeque<Awaiting>,
    tool_turn: ToolTurn,
    reacted_through: Option<ClientMessageIndex>,
    /// The last message whose turn the model finished answering (a `toolCall`, or a
    /// `turnComplete` that was not cut off).
    finished_through: Option<ClientMessageIndex>,
    handle: Option<HandleRecord>,
    next_serial: u64,
    tool_calls: ToolCalls,
    transcripts: bool,
    /// Runs of consecutive audio messages sent since the last spoken turn ended (with
    /// transcripts), oldest first: a spoken turn ends on a chunk of one of them.
    runs: VecDeque<(ClientMessageIndex, ClientMessageIndex)>,
    /// The last message sent was audio (the newest run is still growing).
    in_run: bool,
    /// Manual activity detection: only activities make spoken turns, not runs of audio.
    manual_activity: bool,
    /// The silence after which the server's activity detection ends speech, when the session
    /// asked for one ([`with_end_of_speech_silence`](Self::with_end_of_speech_silence)).
    end_silence: Option<std::time::Duration>,
    /// While speech may be in progress (voice since the last end): the silence since its last
    /// voiced audio.
    quiet: Option<std::time::Duration>,
    /// An `activityStart` was sent and its `activityEnd` was not.
    activity_open: bool,
    /// Audio was sent since the last explicit end of speech or spoken turn (an explicit end
    /// after it can end a turn).
    audio_since_end: bool,
    /// Explicit ends of speech (`audioStreamEnd`, `activityEnd`) sent after audio and not yet
    /// matched to a spoken turn, oldest first.
    speech_ends: VecDeque<ClientMessageIndex>,
    /// Where the last spoken turn ended.
    last_spoken: Option<ClientMessageIndex>,
}

impl CoverageTracker {
    /// A tracker with no connection and no handle. `transparent`: whether connections request
    /// transparent resumption (then `lastConsumedClientMessageIndex` is used when present).
    pub fn new(transparent: bool) -> Self {
        Self {
            transparent,
            connection: None,
            epoch: SessionEpoch(0),
            last_sent: ClientMessageIndex::SETUP,
            awaiting: VecDeque::new(),
            tool_turn: ToolTurn::None,
            reacted_through: None,
            finished_through: None,
            handle: None,
            next_serial: 1,
            tool_calls: ToolCalls::new(),
            transcripts: false,
            runs: VecDeque::new(),
            in_run: false,
            manual_activity: false,
            end_silence: None,
            quiet: None,
            activity_open: false,
            audio_since_end: false,
            speech_ends: VecDeque::new(),
            last_spoken: None,
        }
    }

    /// Tells the tracker that the server transcribes the user's speech: every spoken turn is
    /// announced by a finished input transcription ([`on_spoken_turn`](Self::on_spoken_turn))
    /// before the model reacts to it. A reaction with no spoken turn announced then answers
    /// the oldest typed message, not a run of audio sent before it.
    #[must_use]
    pub fn with_transcripts(mut self, on: bool) -> Self {
        self.transcripts = on;
        self
    }

    /// Tells the tracker that the session uses manual activity detection: the user's turns
    /// are bracketed by `activityStart` / `activityEnd` ([`MessageKind::ActivityStart`],
    /// [`MessageKind::ActivityEnd`]), and audio outside them makes no turn.
    #[must_use]
    pub fn with_manual_activity(mut self, on: bool) -> Self {
        self.manual_activity = on;
        self
    }

    /// Tells the tracker how much silence ends speech for the server's automatic activity
    /// detection (the `silenceDurationMs` the session's `setup` asks for). Audio reported with
    /// its duration ([`on_audio`](Self::on_audio)) then says where speech ended: on the chunk
    /// that completed that silence after voiced audio, as the server's detection counts it.
    #[must_use]
    pub fn with_end_of_speech_silence(mut self, silence: Option<std::time::Duration>) -> Self {
        self.end_silence = silence;
        self
    }

    /// `count` audio frames of `duration` in all were written, all voiced or all quiet
    /// ([`MessageKind::Audio`] or [`MessageKind::QuietAudio`], frames of one length): as
    /// [`on_sent_many`](Self::on_sent_many), and with the end-of-speech silence known
    /// ([`with_end_of_speech_silence`](Self::with_end_of_speech_silence)), the chunk on which
    /// the server's detection ends speech is an end of speech for the next spoken turn.
    pub fn on_audio(
        &mut self,
        count: u32,
        duration: std::time::Duration,
        voiced: bool,
    ) -> Result<MessagePosition, Error> {
        let first = self.last_sent.next();
        let kind = if voiced {
            MessageKind::Audio
        } else {
            MessageKind::QuietAudio
        };
        let at = self.on_sent_many(kind, count)?;
        if !self.transcripts || self.manual_activity || count == 0 {
            return Ok(at);
        }
        if voiced {
            self.quiet = Some(std::time::Duration::ZERO);
            return Ok(at);
        }
        if let (Some(quiet), Some(limit)) = (self.quiet, self.end_silence) {
            let remaining = limit.saturating_sub(quiet).as_nanos();
            let per_frame = (duration.as_nanos() / u128::from(count)).max(1);
            let needed = remaining.div_ceil(per_frame).max(1);
            match u64::try_from(needed)
                .ok()
                .filter(|n| *n <= u64::from(count))
            {
                Some(n) => {
                    // The chunk that completed the silence: speech ended on it.
                    self.speech_ends
                        .push_back(ClientMessageIndex(first.0.saturating_add(n - 1)));
                    self.quiet = None;
                    self.audio_since_end = false;
                }
                None => self.quiet = Some(quiet.saturating_add(duration)),
            }
        }
        Ok(at)
    }

    /// A finished input transcription arrived: the server made a user turn of speech. Returns
    /// the message that ended it, where the turn sits in the server's context (after the items
    /// of every message up to it, before those of later messages) and where it completes in
    /// the order of reactions.
    ///
    /// The server answers turns in the order they complete, and a turn that completes cuts
    /// off the one being answered, whose reaction comes first (the default activity handling,
    /// where user input interrupts the model; a session set to `NO_INTERRUPTION` would need
    /// another rule). So when the transcript arrives,
    /// a typed turn already answered completed before the speech ended, and one still awaiting
    /// its reaction completes after it: the speech ended after the last message answered and
    /// before the first typed turn still awaiting a reaction (an explicit end of speech before
    /// that floor ended nothing: speech too short for the server's detection, or only
    /// silence). Between the two it ended on the first explicit end of speech
    /// (`audioStreamEnd`, `activityEnd`) sent after audio, else on a chunk of the last run of
    /// audio (the server's voice detection ends it on a chunk the client cannot name; the last
    /// one sent is the latest it can be). Typed turns sent between two chunks of one utterance
    /// therefore come before the spoken turn, and those sent after it (while it still waited
    /// to be transcribed) after it, as on the server.
    ///
    /// One order the protocol does not settle: a message that starts no turn (an append)
    /// sent after the chunk on which the server's voice detection ended the speech, but before
    /// its transcript arrived and before more audio, is taken to come before the spoken turn.
    ///
    /// Returns where it ended ([`SpokenTurnEnd::end`]) and the earliest message it may have
    /// ended on ([`SpokenTurnEnd::earliest`]: the same for an explicit end, else the first
    /// chunk of that run of audio).
    pub fn on_spoken_turn(&mut self) -> SpokenTurnEnd {
        let bound = self
            .awaiting
            .iter()
            .find(|a| a.kind == Pending::Turn)
            .map(|turn| turn.first);
        let below = |index: &ClientMessageIndex| bound.is_none_or(|b| *index < b);
        // And after every turn answered before its transcript came (those completed first):
        // an explicit end before them ended nothing (speech too short for the server's
        // detection, or only silence).
        let floor = self.reacted_through;
        let above = |index: &ClientMessageIndex| floor.is_none_or(|f| *index > f);
        while self.speech_ends.front().is_some_and(|end| !above(end)) {
            self.speech_ends.pop_front();
        }
        let explicit = self.speech_ends.front().copied().filter(below);
        let (earliest, end) = match explicit {
            Some(end) => {
                self.speech_ends.pop_front();
                (end, end)
            }
            None => self
                .runs
                .iter()
                .rev()
                .find(|(_, last)| below(last) && above(last))
                .map(|&(first, last)| (floor.map_or(first, |f| first.max(f.next())), last))
                .unwrap_or((self.last_sent, self.last_sent)),
        };
        let end = self.last_spoken.map_or(end, |last| last.max(end));
        let earliest = self
            .last_spoken
            .map_or(earliest, |last| earliest.max(last.next()))
            .min(end);
        self.last_spoken = Some(end);
        // Runs up to the end take no more spoken turns.
        while self.runs.front().is_some_and(|run| run.1 <= end) {
            self.runs.pop_front();
        }
        if self.runs.is_empty() {
            self.in_run = false;
        }
        if explicit.is_none() {
            // Placed on the last chunk it may have ended on: audio after it may be speech.
            self.audio_since_end = !self.runs.is_empty();
            self.quiet = None;
        }
        if self.transcripts && self.connection.is_some() && !SEND_ORDER_MUTANT {
            // In the order of completion: before the turns sent after its end.
            let at = self
                .awaiting
                .iter()
                .position(|a| a.first > end)
                .unwrap_or(self.awaiting.len());
            self.awaiting.insert(
                at,
                Awaiting {
                    first: end,
                    last: end,
                    kind: Pending::Spoken,
                },
            );
        }
        SpokenTurnEnd { earliest, end }
    }

    /// A tracker holding a handle restored from a store (another process, scenario S31).
    pub fn restore(record: HandleRecord, transparent: bool) -> Self {
        let mut tracker = Self::new(transparent);
        tracker.epoch = record.epoch;
        tracker.next_serial = record.serial.0.saturating_add(1);
        tracker.handle = Some(record);
        tracker
    }

    /// The newest resumable handle, fresh or stale.
    pub fn handle(&self) -> Option<&HandleRecord> {
        self.handle.as_ref()
    }

    /// Whether a tool response sent on the open connection still awaits the model's reaction
    /// (the model continues from it).
    pub fn awaits_tool_response(&self) -> bool {
        self.awaiting
            .iter()
            .any(|a| a.kind == Pending::ToolResponse)
    }

    /// Whether a message sent on the open connection still awaits the model's answer (a
    /// typed or spoken turn, a tool response the model continues from; not a run of audio
    /// whose turns the server's voice detection decides).
    pub fn awaits_answer(&self) -> bool {
        self.awaiting.iter().any(|a| a.kind != Pending::Audio)
    }

    /// The messages still awaiting a reaction (typed or spoken turns, tool responses; not
    /// runs of audio), in the order they are answered.
    pub fn awaiting(&self) -> impl Iterator<Item = ClientMessageIndex> + '_ {
        self.awaiting
            .iter()
            .filter(|a| a.kind != Pending::Audio)
            .map(|a| a.first)
    }

    /// Whether the first message awaiting a reaction is a spoken turn the server transcribed.
    pub fn spoken_first(&self) -> bool {
        self.awaiting
            .iter()
            .find(|a| a.kind != Pending::Audio)
            .is_some_and(|a| a.kind == Pending::Spoken)
    }

    /// Whether the open model turn made tool calls and has not completed (it waits for
    /// blocking results, or talks on after non-blocking ones).
    pub fn in_tool_turn(&self) -> bool {
        self.tool_turn != ToolTurn::None
    }

    /// The last client message of the open connection the server visibly reacted to.
    pub fn reacted_through(&self) -> Option<ClientMessageIndex> {
        self.reacted_through
    }

    /// The tool calls seen so far.
    pub fn tool_calls(&self) -> &ToolCalls {
        &self.tool_calls
    }

    /// The open connection, if any.
    pub fn connection(&self) -> Option<ConnectionId> {
        self.connection
    }

    /// The current server session.
    pub fn epoch(&self) -> SessionEpoch {
        self.epoch
    }

    /// Forgets the handle (the server refused it, or it expired).
    pub fn discard_handle(&mut self) {
        self.handle = None;
    }

    /// Goes back to `previous`, the handle held before the newest update, or to none: the
    /// session layer found the newest handle unusable because client content sent on its
    /// connection after the last visible reaction may or may not be in it (resuming from it
    /// would either duplicate or lose that content). Everything else is kept; calls observed
    /// since `previous` stay unknown to it.
    pub fn reinstate(&mut self, previous: Option<HandleRecord>) {
        self.handle = previous.filter(|record| record.epoch == self.epoch);
    }

    /// The last client message of the open connection that a resumable handle received now
    /// can hold. The server starts answering a turn as soon as it processes it, and issues no
    /// resumable handle until that turn's reaction; so a handle that arrives while a turn
    /// still awaits its reaction was taken before that turn, and holds at most the messages
    /// sent before it. Without such a turn: every message sent so far.
    ///
    /// Without transcripts, a turn behind a run of audio that awaits a reaction may have been
    /// answered by a reaction the tracker credited to the audio (the client cannot tell the
    /// server's spoken turns apart): the bound would rest on a guess, so it is every message
    /// sent so far, and a handle whose content that makes uncertain is not trusted.
    pub fn handle_bound(&self) -> ClientMessageIndex {
        match self
            .awaiting
            .iter()
            .find(|a| a.kind != Pending::ToolResponse)
        {
            Some(turn) if matches!(turn.kind, Pending::Turn | Pending::Spoken) => {
                ClientMessageIndex(turn.first.0.saturating_sub(1))
            }
            _ => self.last_sent,
        }
    }

    /// A `setup` was sent on `connection` (index [`ClientMessageIndex::SETUP`]). `Fresh` starts
    /// a new server session and drops the old handle; `Resumed` continues the session of the
    /// held handle.
    pub fn on_connected(
        &mut self,
        connection: ConnectionId,
        mode: ConnectMode,
    ) -> Result<(), Error> {
        match mode {
            ConnectMode::Fresh => {
                self.epoch = SessionEpoch(self.epoch.0.saturating_add(1));
                self.handle = None;
                self.tool_calls.on_connect(None);
            }
            ConnectMode::Resumed => {
                let Some(handle) = self.handle.as_ref() else {
                    return Err(Error::NoHandleToResume { connection });
                };
                self.tool_calls.on_connect(Some(handle));
            }
        }
        self.connection = Some(connection);
        self.last_sent = ClientMessageIndex::SETUP;
        self.runs.clear();
        self.in_run = false;
        self.activity_open = false;
        self.quiet = None;
        self.audio_since_end = false;
        self.speech_ends.clear();
        self.last_spoken = None;
        self.awaiting.clear();
        self.tool_turn = ToolTurn::None;
        self.reacted_through = None;
        self.finished_through = None;
        Ok(())
    }

    /// The connection closed; nothing more is sent or observed on it.
    pub fn on_disconnected(&mut self) {
        self.connection = None;
        self.awaiting.clear();
        self.tool_turn = ToolTurn::None;
    }

    /// A client message of `kind` was written to the open connection; returns its position
    /// (mark the operations it carried sent at that position in the outbox).
    pub fn on_sent(&mut self, kind: MessageKind) -> Result<MessagePosition, Error> {
        let connection = self.connection.ok_or(Error::NotConnected)?;
        self.last_sent = self.last_sent.next();
        let index = self.last_sent;
        let pending = match kind {
            MessageKind::Silent => None,
            MessageKind::TurnStart => Some(Pending::Turn),
            MessageKind::ToolResponse => Some(Pending::ToolResponse),
            // With transcripts, spoken turns are announced and placed by their end.
            MessageKind::Audio | MessageKind::QuietAudio => {
                self.audio_run(index, index, kind == MessageKind::Audio);
                let awaits = !(self.transcripts || self.manual_activity) || SEND_ORDER_MUTANT;
                awaits.then_some(Pending::Audio)
            }
            // Under manual activity detection it ends nothing.
            MessageKind::AudioStreamEnd => {
                if self.transcripts
                    && !self.manual_activity
                    && std::mem::take(&mut self.audio_since_end)
                {
                    self.speech_ends.push_back(index);
                }
                self.quiet = None;
                // Without transcripts the run of audio before it gets the reaction.
                None
            }
            MessageKind::ActivityStart => {
                self.activity_open = true;
                None
            }
            MessageKind::ActivityEnd if std::mem::take(&mut self.activity_open) => {
                if self.transcripts {
                    self.speech_ends.push_back(index);
                    None
                } else {
                    Some(Pending::Turn)
                }
            }
            MessageKind::ActivityEnd => None,
        };
        match (pending, self.awaiting.back_mut()) {
            (None, _) => {}
            (Some(Pending::Audio), Some(run)) if run.kind == Pending::Audio => run.last = index,
            // Quiet audio alone is no turn (no detector hears it): it extends a run speech
            // opened (the silence that ends it), and opens none, so the next reaction goes to
            // what was sent after it.
            (Some(Pending::Audio), _) if kind == MessageKind::QuietAudio && !SEND_ORDER_MUTANT => {}
            (Some(kind), _) => self.awaiting.push_back(Awaiting {
                first: index,
                last: index,
                kind,
            }),
        }
        self.in_run = matches!(kind, MessageKind::Audio | MessageKind::QuietAudio);
        Ok(MessagePosition::new(connection, index))
    }

    /// Audio messages `first..=last` were sent (with transcripts: remembered as runs, where a
    /// spoken turn can end).
    fn audio_run(&mut self, first: ClientMessageIndex, last: ClientMessageIndex, voiced: bool) {
        /// Runs kept while no transcript comes (speech the server does not transcribe):
        /// the oldest go first; a spoken turn ends on a recent one.
        const MAX_RUNS: usize = 1024;
        if !self.transcripts {
            return;
        }
        self.audio_since_end |= voiced;
        match self.runs.back_mut() {
            Some(run) if self.in_run => run.1 = last,
            _ => {
                if self.runs.len() == MAX_RUNS {
                    self.runs.pop_front();
                }
                self.runs.push_back((first, last));
            }
        }
    }

    /// `count` client messages of `kind` were written (a batch of audio frames); returns the
    /// position of the last. Same as `count` calls of [`on_sent`](Self::on_sent), in constant
    /// time for audio and silent messages (the hot path: a run of audio is one range).
    pub fn on_sent_many(
        &mut self,
        kind: MessageKind,
        count: u32,
    ) -> Result<MessagePosition, Error> {
        let mut at = self.on_sent(kind)?;
        if count <= 1 {
            return Ok(at);
        }
        if !matches!(
            kind,
            MessageKind::Audio | MessageKind::QuietAudio | MessageKind::Silent
        ) {
            for _ in 1..count {
                at = self.on_sent(kind)?;
            }
            return Ok(at);
        }
        // The first call opened (or extended) the run; the rest extend it to the last index.
        let last = ClientMessageIndex(self.last_sent.0.saturating_add(u64::from(count - 1)));
        self.last_sent = last;
        if matches!(kind, MessageKind::Audio | MessageKind::QuietAudio) {
            self.audio_run(last, last, kind == MessageKind::Audio);
            if let Some(run) = self
                .awaiting
                .back_mut()
                .filter(|r| r.kind == Pending::Audio)
            {
                run.last = last;
            }
        }
        Ok(MessagePosition::new(at.connection, last))
    }

    /// The server reacted visibly (see [`ServerReaction`]). Returns the client message the
    /// reacting turn answers: output of the turn sits, in the server's context, after that
    /// message and before every later one. Without a new message answered, the last message
    /// known to be processed (or [`ClientMessageIndex::SETUP`]).
    pub fn on_reaction(&mut self, reaction: ServerReaction) -> ClientMessageIndex {
        let known = self.reacted_through.unwrap_or(ClientMessageIndex::SETUP);
        if self.connection.is_none() {
            return known;
        }
        let answered = match (self.tool_turn, reaction) {
            // A cancelled tool turn (also one a resumed session was waiting in): it ended
            // because of some later message, which gets its own reaction; nothing new is
            // proven processed.
            (_, ServerReaction::CancelledTurnComplete) => None,
            // The turn that called non-blocking tools goes on talking: its further calls and
            // its end (finished or cut off) are still the answer to the turn already
            // credited; the results get turns of their own.
            (ToolTurn::Continuing, _) => None,
            // The model turn continued from the tool responses sent since the call (blocking
            // calls): the last of them was processed, and everything before it.
            (ToolTurn::Blocking, _) => self
                .awaiting
                .iter()
                .rev()
                .find(|a| a.kind == Pending::ToolResponse)
                .map(|a| a.last),
            // The first turn, in the order turns complete, still awaiting a reaction; of a run
            // of audio (without transcripts), only its first chunk is provably processed.
            (ToolTurn::None, _) => self.awaiting.front().map(|a| a.first),
        };
        self.tool_turn = match reaction {
            ServerReaction::ToolCall => ToolTurn::Blocking,
            ServerReaction::NonBlockingToolCall => ToolTurn::Continuing,
            _ => ToolTurn::None,
        };
        match answered {
            Some(index) => {
                self.advance(index);
                if matches!(
                    reaction,
                    ServerReaction::ToolCall
                        | ServerReaction::NonBlockingToolCall
                        | ServerReaction::TurnComplete
                ) {
                    self.finished_through =
                        Some(self.finished_through.map_or(index, |f| f.max(index)));
                }
                index
            }
            None => known,
        }
    }

    /// A model turn ended that may have been one no client message asked for (on extended
    /// thinking, a filler while a call is pending: `interactionStatus: IN_PROGRESS`). It
    /// credits nothing, closes the open tool turn if any, and returns where its output goes:
    /// after every message known processed (reacted to, or a spoken turn the server
    /// transcribed), before the rest.
    pub fn on_unmatched_reaction(&mut self) -> ClientMessageIndex {
        self.tool_turn = ToolTurn::None;
        let reacted = self.reacted_through.unwrap_or(ClientMessageIndex::SETUP);
        self.last_spoken
            .map_or(reacted, |spoken| spoken.max(reacted))
    }

    /// A reaction proves the server processed every message up to `index` of the open
    /// connection (a turn that completed `IDLE` after the results of every pending call were
    /// sent: the server closed those calls, so it processed their results). Everything up to
    /// `index` stops awaiting a reaction; `finished`: the turn was not cut off.
    pub fn credit_through(&mut self, index: ClientMessageIndex, finished: bool) {
        if self.connection.is_none() || index > self.last_sent {
            return;
        }
        self.tool_turn = ToolTurn::None;
        self.advance(index);
        if finished {
            self.finished_through = Some(self.finished_through.map_or(index, |f| f.max(index)));
        }
    }

    /// The message at `at` will provoke no reaction: a tool response for a call the server
    /// cancelled (the server ignores it). It no longer awaits one, so later reactions are
    /// matched to the messages that caused them.
    pub fn ignore(&mut self, at: MessagePosition) {
        if self.connection == Some(at.connection) {
            self.awaiting
                .retain(|a| !(a.first == at.index && a.last == at.index));
        }
    }

    /// Everything up to `index` is processed: drop it from the pending messages.
    fn advance(&mut self, index: ClientMessageIndex) {
        self.reacted_through = Some(self.reacted_through.map_or(index, |r| r.max(index)));
        self.awaiting.retain(|a| a.last > index);
        if let Some(front) = self.awaiting.front_mut() {
            if front.first <= index {
                front.first = index.next();
            }
        }
    }

    /// A `sessionResumptionUpdate` arrived at `now`. Returns the new record when it was
    /// resumable; a non-resumable update marks the held handle stale and returns `None`.
    pub fn on_handle_update(
        &mut self,
        update: &HandleUpdate,
        now: Millis,
    ) -> Result<Option<HandleRecord>, Error> {
        let connection = self.connection.ok_or(Error::NotConnected)?;
        if !update.resumable {
            if let Some(handle) = self.handle.as_mut() {
                if handle.freshness == Freshness::Fresh {
                    handle.freshness = Freshness::StaleSince(now);
                }
            }
            return Ok(None);
        }
        let token = match update.new_handle.as_deref() {
            Some(token) if !token.is_empty() => HandleToken::new(token),
            _ => return Err(Error::MissingHandleToken),
        };
        let coverage = match (self.transparent, update.last_consumed) {
            (true, Some(index)) => {
                if index > self.last_sent {
                    return Err(Error::IndexBeyondSent {
                        connection,
                        index,
                        last_sent: self.last_sent,
                    });
                }
                Coverage {
                    connection,
                    through: (index > ClientMessageIndex::SETUP).then_some(index),
                    exact: true,
                    answered: self.finished_through,
                }
            }
            _ => Coverage {
                connection,
                through: self.reacted_through,
                exact: false,
                answered: self.finished_through,
            },
        };
        let serial = HandleSerial(self.next_serial);
        self.next_serial = self.next_serial.saturating_add(1);
        self.tool_calls.on_handle(connection, serial);
        let record = HandleRecord::new(token, coverage, Freshness::Fresh, now, serial, self.epoch);
        self.handle = Some(record.clone());
        Ok(Some(record))
    }

    /// A `toolCall` carried the call `call_id` (also call [`on_reaction`](Self::on_reaction)
    /// once per `toolCall` message).
    pub fn on_tool_call(&mut self, call_id: &str, name: &str) -> Result<(), Error> {
        let connection = self.connection.ok_or(Error::NotConnected)?;
        self.tool_calls
            .observe(call_id, name, connection, self.epoch);
        Ok(())
    }

    /// A call the session inherited without its result (an initial context whose call has no
    /// output: the process that ran the tool is gone). It is recorded as
    /// [`ToolCallStatus::Lost`], known to no handle, so that the policy answers or reports it
    /// (scenario S16).
    pub fn on_inherited_call(&mut self, call_id: &str, name: &str) {
        let connection = self.connection.unwrap_or(ConnectionId(0));
        self.tool_calls
            .observe(call_id, name, connection, self.epoch);
        self.tool_calls.set_status(call_id, ToolCallStatus::Lost);
    }

    /// A tool call of a session restored from a store (another process, scenario S31), as its
    /// context shows it: `held` when the restored handle holds the call (a session resumed
    /// from it knows the call and takes a `toolResponse` for it), and its client-side
    /// `status` (answered when the context has its result; lost when nobody in this process
    /// will run it). Call after [`restore`](Self::restore); without a handle, `held` is
    /// ignored.
    pub fn on_restored_call(
        &mut self,
        call_id: &str,
        name: &str,
        held: bool,
        status: ToolCallStatus,
    ) {
        let (connection, known_by) = match &self.handle {
            Some(handle) => (handle.connection, held.then_some(handle.serial)),
            None => (ConnectionId(0), None),
        };
        self.tool_calls
            .observe(call_id, name, connection, self.epoch);
        self.tool_calls.restored(call_id, known_by, status);
    }

    /// Records whether the model waits for `call_id`'s result (a blocking call) or talks on
    /// (non-blocking); returns `false` for an unknown call id.
    pub fn set_tool_blocking(&mut self, call_id: &str, blocking: bool) -> bool {
        self.tool_calls.set_blocking(call_id, blocking)
    }

    /// Sets a call's client-side status (answered, cancelled by `toolCallCancellation`, lost);
    /// returns `false` for an unknown call id.
    pub fn set_tool_status(&mut self, call_id: &str, status: ToolCallStatus) -> bool {
        self.tool_calls.set_status(call_id, status)
    }
}
