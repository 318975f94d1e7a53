//! Canonical encoding helpers: standard base64, protobuf Durations, int64 as strings, and the
//! hand-written fast path for realtime audio frames.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::Serializer;
use serde::ser::SerializeMap;

use super::tools::Tool;

/// Bytes that serialize as a standard-alphabet, padded base64 string without an intermediate
/// `String`.
pub(crate) struct Base64<'a>(pub(crate) &'a [u8]);

impl serde::Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// `serialize_with` for `Vec<u8>` fields.
pub(crate) fn bytes<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Base64Display::new(data, &STANDARD))
}

/// A `google.protobuf.Duration` in its JSON form: seconds with an `s` suffix and 0, 3, 6 or 9
/// fractional digits (`"50s"`, `"9.500s"`, `"0.000340s"`).
pub(crate) struct ProtoDuration(pub(crate) Duration);

impl fmt::Display for ProtoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else if nanos % 1_000_000 == 0 {
            write!(f, "{secs}.{:03}s", nanos / 1_000_000)
        } else if nanos % 1_000 == 0 {
            write!(f, "{secs}.{:06}s", nanos / 1_000)
        } else {
            write!(f, "{secs}.{nanos:09}s")
        }
    }
}

/// `serialize_with` for a `Duration` field.
pub(crate) fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&ProtoDuration(*d))
}

/// `serialize_with` for an `Option<Duration>` field (used with `skip_serializing_if`).
pub(crate) fn opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => duration(d, s),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for an int64 field: protobuf-JSON writes int64 as a string.
pub(crate) fn opt_u64_string<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for `contextUpdate.tools`: the list travels wrapped as `{"tools": [...]}`.
pub(crate) fn tools_wrapper<S: Serializer>(
    tools: &Option<Vec<Tool>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match tools {
        Some(tools) => {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry("tools", tools)?;
            map.end()
        }
        None => s.serialize_none(),
    }
}

/// `skip_serializing_if` for booleans whose default (`false`) is omitted.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Writes `{"realtimeInput":{"audio":{"mimeType":"<mime>","data":"<base64>"}}}` into `buf`
/// directly: no intermediate strings, at most one growth of `buf`. Byte-for-byte what the serde
/// path writes for the same `Blob` (same key order, empty members omitted).
pub(crate) fn write_audio_frame(buf: &mut Vec<u8>, pcm: &[u8], mime_type: &str) {
    const HEAD: &[u8] = br#"{"realtimeInput":{"audio":{"#;
    const MIME: &[u8] = br#""mimeType":"#;
    const DATA: &[u8] = br#""data":""#;
    const TAIL: &[u8] = b"}}}";
    let b64_len = pcm.len().div_ceil(3) * 4;
    // Exact when the mime type needs no escaping (an `audio/pcm;rate=…` never does).
    let mime = if mime_type.is_empty() {
        0
    } else {
        MIME.len() + mime_type.len() + 2 + usize::from(!pcm.is_empty())
    };
    let data = if pcm.is_empty() {
        0
    } else {
        DATA.len() + b64_len + 1
    };
    buf.reserve(HEAD.len() + mime + data + TAIL.len());
    buf.extend_from_slice(HEAD);
    if !mime_type.is_empty() {
        buf.extend_from_slice(MIME);
        write_json_string(buf, mime_type);
        if !pcm.is_empty() {
            buf.push(b',');
        }
    }
    if !pcm.is_empty() {
        buf.extend_from_slice(DATA);
        let start = buf.len();
        buf.resize(start + b64_len, 0);
        // The slice has exactly the padded length, so `encode_slice` cannot fail; the fallback
        // keeps the frame correct regardless.
        match STANDARD.encode_slice(pcm, &mut buf[start..]) {
            Ok(written) => buf.truncate(start + written),
            Err(_) => {
                buf.truncate(start);
                buf.extend_from_slice(STANDARD.encode(pcm).as_bytes());
            }
        }
        buf.push(b'"');
    }
    buf.extend_from_slice(TAIL);
}

