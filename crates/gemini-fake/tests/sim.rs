//! `SimServer`: the fake's server logic on virtual time, without sockets or a runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, model_text, resumption, shape};
use gemini_fake::{
    ConnectionEnd, ConnectionId, FakeConfig, FakeServer, Family, LifetimeEnd, Part, ResponseFate,
    SimOutput, SimServer,
};
use gemini_transport::wire::{
    ClientMessage, FunctionDeclaration, FunctionResponse, Modality, ServerMessage, ServerPayload,
    SessionResumptionConfig, Setup, Tool,
};
use serde_json::json;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn text_setup(config: &FakeConfig) -> Setup {
    Setup::new(config.setup_model()).with_response_modality(Modality::Text)
}

fn resumable(config: &FakeConfig) -> Setup {
    text_setup(config).with_session_resumption(SessionResumptionConfig::default())
}

fn resume_from(config: &FakeConfig, handle: &str) -> Setup {
    text_setup(config).with_session_resumption(SessionResumptionConfig::resume(handle))
}

fn with_functions(setup: Setup, names: &[&str]) -> Setup {
    setup.with_tools(vec![Tool::functions(
        names
            .iter()
            .map(|n| FunctionDeclaration::new(*n, "test function"))
            .collect(),
    )])
}

/// A SimServer and everything it sent, with the virtual time each output was taken at.
struct Run {
    sim: SimServer,
    log: Vec<(Duration, ConnectionId, SimOutput)>,
}

