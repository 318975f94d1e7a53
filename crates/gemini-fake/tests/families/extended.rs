//! `gemini-3.8-live-extended-thinking`: asynchronous tools only, turns that end `IN_PROGRESS`
//! while a call is pending, fillers while it waits.

use std::time::Duration;

use gemini_fake::Family;
use gemini_transport::wire::{ClientMessage, InteractionStatus, Scheduling};

use crate::support::{Fake, Seen, ms, no_lifetime, response, setup, with_tool};

const ET: Family = Family::Gemini38ExtendedThinking;

fn ask(fake: &mut Fake) -> (gemini_fake::ConnectionId, String) {
    let conn = fake.open(with_tool(setup(ET), "get_time", None));
    fake.send(conn, &ClientMessage::realtime_text("what is get_time now"));
    let call = fake.calls(conn).first().cloned().expect("a toolCall");
    (conn, call)
}

#[test]
fn a_turn_that_calls_ends_in_progress_and_a_later_turn_idle() {
    let mut fake = Fake::new(no_lifetime().with_fillers(Duration::from_secs(60), 0));
    let (conn, call) = ask(&mut fake);
    fake.run(ms(100));
    assert_eq!(
        fake.turns(conn),
        [Seen::done(
            "working on get_time",
            Some(InteractionStatus::InProgress)
        )]
    );
    fake.send(conn, &response(&call, "get_time", "noon", None, false));
    fake.run(ms(200));
    assert_eq!(
        fake.turns(conn)[1],
        Seen::done(
            r#"get_time returned {"output":"noon"}"#,
            Some(InteractionStatus::Idle)
        )
    );
}

#[test]
fn extended_thinking_speaks_fillers_while_a_call_is_pending() {
    let mut fake = Fake::new(no_lifetime().with_fillers(Duration::from_secs(1), 2));
    let (conn, call) = ask(&mut fake);
    fake.run(Duration::from_secs(10));
    let in_progress = Some(InteractionStatus::InProgress);
    assert_eq!(
        fake.turns(conn),
        [
            Seen::done("working on get_time", in_progress.clone()),
            Seen::done("still working on get_time", in_progress.clone()),
            Seen::done("still working on get_time", in_progress),
        ],
        "at most two fillers per wait"
    );
    assert_eq!(fake.sim.next_timer(), None, "then it waits quietly");
    fake.send(conn, &response(&call, "get_time", "noon", None, false));
    fake.run(Duration::from_secs(10));
    let turns = fake.turns(conn);
    assert_eq!(turns.len(), 4, "no filler once nothing is pending");
    assert_eq!(turns[3].status, Some(InteractionStatus::Idle));
}

#[test]
fn scheduling_is_refused_on_extended_thinking() {
    let mut fake = Fake::new(no_lifetime());
    let (conn, call) = ask(&mut fake);
    fake.send(
        conn,
        &response(&call, "get_time", "noon", Some(Scheduling::WhenIdle), false),
    );
    assert_eq!(
        fake.closed(conn),
        Some((1007, "Request contains an invalid argument.".to_owned()))
    );
}
