//! Connections as the service runs them: one socket per session, lifetimes, the 3.8 hard close
//! and the faults around it, ephemeral tokens, late pongs.

use std::time::Duration;

use gemini_fake::{FakeConfig, Family};
use gemini_transport::wire::{
    ClientMessage, ContextWindowCompression, ServerPayload, SessionResumptionConfig,
};

use crate::support::{Fake, ms, no_lifetime, setup};

const MINUTE: Duration = Duration::from_secs(60);
const DEADLINE: &str = "Deadline expired before operation could complete.";

fn resume(family: Family, handle: &str) -> gemini_transport::wire::Setup {
    setup(family).with_session_resumption(SessionResumptionConfig::resume(handle))
}

fn go_aways(fake: &Fake, conn: gemini_fake::ConnectionId) -> usize {
    fake.messages(conn)
        .iter()
        .filter(|m| matches!(m.payload, Some(ServerPayload::GoAway(_))))
        .count()
}

#[test]
fn a_resume_while_the_session_is_connected_is_closed_1011() {
    let mut fake = Fake::new(no_lifetime());
    let first = fake.open(setup(Family::Gemini38));
    let handle = fake.handle(first).unwrap();
    let second = fake.open(resume(Family::Gemini38, &handle));
    assert_eq!(
        fake.closed(second),
        Some((1011, "The service is currently unavailable.".to_owned()))
    );
    assert_eq!(fake.sim.latest_session().unwrap().overlaps(), 1);
    assert_eq!(fake.closed(first), None, "the open connection goes on");
    // Once it has closed, the same handle resumes.
    fake.sim.client_closed(first, Some(1000), fake.sim.now());
    let third = fake.open(resume(Family::Gemini38, &handle));
    assert!(fake.set_up(third));
    assert_eq!(fake.sim.sessions().len(), 1);

    // The switch that allows it (the older connection stays open).
    let mut fake = Fake::new(no_lifetime().with_concurrent_connections(true));
    let first = fake.open(setup(Family::Gemini25));
    let handle = fake.handle(first).unwrap();
    let second = fake.open(resume(Family::Gemini25, &handle));
    assert!(fake.set_up(second));
    assert_eq!(fake.sim.open_connections(), [first, second]);
}

#[test]
fn connections_live_about_ten_minutes_with_a_go_away_on_2_5_and_3_1() {
    for family in [Family::Gemini25, Family::Gemini31] {
        let mut fake = Fake::new(FakeConfig::new());
        let conn = fake.open(setup(family));
        fake.run(9 * MINUTE + Duration::from_secs(9));
        assert_eq!(go_aways(&fake, conn), 0);
        fake.run(Duration::from_secs(1));
        assert_eq!(
            go_aways(&fake, conn),
            1,
            "{family}: goAway 50 s before the end"
        );
        fake.run(Duration::from_secs(50));
        assert_eq!(fake.closed(conn).map(|c| c.0), Some(1008));
        assert_eq!(fake.closed_at(conn), Some(10 * MINUTE));
    }
}

#[test]
fn the_hard_close_ends_3_8_connections_at_58_minutes_with_1011_even_with_compression() {
    for family in [Family::Gemini38, Family::Gemini38ExtendedThinking] {
        let mut fake = Fake::new(FakeConfig::new());
        let conn = fake.open(
            setup(family)
                .with_context_window_compression(ContextWindowCompression::sliding_window()),
        );
        fake.run(58 * MINUTE - ms(1));
        assert_eq!(
            fake.closed(conn),
            None,
            "{family}: no ten-minute lifetime on 3.8"
        );
        fake.run(ms(1));
        assert_eq!(fake.closed(conn), Some((1011, DEADLINE.to_owned())));
        assert_eq!(fake.closed_at(conn), Some(58 * MINUTE));
        assert_eq!(go_aways(&fake, conn), 0, "no warning");
    }
}

#[test]
fn hard_close_at_sets_the_age_for_every_family_and_open_connections() {
    let mut fake = Fake::new(no_lifetime());
    let conn = fake.open(setup(Family::Gemini25));
    fake.run(MINUTE);
    fake.sim
        .faults()
        .hard_close_at(Some(Duration::from_secs(30)));
    fake.run(ms(1));
    assert_eq!(
        fake.closed(conn),
        Some((1011, DEADLINE.to_owned())),
        "already older"
    );
    let conn = fake.open(setup(Family::Gemini31));
    fake.run(Duration::from_secs(30));
    assert_eq!(fake.closed(conn).map(|c| c.0), Some(1011));
}

