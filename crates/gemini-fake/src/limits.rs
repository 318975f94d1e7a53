//! The context window: the fake's token count, the sliding window of
//! `contextWindowCompression`, and the limits that end a session without it
//! (docs/protocol.md sections 7.1 and 7.7).
//!
//! **The fake's guesses** (the service documents the limits, not how it enforces them;
//! docs/protocol.md section 7.7 points here, and the crate documentation's *Guesses* lists every
//! other one):
//!
//! - Tokens: a word of text or of a model answer is a token (one 40 ms chunk of model audio
//!   carries one word), a second of user speech 25 tokens (docs/protocol.md section 8), a
//!   function call or response one token plus the words of its JSON, an inline blob 258.
//! - Compression is applied when a model turn is about to answer a user turn (the context
//!   "measured before a turn runs"), never in the middle of an answer; it removes the oldest
//!   turns, cutting only where a user turn begins (a user turn that carries text or speech, not
//!   function responses), until the context is at most the target, keeping the turn being
//!   answered. Default trigger: 80 % of the window; default target: half the trigger.
//! - Without compression a session ends when a user turn starts with the context past the
//!   window, or when the client's audio passes 15 minutes (2 minutes once video was sent),
//!   counted over the session's connections (a resume does not reset it). The end is a close
//!   with [`LIMIT_CLOSE`]: 1011, which a client takes as transient; a resume of such a session
//!   meets the same limit again.

use crate::context::{Part, Role, Turn};
use crate::setup::Compression;

/// The close that ends a session past its limits (a guess, see the module).
pub(crate) const LIMIT_CLOSE: (u16, &str) = (1011, "The session exceeded its context window.");

/// Tokens per second of user speech.
const AUDIO_TOKENS_PER_SECOND: f64 = 25.0;

/// Tokens of an inline blob (an image).
const BLOB_TOKENS: u64 = 258;

/// The fake's token count of one turn.
pub(crate) fn turn_tokens(turn: &Turn) -> u64 {
    turn.parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => words(text),
            Part::AudioTranscript(text) if turn.role == Role::User => {
                speech_seconds(text).map_or_else(|| words(text), speech_tokens)
            }
            Part::AudioTranscript(text) => words(text),
            Part::FunctionCall { name, args, .. } => 1 + words(name) + words(&args.to_string()),
            Part::FunctionResponse { response, .. } => 1 + words(&response.to_string()),
            Part::InlineData { .. } => BLOB_TOKENS,
            Part::Other(_) => 1,
        })
        .sum()
}

/// The fake's token count of a context.
pub(crate) fn context_tokens(context: &[Turn]) -> u64 {
    context.iter().map(turn_tokens).sum()
}

fn words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// The seconds in a speech transcript `[audio 1.20s]`.
fn speech_seconds(text: &str) -> Option<f64> {
    text.strip_prefix("[audio ")?
        .strip_suffix("s]")?
        .parse()
        .ok()
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn speech_tokens(seconds: f64) -> u64 {
    (seconds * AUDIO_TOKENS_PER_SECOND).ceil().max(0.0) as u64
}

/// The trigger and target of a setup's compression on a window of `window` tokens.
pub(crate) fn thresholds(compression: Compression, window: u64) -> (u64, u64) {
    let trigger = compression.trigger_tokens.unwrap_or(window / 5 * 4);
    let target = compression.target_tokens.unwrap_or(trigger / 2);
    (trigger, target.min(trigger))
}

/// Where a user turn begins: a user turn with text or speech (not only function responses).
fn starts_user_turn(turn: &Turn) -> bool {
    turn.role == Role::User
        && turn
            .parts
            .iter()
            .any(|part| matches!(part, Part::Text(_) | Part::AudioTranscript(_)))
}

/// How many of the oldest turns the sliding window removes from `context` (0: none): the
/// fewest, cut where a user turn begins, that bring it to `target` tokens or below, never the
/// last user turn's start; only when the context is past `trigger`.
pub(crate) fn trim_count(context: &[Turn], trigger: u64, target: u64) -> usize {
    let total = context_tokens(context);
    if total <= trigger {
        return 0;
    }
    let last_start = context.iter().rposition(starts_user_turn).unwrap_or(0);
    let mut removed = 0u64;
    let mut best = 0;
    for (at, turn) in context.iter().enumerate().take(last_start + 1) {
        if at > 0 && starts_user_turn(turn) {
            best = at;
            if total - removed <= target {
                break;
            }
        }
        removed += turn_tokens(turn);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(seconds: &str) -> Turn {
        Turn {
            role: Role::User,
            parts: vec![Part::AudioTranscript(format!("[audio {seconds}s]"))],
        }
    }

    #[test]
    fn speech_counts_25_tokens_a_second_and_text_by_words() {
        assert_eq!(turn_tokens(&speech("1.20")), 30);
        assert_eq!(turn_tokens(&Turn::user_text("one two three")), 3);
        assert_eq!(
            turn_tokens(&Turn {
                role: Role::Model,
                parts: vec![Part::AudioTranscript("echo: [audio 1.20s]".into())],
            }),
            3
        );
    }

    #[test]
    fn the_window_cuts_at_user_turns_down_to_the_target() {
        let context = vec![
            Turn::user_text("a b c d"),
            Turn::model_text("e f g h"),
            Turn::user_text("i j"),
            Turn::model_text("k l"),
            Turn::user_text("m"),
        ];
        assert_eq!(context_tokens(&context), 13);
        assert_eq!(trim_count(&context, 13, 5), 0, "not past the trigger");
        assert_eq!(trim_count(&context, 12, 5), 2, "to 5 tokens");
        assert_eq!(trim_count(&context, 12, 1), 4, "never the last user turn");
        assert_eq!(trim_count(&context, 12, 12), 2);
        assert_eq!(
            thresholds(
                Compression {
                    trigger_tokens: None,
                    target_tokens: None
                },
                1000
            ),
            (800, 400)
        );
    }
}