impl Run {
    fn new(config: FakeConfig) -> Run {
        Run {
            sim: SimServer::new(config),
            log: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some((conn, output)) = self.sim.poll_output() {
            self.log.push((self.sim.now(), conn, output));
        }
    }

    fn connect(&mut self, at: Duration) -> ConnectionId {
        let conn = self.sim.connect(at).unwrap();
        self.drain();
        conn
    }

    fn send(&mut self, conn: ConnectionId, message: &ClientMessage, at: Duration) {
        self.sim.receive(conn, message.to_json().as_bytes(), at);
        self.drain();
    }

    /// Runs every timer up to `until` (inclusive), one wake at a time.
    fn run_until(&mut self, until: Duration) {
        while let Some(at) = self.sim.next_timer().filter(|at| *at <= until) {
            self.sim.advance(at);
            self.drain();
        }
        self.sim.advance(until);
        self.drain();
    }

    /// Runs timers until nothing is pending.
    fn run_to_idle(&mut self) {
        while let Some(at) = self.sim.next_timer() {
            self.sim.advance(at);
            self.drain();
        }
    }

    /// Server messages sent on `conn` so far, with their times.
    fn frames(&self, conn: ConnectionId) -> Vec<(Duration, ServerMessage)> {
        self.log
            .iter()
            .filter(|(_, c, _)| *c == conn)
            .filter_map(|(at, _, output)| match output {
                SimOutput::Frame(message) => Some((*at, message.clone())),
                _ => None,
            })
            .collect()
    }

    fn messages(&self, conn: ConnectionId) -> Vec<ServerMessage> {
        self.frames(conn).into_iter().map(|(_, m)| m).collect()
    }

    /// How `conn` ended, as the client saw it (close or drop), if it did.
    fn ending(&self, conn: ConnectionId) -> Option<(Duration, SimOutput)> {
        self.log
            .iter()
            .find(|(_, c, o)| *c == conn && matches!(o, SimOutput::Close { .. } | SimOutput::Drop))
            .map(|(at, _, o)| (*at, o.clone()))
    }

    /// The handles sent on `conn`, in order.
    fn handles(&self, conn: ConnectionId) -> Vec<String> {
        self.messages(conn)
            .iter()
            .filter_map(|m| resumption(m).and_then(|(handle, _)| handle))
            .collect()
    }
}

#[test]
fn a_text_turn_is_echoed_one_chunk_per_interval() {
    let config = FakeConfig::new().with_lifetime(None);
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    run.send(
        conn,
        &ClientMessage::setup(resumable(&config)),
        Duration::ZERO,
    );
    assert_eq!(shape(&run.messages(conn)), ["setupComplete", "handle"]);
    assert_eq!(
        run.sim.next_timer(),
        None,
        "an idle connection has no timer"
    );

    run.send(conn, &ClientMessage::text("hello big world"), ms(100));
    assert_eq!(run.sim.next_timer(), Some(ms(105)));
    run.run_to_idle();
    let frames = run.frames(conn);
    let turn: Vec<_> = frames[2..].iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(
        shape(&turn),
        [
            "notResumable",
            "modelTurn",
            "modelTurn",
            "modelTurn",
            "modelTurn",
            "generationComplete",
            "turnComplete",
            "handle"
        ]
    );
    let times: Vec<_> = frames[2..].iter().map(|(at, _)| *at).collect();
    assert_eq!(
        times,
        [
            ms(100),
            ms(105),
            ms(110),
            ms(115),
            ms(120),
            ms(120),
            ms(120),
            ms(120)
        ]
    );
    assert_eq!(model_text(&turn), "echo: hello big world");
    assert_eq!(
        turn[6].to_json(),
        r#"{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":3,"responseTokenCount":4,"totalTokenCount":7,"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}],"responseTokensDetails":[{"modality":"TEXT","tokenCount":4}]}}"#
    );
    assert_eq!(run.sim.now(), ms(120));
    let session = run.sim.latest_session().unwrap();
    assert_eq!(
        session.context_texts(),
        ["hello big world", "echo: hello big world"]
    );
    assert_eq!(session.generations(), 1);
    let issued = session.handles_issued();
    assert_eq!(issued.len(), 2);
    assert_eq!(run.sim.time_of(issued[1].issued_at), ms(120));
    assert_eq!(
        run.handles(conn),
        [issued[0].handle.clone(), issued[1].handle.clone()]
    );
    let record = &run.sim.connections()[0];
    assert_eq!(record.frames.len(), 2);
    assert_eq!(run.sim.time_of(record.opened_at), Duration::ZERO);
    assert!(record.is_open());
}

#[test]
fn audio_chunks_follow_the_configured_interval() {
    let config = FakeConfig::new()
        .with_family(Family::Gemini38)
        .with_chunk_interval(ms(40));
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    let setup = Setup::new(config.setup_model())
        .with_response_modality(Modality::Audio)
        .with_transcriptions();
    run.send(conn, &ClientMessage::setup(setup), Duration::ZERO);
    run.send(conn, &ClientMessage::text("hi there"), ms(10));
    run.run_to_idle();
    let frames = run.frames(conn);
    // setupComplete, three packed audio chunks, generationComplete, turnComplete.
    assert_eq!(frames.len(), 6);
    let chunk_times: Vec<_> = frames[1..4].iter().map(|(at, _)| *at).collect();
    assert_eq!(chunk_times, [ms(50), ms(90), ms(130)]);
    let transcript: String = frames[1..4]
        .iter()
        .filter_map(|(_, m)| m.server_content_ref())
        .filter_map(|c| c.output_transcription.as_ref())
        .map(|t| t.text.clone())
        .collect();
    assert_eq!(transcript, "echo: hi there");
    let session = run.sim.latest_session().unwrap();
    assert_eq!(
        session.context()[1].parts,
        [Part::AudioTranscript("echo: hi there".to_owned())]
    );
}

#[test]
fn a_tool_call_round_trip() {
    let config = FakeConfig::new().with_lifetime(None);
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    let setup = with_functions(text_setup(&config), &["get_weather"]);
    run.send(conn, &ClientMessage::setup(setup), Duration::ZERO);
    run.send(
        conn,
        &ClientMessage::text("what does get_weather say"),
        ms(1),
    );
    let frames = run.messages(conn);
    assert_eq!(
        frames[1].to_json(),
        r#"{"toolCall":{"functionCalls":[{"id":"call-1-1","name":"get_weather"}]}}"#
    );
    assert_eq!(
        run.sim.next_timer(),
        None,
        "the model waits for the response"
    );

    let answer = json!({"temp_c": 18}).as_object().cloned().unwrap();
    let response = FunctionResponse::new("call-1-1", "get_weather", answer);
    run.send(
        conn,
        &ClientMessage::tool_response(vec![response.clone()]),
        ms(30),
    );
    run.run_to_idle();
    let turn = &run.messages(conn)[2..];
    assert_eq!(model_text(turn), r#"get_weather returned {"temp_c":18}"#);
    assert_eq!(shape(turn).last().unwrap(), "turnComplete");
    assert_eq!(
        run.frames(conn)[2].0,
        ms(35),
        "first chunk one interval later"
    );

    // A second response for the same id is recorded and ignored.
    run.send(conn, &ClientMessage::tool_response(vec![response]), ms(200));
    assert_eq!(run.sim.next_timer(), None);
    let session = run.sim.latest_session().unwrap();
    let fates: Vec<_> = session.tool_responses().iter().map(|r| r.fate).collect();
    assert_eq!(fates, [ResponseFate::Accepted, ResponseFate::Duplicate]);
    assert_eq!(session.tool_calls()[0].connection, conn);
    assert_eq!(session.generations(), 2);
    assert_eq!(session.context().len(), 4);
    assert!(session.pending_calls().is_empty());
}

#[test]
fn lifetime_go_away_then_close_on_virtual_time() {
    let config = FakeConfig::new()
        .with_lifetime(Some(Duration::from_secs(600)))
        .with_go_away_lead(Duration::from_secs(50))
        .with_lifetime_end(LifetimeEnd::DeadlineExpired);
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::from_secs(1));
    run.send(
        conn,
        &ClientMessage::setup(text_setup(&config)),
        Duration::from_secs(1),
    );
    assert_eq!(run.sim.next_timer(), Some(Duration::from_secs(551)));
    run.run_to_idle();

    let frames = run.frames(conn);
    let (at, go_away) = frames.last().unwrap();
    assert_eq!(*at, Duration::from_secs(551));
    match &go_away.payload {
        Some(ServerPayload::GoAway(g)) => assert_eq!(g.time_left, Duration::from_secs(50)),
        other => panic!("expected goAway, got {other:?}"),
    }
    let reason = "Deadline expired before operation could complete.".to_owned();
    assert_eq!(
        run.ending(conn),
        Some((
            Duration::from_secs(601),
            SimOutput::Close {
                code: 1011,
                reason: reason.clone()
            }
        ))
    );
    assert!(run.sim.open_connections().is_empty());
    assert_eq!(run.sim.next_timer(), None);
    let record = &run.sim.connections()[0];
    let (end, ended_at) = record.end.clone().unwrap();
    assert_eq!(end, ConnectionEnd::ServerClose { code: 1011, reason });
    assert_eq!(run.sim.time_of(ended_at), Duration::from_secs(601));
    assert_eq!(run.sim.inspect(|view| view.open_connections()), 0);
}

#[test]
fn a_go_away_fault_ends_the_connection_at_its_deadline() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    run.send(
        conn,
        &ClientMessage::setup(text_setup(&config)),
        Duration::ZERO,
    );
    run.sim.advance(ms(500));
    run.sim.faults().go_away(Duration::from_secs(5));
    assert_eq!(run.sim.next_timer(), Some(ms(500)), "a control is waiting");
    run.drain();
    assert_eq!(shape(&run.messages(conn)), ["setupComplete", "goAway"]);
    run.run_to_idle();
    assert_eq!(
        run.ending(conn),
        Some((
            ms(5500),
            SimOutput::Close {
                code: 1008,
                reason: String::new()
            }
        ))
    );
}

