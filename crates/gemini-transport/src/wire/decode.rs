//! Decoding machinery shared by the client and server decoders: JSON paths for error messages,
//! field lookup under both spellings, strict/lenient objects, and the scalar parsers (base64 in
//! both alphabets, int64 as string or number, protobuf Durations).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::Error;

/// What was wrong with a frame; carried by [`Error::Decode`] beside the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame had no bytes.
    Empty,
    /// The frame is not valid UTF-8; `valid_up_to` bytes were.
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The frame is not JSON (truncated, trailing garbage, bad syntax).
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The value has the wrong JSON type.
    WrongType {
        /// What was expected (`object`, `string`, …).
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A oneof (the frame, `realtimeInput`, a part) has no member.
    NoMember,
    /// A oneof has two members.
    TwoMembers {
        /// The first member found.
        first: String,
        /// The second member found.
        second: String,
    },
    /// A field this crate (strictly decoding) does not know.
    UnknownField,
    /// The same field under both spellings (`mimeType` and `mime_type`).
    BothSpellings,
    /// A required field is absent.
    Missing,
    /// Not valid base64 in either alphabet.
    BadBase64(String),
    /// Not an integer in range (number or string).
    BadInteger(String),
    /// Not a protobuf Duration (`"50s"`, `"9.5s"`).
    BadDuration(String),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty frame"),
            Self::InvalidUtf8 { valid_up_to } => {
                write!(f, "invalid UTF-8 after {valid_up_to} bytes")
            }
            Self::Syntax {
                line,
                column,
                message,
            } => {
                write!(f, "invalid JSON at line {line} column {column}: {message}")
            }
            Self::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Self::NoMember => f.write_str("no member set"),
            Self::TwoMembers { first, second } => {
                write!(f, "two members `{first}` and `{second}`, only one allowed")
            }
            Self::UnknownField => f.write_str("unknown field"),
            Self::BothSpellings => f.write_str("field given in both camelCase and snake_case"),
            Self::Missing => f.write_str("required field missing"),
            Self::BadBase64(e) => write!(f, "invalid base64: {e}"),
            Self::BadInteger(v) => write!(f, "invalid integer {v}"),
            Self::BadDuration(v) => write!(f, "invalid duration {v:?}"),
        }
    }
}

/// A JSON path, built on the stack while descending and rendered only on error.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub(crate) fn key<'b>(&'b self, name: &'b str) -> Path<'b> {
        Path::Key(self, name)
    }

    pub(crate) fn index(&self, i: usize) -> Path<'_> {
        Path::Index(self, i)
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => out.push('$'),
            Path::Key(parent, name) => {
                parent.render_into(out);
                out.push('.');
                out.push_str(name);
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }

    pub(crate) fn err(&self, kind: DecodeErrorKind) -> Error {
        Error::Decode {
            path: self.render(),
            kind,
        }
    }
}

/// Whether unknown fields are errors (client frames, validated by the fake server) or ignored
/// (server frames, read by the client).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Strict,
    Lenient,
}

