//! The deterministic scripted model: what it answers and how the answer is cut into chunks.

use serde_json::Value;

/// Output sample rate of model audio.
pub(crate) const OUTPUT_RATE: u32 = 24_000;
/// Audio synthesised per answer chunk.
pub(crate) const CHUNK_AUDIO_MS: u32 = 40;
/// Frequency of the synthesised tone.
const TONE_HZ: f64 = 440.0;
/// Peak amplitude of the synthesised tone.
const TONE_AMPLITUDE: f64 = 8_000.0;

/// What the model does with new input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Answer with this text.
    Say(String),
    /// Call this declared function.
    Call(String),
}

/// The reply to user text `text` given the declared function names: the first declared function
/// whose name occurs in the text is called; otherwise the model says `echo: {text}`.
pub(crate) fn reply_to(text: &str, functions: &[String]) -> Reply {
    functions
        .iter()
        .find(|name| !name.is_empty() && text.contains(name.as_str()))
        .map_or_else(
            || Reply::Say(format!("echo: {text}")),
            |name| Reply::Call(name.clone()),
        )
}

/// The answer after a function response: `NAME returned <response as compact JSON>`.
pub(crate) fn tool_answer(name: &str, response: &Value) -> String {
    format!("{name} returned {response}")
}

/// What the model says after calling a non-blocking function: it goes on and completes its
/// turn.
pub(crate) fn call_filler(name: &str) -> String {
    format!("working on {name}")
}

/// Extended thinking: what the model says while a call is still pending.
pub(crate) fn waiting_filler(name: &str) -> String {
    format!("still working on {name}")
}

/// Cuts an answer into chunks, one word each with its trailing space, so that the chunks
/// concatenate to exactly the answer.
pub(crate) fn chunks(answer: &str) -> Vec<String> {
    if answer.is_empty() {
        return vec![String::new()];
    }
    answer.split_inclusive(' ').map(str::to_owned).collect()
}

/// Deterministic model audio for chunk number `n` (0-based): 40 ms of a 440 Hz sine at 24 kHz,
/// 16-bit little-endian mono, phase-continuous across chunks.
pub(crate) fn chunk_audio(n: u64) -> Vec<u8> {
    let samples = u64::from(OUTPUT_RATE * CHUNK_AUDIO_MS / 1000);
    let first = n * samples;
    let mut pcm = Vec::with_capacity(2 * usize::try_from(samples).unwrap_or(0));
    for i in first..first + samples {
        #[allow(clippy::cast_precision_loss)]
        let t = i as f64 / f64::from(OUTPUT_RATE);
        #[allow(clippy::cast_possible_truncation)]
        let value = (TONE_AMPLITUDE * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin()) as i16;
        pcm.extend_from_slice(&value.to_le_bytes());
    }
    pcm
}

/// Token count used in `usageMetadata`: whitespace-separated words.
pub(crate) fn tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_unless_a_function_is_named() {
        let functions = vec!["get_weather".to_owned(), "get_time".to_owned()];
        assert_eq!(
            reply_to("hello there", &functions),
            Reply::Say("echo: hello there".into())
        );
        assert_eq!(
            reply_to("please get_time and get_weather", &functions),
            Reply::Call("get_weather".into())
        );
        assert_eq!(
            reply_to("get_time", &[]),
            Reply::Say("echo: get_time".into())
        );
    }

    #[test]
    fn chunks_concatenate_to_the_answer() {
        let answer = tool_answer("f", &serde_json::json!({"a": "x y", "b": 1}));
        assert_eq!(answer, r#"f returned {"a":"x y","b":1}"#);
        let parts = chunks(&answer);
        assert_eq!(parts.concat(), answer);
        assert_eq!(parts[0], "f ");
        assert_eq!(chunks("echo: a  b"), vec!["echo: ", "a ", " ", "b"]);
    }

    #[test]
    fn audio_chunks_are_40ms_and_continuous() {
        let a = chunk_audio(0);
        assert_eq!(a.len(), 2 * 960);
        assert_eq!(&a[..2], &[0, 0]);
        let b = chunk_audio(1);
        assert_ne!(a, b);
        assert_eq!(chunk_audio(1), b);
    }
}