#[test]
fn resuming_from_a_handle_restores_its_snapshot() {
    let config = FakeConfig::new().with_lifetime(None);
    let mut run = Run::new(config.clone());
    let first = run.connect(Duration::ZERO);
    run.send(
        first,
        &ClientMessage::setup(resumable(&config)),
        Duration::ZERO,
    );
    run.send(first, &ClientMessage::text("first"), ms(10));
    run.run_to_idle();
    let h1 = run.handles(first).last().cloned().unwrap();
    run.send(first, &ClientMessage::text("second"), ms(100));
    run.run_to_idle();
    assert_eq!(
        run.sim.latest_session().unwrap().context_texts(),
        ["first", "echo: first", "second", "echo: second"]
    );
    run.sim.client_closed(first, Some(1000), ms(200));
    assert!(run.sim.open_connections().is_empty());

    let second = run.connect(ms(300));
    run.send(
        second,
        &ClientMessage::setup(resume_from(&config, &h1)),
        ms(300),
    );
    assert_eq!(shape(&run.messages(second)), ["setupComplete", "handle"]);
    assert_eq!(
        run.sim.sessions().len(),
        1,
        "a resume continues the session"
    );
    let session = run.sim.latest_session().unwrap();
    assert_eq!(session.context_texts(), ["first", "echo: first"]);
    assert_eq!(session.restores(), std::slice::from_ref(&h1));
    assert_eq!(session.generations(), 2, "the journal is never rolled back");
    assert_eq!(session.overlaps(), 0);
    let records = session.connections();
    assert_eq!(records[1].resumed_from.as_deref(), Some(h1.as_str()));
    assert_eq!(
        records[0]
            .end
            .clone()
            .map(|(end, at)| (end, run.sim.time_of(at))),
        Some((
            ConnectionEnd::ClientClose {
                code: 1000,
                reason: String::new()
            },
            ms(200)
        ))
    );

    // Unknown handles close the resumed setup with 1007.
    let third = run.connect(ms(400));
    run.send(
        third,
        &ClientMessage::setup(resume_from(&config, "nope")),
        ms(400),
    );
    assert!(matches!(
        run.ending(third),
        Some((_, SimOutput::Close { code: 1007, .. }))
    ));
}

