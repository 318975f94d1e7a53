//! Which family a connection follows, and the setups each family refuses.

use gemini_fake::{FakeConfig, Family};
use gemini_transport::wire::{
    Behavior, ClientMessage, Content, Modality, ProactivityConfig, Setup, ThinkingConfig,
    ThinkingLevel,
};

use crate::support::{Fake, no_lifetime, setup, with_tool};

const INVALID: &str = "Request contains an invalid argument.";

#[test]
fn the_model_id_chooses_the_family_on_one_server() {
    let mut fake = Fake::new(no_lifetime());
    for family in Family::ALL {
        let conn = fake.open(setup(family));
        assert!(fake.set_up(conn), "{family}");
        assert_eq!(fake.sim.latest_session().unwrap().family(), family);
    }
    assert_eq!(fake.sim.sessions().len(), 4, "one server served them all");
    let conn = fake.open(Setup::new("models/gemini-2.0-flash-live-001"));
    let (code, reason) = fake.closed(conn).unwrap();
    assert_eq!(code, 1008);
    assert!(
        reason.starts_with("models/gemini-2.0-flash-live-001 is not found"),
        "{reason}"
    );
    // A Developer-API id on Vertex is unknown there.
    let mut vertex = Fake::new(no_lifetime().with_vertex(true));
    let conn = vertex.open(Setup::new(
        "projects/p/locations/l/publishers/google/models/gemini-2.5-flash-native-audio-latest",
    ));
    assert_eq!(vertex.closed(conn).unwrap().0, 1008);
    let conn = vertex.open(setup(Family::Gemini38).with_response_modality(Modality::Audio));
    assert_eq!(
        vertex.closed(conn),
        None,
        "3.8 has the same id on both surfaces"
    );
}

#[test]
fn the_default_family_only_names_the_suggested_model() {
    let config = no_lifetime().with_family(Family::Gemini38);
    assert_eq!(config.setup_model(), "models/gemini-3.8-live");
    let mut fake = Fake::new(config);
    let conn = fake.open(setup(Family::Gemini25));
    assert!(fake.set_up(conn));
    assert_eq!(
        fake.sim.latest_session().unwrap().family(),
        Family::Gemini25
    );
}

#[test]
fn client_content_on_3_1_is_initial_history_only_unless_lenient() {
    let mut fake = Fake::new(no_lifetime());
    let conn = fake.open(setup(Family::Gemini31));
    fake.send(conn, &ClientMessage::text("hello"));
    assert_eq!(fake.closed(conn), Some((1007, INVALID.to_owned())));

    let mut fake = Fake::new(no_lifetime().with_lenient_3_1(true));
    let conn = fake.open(setup(Family::Gemini31));
    fake.send(conn, &ClientMessage::text("hello"));
    fake.run(crate::support::ms(100));
    fake.send(
        conn,
        &ClientMessage::client_content(vec![Content::user_text("more")], false),
    );
    assert_eq!(fake.closed(conn), None);
    assert_eq!(fake.turns(conn)[0].said, "echo: hello");
    assert_eq!(
        fake.sim.latest_session().unwrap().context_texts(),
        ["hello", "echo: hello", "more"]
    );
}

/// The setups each family refuses with 1007, by what they carry.
fn refused(config: FakeConfig, family: Family, change: impl Fn(Setup) -> Setup) -> bool {
    let mut fake = Fake::new(config);
    let conn = fake.open(change(setup(family)));
    match fake.closed(conn) {
        Some((1007, reason)) => {
            assert_eq!(reason, INVALID);
            true
        }
        None => false,
        other => panic!("{family}: {other:?}"),
    }
}

fn with_thinking(mut setup: Setup, thinking: ThinkingConfig) -> Setup {
    if let Some(generation) = setup.generation_config.as_mut() {
        generation.thinking_config = Some(thinking);
    }
    setup
}

#[test]
fn thinking_config_is_refused_on_3_8() {
    let thinking = |s| with_thinking(s, ThinkingConfig::budget(512));
    assert!(refused(no_lifetime(), Family::Gemini38, thinking));
    assert!(!refused(no_lifetime(), Family::Gemini25, thinking));
    assert!(!refused(
        no_lifetime(),
        Family::Gemini31,
        |s| with_thinking(s, ThinkingConfig::level(ThinkingLevel::Low))
    ));
}

#[test]
fn proactive_audio_off_is_refused_on_3_8() {
    let off = |s: Setup| s.with_proactivity(ProactivityConfig::audio(false));
    let on = |s: Setup| s.with_proactivity(ProactivityConfig::audio(true));
    assert!(refused(no_lifetime(), Family::Gemini38, off));
    assert!(!refused(no_lifetime(), Family::Gemini38, on));
    assert!(!refused(no_lifetime(), Family::Gemini25, off));
}

#[test]
fn affective_dialog_is_refused_on_3_8_on_the_developer_api() {
    let affective = |mut s: Setup| {
        if let Some(generation) = s.generation_config.as_mut() {
            generation.enable_affective_dialog = Some(true);
        }
        s
    };
    assert!(refused(no_lifetime(), Family::Gemini38, affective));
    assert!(refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        affective
    ));
    assert!(!refused(no_lifetime(), Family::Gemini25, affective));
    let mut vertex = Fake::new(no_lifetime().with_vertex(true));
    let conn = vertex.open(affective(
        setup(Family::Gemini38).with_response_modality(Modality::Audio),
    ));
    assert_eq!(vertex.closed(conn), None, "Vertex accepts it");
}

#[test]
fn text_responses_are_refused_on_3_8_unless_the_test_switch_allows_them() {
    let text = |s: Setup| s.with_response_modality(Modality::Text);
    assert!(refused(no_lifetime(), Family::Gemini38, text));
    assert!(refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        text
    ));
    assert!(!refused(no_lifetime(), Family::Gemini25, text));
    assert!(!refused(no_lifetime(), Family::Gemini31, text));
    assert!(!refused(
        no_lifetime().with_text_on_3_8(true),
        Family::Gemini38,
        text
    ));
}

#[test]
fn extended_thinking_requires_a_thinking_level() {
    let without = |mut s: Setup| {
        if let Some(generation) = s.generation_config.as_mut() {
            generation.thinking_config = None;
        }
        s
    };
    let budget_only = |s| with_thinking(without(s), ThinkingConfig::budget(100));
    assert!(refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        without
    ));
    assert!(refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        budget_only
    ));
    assert!(!refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        |s| s
    ));
}

#[test]
fn blocking_declarations_are_refused_on_extended_thinking() {
    let blocking = |s| with_tool(s, "get_time", Some(Behavior::Blocking));
    let non_blocking = |s| with_tool(s, "get_time", Some(Behavior::NonBlocking));
    assert!(refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        blocking
    ));
    assert!(!refused(
        no_lifetime(),
        Family::Gemini38ExtendedThinking,
        non_blocking
    ));
    assert!(!refused(no_lifetime(), Family::Gemini38, blocking));
    // A contextUpdate declaring one is refused too.
    let mut fake = Fake::new(no_lifetime());
    let conn = fake.open(setup(Family::Gemini38ExtendedThinking));
    let update = gemini_transport::wire::ContextUpdate {
        tools: Some(with_tool(Setup::new("m"), "get_time", Some(Behavior::Blocking)).tools),
        ..Default::default()
    };
    fake.send(conn, &ClientMessage::context_update(update));
    assert_eq!(fake.closed(conn), Some((1007, INVALID.to_owned())));
}