/// The decimal digits of `value`, written without the formatting machinery (once per audio
/// frame): the digits and how many there are.
fn decimal(value: u32) -> ([u8; 10], usize) {
    let digits = value.checked_ilog10().map_or(1, |d| d as usize + 1);
    let mut out = [0u8; 10];
    let mut rest = value;
    for at in (0..digits).rev() {
        out[at] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    (out, digits)
}

/// Appends the realtime audio frame for `pcm` at `sample_rate` to `buf`: [`write_audio_frame`]
/// for `audio/pcm;rate=<sample_rate>`, its mime type written on the stack.
pub(crate) fn append_audio_frame(buf: &mut Vec<u8>, pcm: &[u8], sample_rate: u32) {
    const PREFIX: &[u8] = b"audio/pcm;rate=";
    let (rate, digits) = decimal(sample_rate);
    let mut mime = [0u8; PREFIX.len() + 10];
    mime[..PREFIX.len()].copy_from_slice(PREFIX);
    mime[PREFIX.len()..PREFIX.len() + digits].copy_from_slice(&rate[..digits]);
    let mime = std::str::from_utf8(&mime[..PREFIX.len() + digits]).unwrap_or("audio/pcm");
    write_audio_frame(buf, pcm, mime);
}

/// The audio frame of [`write_audio_frame`] for `audio/pcm;rate=<sample_rate>`, as a `String`
/// allocated at its exact length (the mime type needs no escaping; base64 is ASCII).
pub(crate) fn audio_frame_string(pcm: &[u8], sample_rate: u32) -> String {
    let mut buf = Vec::new();
    append_audio_frame(&mut buf, pcm, sample_rate);
    String::from_utf8(buf).unwrap_or_default()
}

/// Appends `s` as a JSON string literal (quoted, escaped).
fn write_json_string(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let mut ser = serde_json::Serializer::new(&mut *buf);
        // Writing a `str` into a `Vec` cannot fail.
        let _ = ser.serialize_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_frame_string_is_the_audio_frame_at_its_exact_length() {
        for rate in [0u32, 8, 16_000, 24_000, 44_100, u32::MAX] {
            for len in [0usize, 1, 2, 3, 640, 1_281] {
                let pcm: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let text = audio_frame_string(&pcm, rate);
                let mut buf = Vec::new();
                write_audio_frame(&mut buf, &pcm, &format!("audio/pcm;rate={rate}"));
                assert_eq!(text.as_bytes(), buf.as_slice(), "rate {rate}, {len} bytes");
                assert_eq!(text.len(), text.capacity(), "rate {rate}, {len} bytes");
            }
        }
    }

    #[test]
    fn durations_use_protobuf_precision() {
        assert_eq!(ProtoDuration(Duration::from_secs(50)).to_string(), "50s");
        assert_eq!(
            ProtoDuration(Duration::from_millis(9_500)).to_string(),
            "9.500s"
        );
        assert_eq!(
            ProtoDuration(Duration::from_micros(340)).to_string(),
            "0.000340s"
        );
        assert_eq!(
            ProtoDuration(Duration::from_nanos(1)).to_string(),
            "0.000000001s"
        );
    }

    #[test]
    fn audio_frame_is_canonical_json() {
        let mut buf = b"stale".to_vec();
        buf.clear();
        write_audio_frame(&mut buf, &[0, 0, 0, 16], "audio/pcm;rate=16000");
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAAAEA=="}}}"#
        );
        buf.clear();
        write_audio_frame(&mut buf, &[], "a\"b");
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"realtimeInput":{"audio":{"mimeType":"a\"b"}}}"#
        );
        buf.clear();
        write_audio_frame(&mut buf, &[1], "");
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"realtimeInput":{"audio":{"data":"AQ=="}}}"#
        );
    }
}
