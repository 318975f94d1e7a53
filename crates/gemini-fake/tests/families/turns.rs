//! Turns on 3.8: `interactionStatus` and what cuts a reply.

use gemini_fake::Family;
use gemini_transport::wire::{ClientMessage, Content, InteractionStatus};

use crate::support::{Fake, Seen, ms, no_lifetime, setup};

#[test]
fn interaction_status_idle_accompanies_every_turn_complete_on_3_8() {
    for family in Family::ALL {
        let mut fake = Fake::new(no_lifetime().with_chunk_interval(ms(20)));
        let conn = fake.open(setup(family));
        fake.send(conn, &ClientMessage::realtime_text("a long answer"));
        fake.run(ms(30));
        // Cut by a new turn, then answered.
        fake.send(conn, &ClientMessage::realtime_text("short"));
        fake.run(ms(200));
        let turns = fake.turns(conn);
        assert_eq!(turns.len(), 2, "{family}");
        assert!(turns[0].interrupted);
        let expected = family.is_3_8().then_some(InteractionStatus::Idle);
        for turn in turns {
            assert_eq!(turn.status, expected, "{family}");
        }
    }
}

#[test]
fn client_content_cuts_a_reply_on_3_8_only_with_turn_complete() {
    let mut fake = Fake::new(no_lifetime().with_chunk_interval(ms(20)));
    let conn = fake.open(setup(Family::Gemini38));
    fake.send(conn, &ClientMessage::realtime_text("a long answer"));
    fake.run(ms(30));
    fake.send(
        conn,
        &ClientMessage::client_content(vec![Content::user_text("a note")], false),
    );
    fake.run(ms(200));
    let idle = Some(InteractionStatus::Idle);
    assert_eq!(
        fake.turns(conn),
        [Seen::done("echo: a long answer", idle.clone())]
    );
    // The reply goes before the note: it answered the turn before it.
    assert_eq!(
        fake.sim.latest_session().unwrap().context_texts(),
        ["a long answer", "echo: a long answer", "a note"]
    );
    fake.send(conn, &ClientMessage::realtime_text("again please"));
    fake.run(ms(30));
    fake.send(
        conn,
        &ClientMessage::client_content(vec![Content::user_text("stop")], true),
    );
    fake.run(ms(200));
    let turns = fake.turns(conn);
    assert!(turns[1].interrupted, "{turns:?}");
    assert_eq!(turns[2], Seen::done("echo: stop", idle));

    // Before 3.8 any clientContent cuts it.
    let mut fake = Fake::new(no_lifetime().with_chunk_interval(ms(20)));
    let conn = fake.open(setup(Family::Gemini25));
    fake.send(conn, &ClientMessage::realtime_text("a long answer"));
    fake.run(ms(30));
    fake.send(
        conn,
        &ClientMessage::client_content(vec![Content::user_text("a note")], false),
    );
    fake.run(ms(200));
    assert!(fake.turns(conn)[0].interrupted);
}