#[test]
fn drop_connections_drops_every_open_connection() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    let a = run.connect(Duration::ZERO);
    let b = run.connect(ms(1));
    run.send(a, &ClientMessage::setup(text_setup(&config)), ms(2));
    run.send(a, &ClientMessage::text("one two three"), ms(3));
    run.sim.advance(ms(9));
    run.sim.faults().drop_connections();
    run.drain();
    assert_eq!(run.ending(a), Some((ms(9), SimOutput::Drop)));
    assert_eq!(run.ending(b), Some((ms(9), SimOutput::Drop)));
    // One chunk left before the drop; the rest of the answer never comes.
    assert_eq!(model_text(&run.messages(a)), "echo: ");
    assert!(run.sim.open_connections().is_empty());
    assert_eq!(run.sim.next_timer(), None);
    let ends: Vec<_> = run
        .sim
        .connections()
        .into_iter()
        .map(|c| c.end.map(|(end, _)| end))
        .collect();
    assert_eq!(
        ends,
        [Some(ConnectionEnd::Dropped), Some(ConnectionEnd::Dropped)]
    );
    // Frames for a closed connection are ignored.
    run.send(a, &ClientMessage::text("late"), ms(20));
    assert_eq!(run.sim.connections()[0].frames.len(), 2);
}

#[test]
fn close_and_raw_frame_controls() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    run.sim.faults().send_malformed();
    run.sim.faults().close_connections(1011, "internal");
    run.drain();
    let outputs: Vec<_> = run.log.iter().map(|(_, _, o)| o.clone()).collect();
    assert_eq!(
        outputs,
        [
            SimOutput::Raw {
                payload: b"{\"serverContent\": ".to_vec(),
                binary: true
            },
            SimOutput::Close {
                code: 1011,
                reason: "internal".to_owned()
            }
        ]
    );
    assert_eq!(
        run.sim.connections()[0].closed_with(),
        Some((1011, "internal"))
    );
    assert!(run.sim.open_connections().is_empty());
    let _ = conn;
}

#[test]
fn refused_upgrades_return_the_status() {
    let mut sim = SimServer::new(FakeConfig::new());
    sim.faults().refuse_upgrades(2, 503);
    assert_eq!(sim.connect(Duration::ZERO), Err(503));
    assert_eq!(sim.connect(ms(10)), Err(503));
    let conn = sim.connect(ms(20)).unwrap();
    assert_eq!(conn, ConnectionId(1), "refused dials are not connections");
    assert_eq!(sim.connections().len(), 1);
    assert_eq!(sim.now(), ms(20));
}

#[test]
fn ignored_setups_are_never_answered() {
    let config = FakeConfig::new();
    let setup = ClientMessage::setup(text_setup(&config));
    let mut run = Run::new(config);
    run.sim.faults().ignore_setups(1);
    let ignored = run.connect(Duration::ZERO);
    run.send(ignored, &setup, ms(1));
    run.send(ignored, &ClientMessage::text("hello"), ms(2));
    run.run_until(ms(60_000));
    assert!(run.messages(ignored).is_empty(), "nothing answered");
    assert_eq!(run.ending(ignored), None, "the connection stays open");
    let answered = run.connect(ms(60_001));
    run.send(answered, &setup, ms(60_002));
    assert!(matches!(
        run.messages(answered)
            .first()
            .and_then(|m| m.payload.as_ref()),
        Some(ServerPayload::SetupComplete(_))
    ));
}

