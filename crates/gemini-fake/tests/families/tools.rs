//! Tool calls by family: blocking and non-blocking declarations, `scheduling`, interim results.

use gemini_fake::{Family, Part, ResponseFate};
use gemini_transport::wire::{Behavior, ClientMessage, InteractionStatus, Scheduling};

use crate::support::{Fake, Seen, ms, no_lifetime, response, setup, with_tool};

const IDLE: Option<InteractionStatus> = Some(InteractionStatus::Idle);

/// A connection of `family` whose model was asked for `get_time` (declared with `behavior`);
/// returns the call's id once the `toolCall` is out.
fn asked(
    fake: &mut Fake,
    family: Family,
    behavior: Option<Behavior>,
) -> (gemini_fake::ConnectionId, String) {
    let conn = fake.open(with_tool(setup(family), "get_time", behavior));
    fake.send(conn, &ClientMessage::realtime_text("what is get_time now"));
    let call = fake.calls(conn).first().cloned().expect("a toolCall");
    (conn, call)
}

#[test]
fn declarations_without_behavior_are_non_blocking_on_3_8() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, call) = asked(&mut fake, Family::Gemini38, None);
    fake.run(ms(100));
    // After the call the model goes on and completes its turn.
    assert_eq!(fake.turns(conn), [Seen::done("working on get_time", IDLE)]);
    let session = fake.sim.latest_session().unwrap();
    assert_eq!(session.pending_calls().len(), 1);
    assert_eq!(session.pending_calls()[0].id, call);
    assert!(!session.pending_calls()[0].blocking);
}

#[test]
fn blocking_declarations_pause_the_model_until_the_response() {
    for family in [Family::Gemini38, Family::Gemini25, Family::Gemini31] {
        let mut fake = Fake::new(no_lifetime());
        let (conn, call) = asked(&mut fake, family, Some(Behavior::Blocking));
        fake.run(ms(500));
        assert!(fake.turns(conn).is_empty(), "{family}: the model waits");
        fake.send(conn, &response(&call, "get_time", "noon", None, false));
        fake.run(ms(200));
        let status = family.is_3_8().then_some(InteractionStatus::Idle);
        assert_eq!(
            fake.turns(conn),
            [Seen::done(r#"get_time returned {"output":"noon"}"#, status)],
            "{family}"
        );
    }
}

#[test]
fn declarations_block_by_default_before_3_8() {
    for family in [Family::Gemini25, Family::Gemini31] {
        let mut fake = Fake::new(no_lifetime());
        let (conn, _) = asked(&mut fake, family, None);
        fake.run(ms(500));
        assert!(fake.turns(conn).is_empty(), "{family}");
        assert!(fake.sim.latest_session().unwrap().pending_calls()[0].blocking);
    }
}

#[test]
fn non_blocking_is_honoured_on_2_5_and_ignored_on_3_1() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, _) = asked(&mut fake, Family::Gemini25, Some(Behavior::NonBlocking));
    fake.run(ms(200));
    assert_eq!(fake.turns(conn), [Seen::done("working on get_time", None)]);

    let mut fake = Fake::new(no_lifetime());
    let (conn, _) = asked(&mut fake, Family::Gemini31, Some(Behavior::NonBlocking));
    fake.run(ms(200));
    assert!(
        fake.turns(conn).is_empty(),
        "3.1 calls are synchronous only"
    );
}

#[test]
fn a_when_idle_response_waits_until_the_model_is_idle() {
    for scheduling in [Some(Scheduling::WhenIdle), None] {
        let mut fake = Fake::new(no_lifetime());
        let (conn, call) = asked(&mut fake, Family::Gemini38, None);
        // The model is still saying "working on get_time".
        fake.send(
            conn,
            &response(&call, "get_time", "noon", scheduling.clone(), false),
        );
        fake.run(ms(200));
        assert_eq!(
            fake.turns(conn),
            [
                Seen::done("working on get_time", IDLE),
                Seen::done(r#"get_time returned {"output":"noon"}"#, IDLE),
            ],
            "{scheduling:?}"
        );
        // The reply that was under way goes before the response in the context.
        let texts = fake.sim.latest_session().unwrap().context_texts();
        assert_eq!(texts[2], "working on get_time");
    }
}

#[test]
fn an_interrupt_response_cuts_the_reply_in_progress() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, call) = asked(&mut fake, Family::Gemini38, None);
    fake.run(ms(6));
    fake.send(
        conn,
        &response(
            &call,
            "get_time",
            "noon",
            Some(Scheduling::Interrupt),
            false,
        ),
    );
    fake.run(ms(200));
    let turns = fake.turns(conn);
    assert_eq!(turns.len(), 2);
    assert!(turns[0].interrupted, "{turns:?}");
    assert_eq!(turns[0].said, "working ");
    assert_eq!(
        turns[1],
        Seen::done(r#"get_time returned {"output":"noon"}"#, IDLE)
    );
}

#[test]
fn a_silent_response_only_enters_the_context() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, call) = asked(&mut fake, Family::Gemini38, None);
    fake.run(ms(100));
    fake.send(
        conn,
        &response(&call, "get_time", "noon", Some(Scheduling::Silent), false),
    );
    fake.run(ms(200));
    assert_eq!(fake.turns(conn).len(), 1, "no turn answers it");
    let session = fake.sim.latest_session().unwrap();
    assert!(session.pending_calls().is_empty());
    assert!(matches!(
        session.context().last().unwrap().parts[0],
        Part::FunctionResponse { .. }
    ));
}

#[test]
fn an_interim_response_keeps_the_call_open_until_a_final_one() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, call) = asked(&mut fake, Family::Gemini38, None);
    fake.run(ms(100));
    fake.send(conn, &response(&call, "get_time", "soon", None, true));
    fake.run(ms(200));
    let session = fake.sim.latest_session().unwrap();
    assert_eq!(session.pending_calls().len(), 1, "still open");
    assert_eq!(session.tool_responses()[0].fate, ResponseFate::Interim);
    assert!(session.context_texts().len() >= 4);
    fake.send(conn, &response(&call, "get_time", "noon", None, false));
    fake.run(ms(200));
    let session = fake.sim.latest_session().unwrap();
    assert!(session.pending_calls().is_empty());
    assert_eq!(session.tool_responses()[1].fate, ResponseFate::Accepted);
    let said: Vec<String> = fake.turns(conn).into_iter().map(|t| t.said).collect();
    assert_eq!(
        said,
        [
            "working on get_time",
            r#"get_time returned {"output":"soon"}"#,
            r#"get_time returned {"output":"noon"}"#
        ]
    );
    // A third response finds the call closed.
    fake.send(conn, &response(&call, "get_time", "late", None, false));
    let session = fake.sim.latest_session().unwrap();
    assert_eq!(session.tool_responses()[2].fate, ResponseFate::Duplicate);
}
