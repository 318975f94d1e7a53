//! The context window: the sliding window of `contextWindowCompression`, and the limits that end
//! a session without it (the fake's guesses: `gemini_fake`'s `limits` module).

use std::time::Duration;

use gemini_fake::{ContextLimits, Family, Role};
use gemini_transport::wire::{ClientMessage, ContextWindowCompression};

use crate::support::{Fake, ms, no_lifetime, setup};

const LIMIT: &str = "The session exceeded its context window.";

fn limits(window: u64, audio: Duration) -> ContextLimits {
    ContextLimits::new(window, audio, audio / 2)
}

fn loud(ms: usize) -> Vec<u8> {
    (0..16 * ms)
        .flat_map(|i| (if i % 2 == 0 { 3000i16 } else { -3000 }).to_le_bytes())
        .collect()
}

#[test]
fn compression_trims_the_oldest_turns_at_a_user_turn() {
    let mut fake = Fake::new(no_lifetime());
    let compression = ContextWindowCompression::sliding_window_with(12, 6);
    let conn = fake.open(setup(Family::Gemini38).with_context_window_compression(compression));
    for text in ["one two three", "four five six", "seven eight"] {
        fake.send(conn, &ClientMessage::realtime_text(text));
        fake.run(ms(100));
    }
    let session = fake.sim.latest_session().unwrap();
    let trims = session.trims();
    assert!(!trims.is_empty(), "past the trigger");
    let first = &trims[0];
    assert!(first.tokens_before > 12);
    assert!(first.tokens_after <= 6, "{first:?}");
    assert_eq!(first.removed[0].text(), "one two three");
    assert_eq!(
        session.context()[0].role,
        Role::User,
        "cut where a user turn begins"
    );
    assert_eq!(fake.closed(conn), None);
    assert_eq!(fake.turns(conn).len(), 3, "every turn answered");
}

#[test]
fn without_compression_a_context_past_the_window_ends_the_session() {
    let mut fake =
        Fake::new(no_lifetime().with_context_limits(limits(12, Duration::from_secs(900))));
    let conn = fake.open(setup(Family::Gemini25));
    for text in ["one two three", "four five six", "seven eight"] {
        fake.send(conn, &ClientMessage::realtime_text(text));
        fake.run(ms(100));
    }
    assert_eq!(fake.closed(conn), Some((1011, LIMIT.to_owned())));
    assert_eq!(fake.turns(conn).len(), 2);
    assert!(fake.sim.latest_session().unwrap().trims().is_empty());
}

#[test]
fn without_compression_the_audio_limit_ends_the_session() {
    let config = no_lifetime().with_context_limits(limits(128_000, Duration::from_secs(1)));
    let mut fake = Fake::new(config.clone());
    let conn = fake.open(setup(Family::Gemini38));
    fake.send(conn, &ClientMessage::audio(&loud(600), 16_000));
    assert_eq!(fake.closed(conn), None);
    fake.send(conn, &ClientMessage::audio(&loud(600), 16_000));
    assert_eq!(fake.closed(conn), Some((1011, LIMIT.to_owned())));
    let session = fake.sim.latest_session().unwrap();
    assert!((session.audio_seconds() - 1.2).abs() < 1e-9);

    // Once video was sent, the shorter limit holds.
    let mut fake = Fake::new(config.clone());
    let conn = fake.open(setup(Family::Gemini38));
    fake.send(conn, &ClientMessage::video(b"jpeg", "image/jpeg"));
    fake.send(conn, &ClientMessage::audio(&loud(600), 16_000));
    assert_eq!(fake.closed(conn).map(|c| c.0), Some(1011));

    // With compression the session goes on.
    let mut fake = Fake::new(config);
    let conn = fake.open(
        setup(Family::Gemini38)
            .with_context_window_compression(ContextWindowCompression::sliding_window()),
    );
    fake.send(conn, &ClientMessage::audio(&loud(1200), 16_000));
    assert_eq!(fake.closed(conn), None);
}