#[test]
fn a_wrong_key_is_closed_with_1007() {
    let mut sim = SimServer::new(FakeConfig::new().with_api_key("k"));
    let good = sim.connect(Duration::ZERO).unwrap();
    let bad = sim.connect_with_key(Some("other"), Duration::ZERO).unwrap();
    let reason = "API key not valid. Please pass a valid API key.".to_owned();
    assert_eq!(
        sim.poll_output(),
        Some((bad, SimOutput::Close { code: 1007, reason }))
    );
    assert_eq!(sim.poll_output(), None);
    assert_eq!(sim.open_connections(), [good]);
}

#[test]
fn delayed_and_stalled_frames_leave_on_virtual_time() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    run.sim.faults().delay_frames(ms(100));
    run.send(conn, &ClientMessage::setup(text_setup(&config)), ms(1));
    assert!(run.log.is_empty());
    assert_eq!(run.sim.next_timer(), Some(ms(101)));
    run.run_until(ms(101));
    assert_eq!(run.frames(conn)[0].0, ms(101));

    run.sim.faults().delay_frames(Duration::ZERO);
    run.sim.faults().stall();
    run.send(conn, &ClientMessage::text("a b"), ms(200));
    run.run_until(ms(1000));
    assert_eq!(run.frames(conn).len(), 1, "held while stalled");
    run.sim.faults().unstall();
    run.drain();
    let frames = run.frames(conn);
    assert_eq!(
        shape(&frames.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>()),
        [
            "setupComplete",
            "modelTurn",
            "modelTurn",
            "modelTurn",
            "generationComplete",
            "turnComplete"
        ]
    );
    assert!(frames[1..].iter().all(|(at, _)| *at == ms(1000)));
}

/// A schedule touching most of the server: interruption, tool calls, faults, lifetime, resume.
fn scripted_schedule() -> (Vec<(Duration, ConnectionId, SimOutput)>, String) {
    let config = FakeConfig::new()
        .with_lifetime(Some(Duration::from_secs(2)))
        .with_go_away_lead(ms(500))
        .with_chunk_interval(ms(7));
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    let setup = with_functions(resumable(&config), &["lookup"]);
    run.send(conn, &ClientMessage::setup(setup.clone()), ms(3));
    run.send(conn, &ClientMessage::text("one two three four five"), ms(5));
    run.run_until(ms(20));
    run.send(conn, &ClientMessage::realtime_text("lookup now"), ms(21));
    run.sim.faults().delay_frames(ms(3));
    run.send(
        conn,
        &ClientMessage::tool_response(vec![FunctionResponse::new(
            "call-1-1",
            "lookup",
            serde_json::Map::new(),
        )]),
        ms(40),
    );
    run.run_until(ms(1600));
    let handle = run.handles(conn).last().cloned().unwrap();
    run.run_to_idle();
    let next = run.connect(Duration::from_secs(3));
    run.send(
        next,
        &ClientMessage::setup(resume_from(&config, &handle).with_tools(setup.tools.clone())),
        Duration::from_secs(3),
    );
    run.send(next, &ClientMessage::text("again"), Duration::from_secs(3));
    run.sim.advance(Duration::from_secs(3) + ms(8));
    run.sim.faults().drop_connections();
    run.run_to_idle();
    let records = format!("{:?} {:?}", run.sim.connections(), run.sim.latest_session());
    (run.log, records)
}

#[test]
fn same_calls_same_outputs() {
    let (first, first_records) = scripted_schedule();
    let (second, second_records) = scripted_schedule();
    assert_eq!(first, second);
    assert_eq!(first_records, second_records);
    // The schedule did what it says.
    let kinds: Vec<_> = first
        .iter()
        .map(|(_, conn, output)| match output {
            SimOutput::Frame(m) => format!("{conn}:{}", shape(std::slice::from_ref(m))[0]),
            other => format!("{conn}:{other:?}"),
        })
        .collect();
    assert!(kinds.contains(&"1:interrupted".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"1:toolCall".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"1:goAway".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"2:Drop".to_owned()), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("1:Close")), "{kinds:?}");
}

#[test]
fn usable_from_another_thread_without_a_runtime() {
    fn assert_send<T: Send>() {}
    assert_send::<SimServer>();
    let handle = std::thread::spawn(|| {
        let mut run = Run::new(FakeConfig::new());
        let conn = run.connect(Duration::ZERO);
        let setup = text_setup(run.sim.config());
        run.send(conn, &ClientMessage::setup(setup), Duration::ZERO);
        run.send(conn, &ClientMessage::text("hi"), Duration::ZERO);
        run.run_to_idle();
        model_text(&run.messages(conn))
    });
    assert_eq!(handle.join().unwrap(), "echo: hi");
}