#[test]
fn a_resume_after_a_hard_close_can_be_refused_with_1007() {
    let mut fake = Fake::new(no_lifetime());
    fake.sim.faults().hard_close_at(Some(MINUTE));
    fake.sim.faults().refuse_resumes_after_hard_close(1);
    let conn = fake.open(setup(Family::Gemini38));
    let handle = fake.handle(conn).unwrap();
    fake.run(MINUTE);
    assert_eq!(fake.closed(conn).map(|c| c.0), Some(1011));
    let refused = fake.open(resume(Family::Gemini38, &handle));
    assert_eq!(fake.closed(refused).map(|c| c.0), Some(1007));
    let resumed = fake.open(resume(Family::Gemini38, &handle));
    assert!(fake.set_up(resumed), "the next resume works");
}

#[test]
fn hard_close_now_closes_as_the_age_does_and_marks_the_session() {
    let mut fake = Fake::new(no_lifetime());
    fake.sim.faults().refuse_resumes_after_hard_close(1);
    let conn = fake.open(setup(Family::Gemini38));
    let handle = fake.handle(conn).unwrap();
    fake.run(ms(10));
    fake.sim.faults().hard_close_now();
    fake.run(ms(1));
    assert_eq!(fake.closed(conn), Some((1011, DEADLINE.to_owned())));
    assert_eq!(go_aways(&fake, conn), 0, "no warning");
    let refused = fake.open(resume(Family::Gemini38, &handle));
    assert_eq!(fake.closed(refused).map(|c| c.0), Some(1007));
    let resumed = fake.open(resume(Family::Gemini38, &handle));
    assert!(fake.set_up(resumed), "the next resume works");
}

#[test]
fn an_ephemeral_token_with_one_use_cannot_resume() {
    let mut fake = Fake::new(no_lifetime().with_api_key("the-key"));
    fake.sim
        .faults()
        .issue_token("auth_tokens/once", 1, 30 * MINUTE);
    let conn = fake
        .sim
        .connect_with_key(Some("auth_tokens/once"), fake.sim.now())
        .unwrap();
    fake.send(conn, &ClientMessage::setup(setup(Family::Gemini38)));
    assert!(
        fake.set_up(conn),
        "a valid token is accepted whatever the key"
    );
    let handle = fake.handle(conn).unwrap();
    fake.sim.client_closed(conn, Some(1000), fake.sim.now());
    assert_eq!(
        fake.sim.faults().token_uses_left("auth_tokens/once"),
        Some(0)
    );
    let again = fake
        .sim
        .connect_with_key(Some("auth_tokens/once"), fake.sim.now())
        .unwrap();
    fake.send(
        again,
        &ClientMessage::setup(resume(Family::Gemini38, &handle)),
    );
    assert_eq!(
        fake.closed(again),
        Some((1011, "Token has been used too many times".to_owned()))
    );
}

#[test]
fn an_expired_ephemeral_token_is_refused() {
    let mut fake = Fake::new(no_lifetime());
    fake.sim
        .faults()
        .issue_token("auth_tokens/brief", 5, MINUTE);
    fake.run(MINUTE);
    let conn = fake
        .sim
        .connect_with_key(Some("auth_tokens/brief"), fake.sim.now())
        .unwrap();
    fake.run(Duration::ZERO);
    assert_eq!(
        fake.closed(conn),
        Some((1007, "Token has expired.".to_owned()))
    );
}

#[test]
fn pongs_are_late_only_while_data_flows() {
    let mut fake = Fake::new(no_lifetime());
    let delay = Duration::from_secs(20);
    fake.sim.faults().delay_pongs(delay);
    assert_eq!(fake.sim.faults().pong_delay(), delay);
    let conn = fake.open(setup(Family::Gemini38));
    // setupComplete just went out: data flows.
    assert_eq!(fake.sim.pong_delay(conn), delay);
    fake.run(Duration::from_secs(2));
    assert_eq!(
        fake.sim.pong_delay(conn),
        Duration::ZERO,
        "a quiet connection"
    );
    fake.send(conn, &ClientMessage::realtime_text("hello"));
    fake.run(ms(6));
    assert_eq!(fake.sim.pong_delay(conn), delay, "an answer streams");
    fake.sim.faults().delay_pongs(Duration::ZERO);
    assert_eq!(fake.sim.pong_delay(conn), Duration::ZERO);
}