/// Parses the raw frame into a JSON value: checks emptiness and UTF-8 first so those get their
/// own error kinds.
pub(crate) fn parse_frame(bytes: &[u8]) -> Result<Value, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Path::Root.err(DecodeErrorKind::Empty));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Path::Root.err(DecodeErrorKind::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        })
    })?;
    serde_json::from_str(text).map_err(|e| {
        Path::Root.err(DecodeErrorKind::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    })
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong(path: &Path<'_>, expected: &'static str, v: &Value) -> Error {
    path.err(DecodeErrorKind::WrongType {
        expected,
        found: type_name(v),
    })
}

/// `true` if `key` is the snake_case spelling of the lowerCamelCase `camel`.
pub(crate) fn is_snake_of(key: &str, camel: &str) -> bool {
    let mut k = key.bytes();
    for c in camel.bytes() {
        if c.is_ascii_uppercase() {
            if k.next() != Some(b'_') || k.next() != Some(c.to_ascii_lowercase()) {
                return false;
            }
        } else if k.next() != Some(c) {
            return false;
        }
    }
    k.next().is_none()
}

/// The lowerCamelCase spelling of a snake_case key (for naming oneof members).
pub(crate) fn to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

const MAX_TRACKED: usize = 32;

/// A JSON object being decoded: fields are taken by their camelCase name (the snake_case spelling
/// is found too); in strict mode [`Obj::finish`] rejects whatever was not taken.
pub(crate) struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    pub(crate) path: &'p Path<'p>,
    mode: Mode,
    taken: usize,
    names: [&'static str; MAX_TRACKED],
    named: usize,
}

impl<'v, 'p> Obj<'v, 'p> {
    pub(crate) fn new(v: &'v Value, path: &'p Path<'p>, mode: Mode) -> Result<Self, Error> {
        match v {
            Value::Object(map) => Ok(Self {
                map,
                path,
                mode,
                taken: 0,
                names: [""; MAX_TRACKED],
                named: 0,
            }),
            other => Err(wrong(path, "object", other)),
        }
    }

    /// The field `camel` under either spelling; `null` counts as absent (proto3 JSON).
    pub(crate) fn get(&mut self, camel: &'static str) -> Result<Option<&'v Value>, Error> {
        if self.named < MAX_TRACKED {
            self.names[self.named] = camel;
            self.named += 1;
        }
        let direct = self.map.get(camel);
        let snake = if camel.bytes().any(|b| b.is_ascii_uppercase()) {
            self.map
                .iter()
                .find(|(k, _)| is_snake_of(k, camel))
                .map(|(_, v)| v)
        } else {
            None
        };
        let found = match (direct, snake) {
            (Some(_), Some(_)) => {
                return Err(self.path.key(camel).err(DecodeErrorKind::BothSpellings));
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => return Ok(None),
        };
        self.taken += 1;
        Ok(if found.is_null() { None } else { Some(found) })
    }

    /// In strict mode, fails on the first key no `get` asked for.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.mode == Mode::Lenient || self.taken == self.map.len() {
            return Ok(());
        }
        let known = &self.names[..self.named];
        let unknown = self
            .map
            .keys()
            .find(|k| !known.iter().any(|c| *c == k.as_str() || is_snake_of(k, c)));
        match unknown {
            Some(k) => Err(self.path.key(k).err(DecodeErrorKind::UnknownField)),
            None => Ok(()),
        }
    }

    /// The single member of a oneof object: `(camelCase name, value)`. Errors on none or two.
    pub(crate) fn single_member(
        v: &'v Value,
        path: &Path<'_>,
    ) -> Result<(String, &'v Value), Error> {
        let map = match v {
            Value::Object(map) => map,
            other => return Err(wrong(path, "object", other)),
        };
        let mut it = map.iter();
        let (first, value) = it
            .next()
            .ok_or_else(|| path.err(DecodeErrorKind::NoMember))?;
        if let Some((second, _)) = it.next() {
            return Err(path.err(DecodeErrorKind::TwoMembers {
                first: to_camel(first),
                second: to_camel(second),
            }));
        }
        Ok((to_camel(first), value))
    }
}

/// Types decoded from a wire enum name.
pub(crate) trait FromWireStr {
    fn from_wire_str(s: &str) -> Self;
}

pub(crate) fn string(v: &Value, path: &Path<'_>) -> Result<String, Error> {
    str_ref(v, path).map(str::to_owned)
}

pub(crate) fn str_ref<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v str, Error> {
    v.as_str().ok_or_else(|| wrong(path, "string", v))
}

pub(crate) fn boolean(v: &Value, path: &Path<'_>) -> Result<bool, Error> {
    v.as_bool().ok_or_else(|| wrong(path, "boolean", v))
}

pub(crate) fn wire_enum<T: FromWireStr>(v: &Value, path: &Path<'_>) -> Result<T, Error> {
    str_ref(v, path).map(T::from_wire_str)
}

/// An integer given as a JSON number or a decimal string (protobuf-JSON int64 form).
pub(crate) fn integer<T: TryFrom<i128>>(v: &Value, path: &Path<'_>) -> Result<T, Error> {
    let wide: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        other => return Err(wrong(path, "integer", other)),
    };
    wide.and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| path.err(DecodeErrorKind::BadInteger(v.to_string())))
}

/// A float given as a JSON number (or a numeric string).
pub(crate) fn float(v: &Value, path: &Path<'_>) -> Result<f32, Error> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| wrong(path, "number", v)),
        Value::String(s) => s
            .trim()
            .parse::<f32>()
            .map_err(|_| wrong(path, "number", v)),
        other => Err(wrong(path, "number", other)),
    }
}

const PADDING_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PAD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, PADDING_INDIFFERENT);
const URL_SAFE_ANY_PAD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_INDIFFERENT);