/// The simulated server and the socket server send the same messages for the same input.
#[tokio::test]
async fn the_sim_sends_what_the_socket_server_sends() {
    let config = FakeConfig::new().with_lifetime(None);
    let setup = with_functions(resumable(&config), &["lookup"]);
    let inputs = [
        ClientMessage::text("hello world"),
        ClientMessage::text("lookup it"),
        ClientMessage::tool_response(vec![FunctionResponse::new(
            "call-1-1",
            "lookup",
            serde_json::Map::new(),
        )]),
    ];

    let server = FakeServer::start(config.clone()).await.unwrap();
    let mut client = Client::connect(&server).await;
    client.send(&ClientMessage::setup(setup.clone())).await;
    let mut socket = client
        .until(|m| resumption(m).is_some_and(|(h, _)| h.is_some()))
        .await;
    for input in &inputs {
        client.send(input).await;
        let stop = |m: &ServerMessage| {
            matches!(m.payload, Some(ServerPayload::ToolCall(_)))
                || resumption(m).is_some_and(|(h, _)| h.is_some())
        };
        socket.extend(client.until(stop).await);
    }

    let mut run = Run::new(config);
    let conn = run.connect(Duration::ZERO);
    run.send(conn, &ClientMessage::setup(setup), Duration::ZERO);
    for input in &inputs {
        let at = run.sim.now();
        run.send(conn, input, at);
        run.run_to_idle();
    }
    let json = |messages: &[ServerMessage]| -> Vec<String> {
        messages.iter().map(ServerMessage::to_json).collect()
    };
    assert_eq!(json(&run.messages(conn)), json(&socket));
}

/// 16 kHz PCM16: `ms` of a loud tone (speech to the fake's voice detection) or of silence.
fn pcm(ms: u64, voiced: bool) -> Vec<u8> {
    (0..ms * 16)
        .flat_map(|n| {
            let sample: i16 = if voiced && n % 2 == 0 {
                8_000
            } else if voiced {
                -8_000
            } else {
                0
            };
            sample.to_le_bytes()
        })
        .collect()
}

/// The server answers user turns in the order they complete: a typed turn sent while the user
/// speaks is answered first, and the spoken turn, completing at `audioStreamEnd`, cuts that
/// answer off and is answered next. Each turn gets its own reaction.
#[test]
fn a_spoken_turn_completing_cuts_off_the_answer_under_way() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    let conn = run.connect(Duration::ZERO);
    run.send(
        conn,
        &ClientMessage::setup(text_setup(&config)),
        Duration::ZERO,
    );
    run.send(conn, &ClientMessage::audio(&pcm(200, true), 16_000), ms(10));
    run.send(conn, &ClientMessage::text("typed while speaking"), ms(20));
    run.send(conn, &ClientMessage::audio(&pcm(200, true), 16_000), ms(30));
    run.send(conn, &ClientMessage::audio_stream_end(), ms(31));
    run.run_to_idle();
    let turn_ends = run
        .messages(conn)
        .iter()
        .filter(|m| shape(std::slice::from_ref(m)) == ["turnComplete"])
        .count();
    assert_eq!(turn_ends, 2, "one reaction per turn");
    let session = run.sim.latest_session().unwrap();
    let texts = session.context_texts();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[0], "typed while speaking");
    assert!(texts[1].starts_with("echo: typed"), "{texts:?}");
    assert!(texts[2].starts_with("[audio"), "{texts:?}");
    assert!(texts[3].starts_with("echo: [audio"), "{texts:?}");
    assert_eq!(session.generations(), 2);
}

#[test]
fn a_refused_payload_closes_the_connection_on_virtual_time_too() {
    let config = FakeConfig::new();
    let mut run = Run::new(config.clone());
    run.sim.faults().reject_messages_containing(
        "forbidden",
        1007,
        "Request contains an invalid argument.",
    );
    let conn = run.connect(Duration::ZERO);
    run.send(conn, &ClientMessage::setup(text_setup(&config)), ms(1));
    run.send(conn, &ClientMessage::text("a forbidden word"), ms(2));
    assert_eq!(
        run.ending(conn),
        Some((
            ms(2),
            SimOutput::Close {
                code: 1007,
                reason: "Request contains an invalid argument.".to_owned()
            }
        ))
    );
    assert!(run.sim.latest_session().unwrap().context().is_empty());
}