/// Base64 in the standard or URL-safe alphabet, padded or not.
pub(crate) fn bytes(v: &Value, path: &Path<'_>) -> Result<Vec<u8>, Error> {
    let s = str_ref(v, path)?;
    // Standard first (what Google sends); the URL-safe alphabet only when that fails, so the
    // common case is one pass over the text.
    STANDARD_ANY_PAD.decode(s).or_else(|standard_error| {
        if s.bytes().any(|b| b == b'-' || b == b'_') {
            URL_SAFE_ANY_PAD
                .decode(s)
                .map_err(|e| path.err(DecodeErrorKind::BadBase64(e.to_string())))
        } else {
            Err(path.err(DecodeErrorKind::BadBase64(standard_error.to_string())))
        }
    })
}

/// A protobuf Duration: `"50s"`, `"9.5s"`, `"0.000340s"`.
pub(crate) fn duration(v: &Value, path: &Path<'_>) -> Result<Duration, Error> {
    let s = str_ref(v, path)?;
    parse_duration(s).ok_or_else(|| path.err(DecodeErrorKind::BadDuration(s.to_owned())))
}

pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let body = s.strip_suffix('s')?;
    let (secs, frac) = match body.split_once('.') {
        Some((secs, frac)) => (secs, frac),
        None => (body, ""),
    };
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (body.contains('.') && frac.is_empty())
    {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().enumerate() {
        let digit = u32::from(d - b'0');
        nanos += digit * 10u32.pow(8 - u32::try_from(i).ok()?);
    }
    Some(Duration::new(secs, nanos))
}

/// An array, each element decoded by `item` with its index in the path.
pub(crate) fn array<T>(
    v: &Value,
    path: &Path<'_>,
    mut item: impl FnMut(&Value, &Path<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let items = v.as_array().ok_or_else(|| wrong(path, "array", v))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, element) in items.iter().enumerate() {
        out.push(item(element, &path.index(i))?);
    }
    Ok(out)
}

/// A free-form JSON object (function args, responses): taken verbatim, never re-cased.
pub(crate) fn free_object(v: &Value, path: &Path<'_>) -> Result<Map<String, Value>, Error> {
    match v {
        Value::Object(map) => Ok(map.clone()),
        other => Err(wrong(path, "object", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_spelling_matches_only_exactly() {
        assert!(is_snake_of("mime_type", "mimeType"));
        assert!(is_snake_of(
            "initial_history_in_client_content",
            "initialHistoryInClientContent"
        ));
        assert!(is_snake_of("data", "data"));
        assert!(!is_snake_of("mimetype", "mimeType"));
        assert!(!is_snake_of("mime_type_x", "mimeType"));
        assert!(!is_snake_of("mime_", "mimeType"));
        assert_eq!(to_camel("realtime_input"), "realtimeInput");
    }

    #[test]
    fn durations_parse_like_protobuf() {
        assert_eq!(parse_duration("50s"), Some(Duration::from_secs(50)));
        assert_eq!(parse_duration("9.5s"), Some(Duration::from_millis(9_500)));
        assert_eq!(
            parse_duration("0.000340s"),
            Some(Duration::from_micros(340))
        );
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        for bad in [
            "",
            "s",
            "50",
            "-1s",
            "1.s",
            ".5s",
            "1.0000000001s",
            "1e3s",
            "x s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_accepts_both_alphabets_and_padding() {
        let p = Path::Root;
        assert_eq!(
            bytes(&Value::from("AAD_B_8P-____wDwAPj_Aw=="), &p).unwrap()[2],
            0xff
        );
        assert_eq!(bytes(&Value::from("AQ"), &p).unwrap(), vec![1]);
        assert_eq!(bytes(&Value::from("AQ=="), &p).unwrap(), vec![1]);
        assert!(bytes(&Value::from("A"), &p).is_err());
        assert!(bytes(&Value::from("+/-_"), &p).is_err());
    }

    #[test]
    fn integers_accept_strings_and_numbers() {
        let p = Path::Root;
        assert_eq!(integer::<u64>(&Value::from("42"), &p).unwrap(), 42);
        assert_eq!(integer::<u64>(&Value::from(42), &p).unwrap(), 42);
        assert!(integer::<u64>(&Value::from(-1), &p).is_err());
        assert!(integer::<i32>(&Value::from("1e99"), &p).is_err());
        assert!(integer::<i32>(&Value::from(true), &p).is_err());
    }
}
