//! Decoders for the types both directions share: `Content`, `Part`, blobs, calls, responses,
//! tools.

use serde_json::Value;

use super::content::{
    Blob, CodeExecutionResult, Content, ExecutableCode, FileData, FunctionCall, FunctionResponse,
    Part, PartData,
};
use super::decode::{
    DecodeErrorKind, Mode, Obj, Path, array, boolean, bytes, free_object, string, wire_enum,
};
use super::tools::{EmptyConfig, FunctionDeclaration, Tool};
use crate::Error;

pub(crate) fn content(v: &Value, path: &Path<'_>, mode: Mode) -> Result<Content, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = Content::default();
    if let Some(v) = o.get("parts")? {
        out.parts = array(v, &path.key("parts"), |v, p| part(v, p, mode))?;
    }
    if let Some(v) = o.get("role")? {
        out.role = Some(wire_enum(v, &path.key("role"))?);
    }
    o.finish()?;
    Ok(out)
}

const PART_MEMBERS: [&str; 7] = [
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "fileData",
];

pub(crate) fn part(v: &Value, path: &Path<'_>, mode: Mode) -> Result<Part, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut found: Option<(&'static str, &Value)> = None;
    for name in PART_MEMBERS {
        if let Some(value) = o.get(name)? {
            if let Some((first, _)) = found {
                return Err(path.err(DecodeErrorKind::TwoMembers {
                    first: first.to_owned(),
                    second: name.to_owned(),
                }));
            }
            found = Some((name, value));
        }
    }
    let thought = match o.get("thought")? {
        Some(v) => boolean(v, &path.key("thought"))?,
        None => false,
    };
    let thought_signature = match o.get("thoughtSignature")? {
        Some(v) => bytes(v, &path.key("thoughtSignature"))?,
        None => Vec::new(),
    };
    // A member this decoder does not know (a known one given as `null` is absent, not
    // unknown: it re-encodes as an empty part, which decodes the same).
    let known = |k: &str| {
        let folded: String = k.chars().filter(|c| *c != '_').collect();
        PART_MEMBERS
            .iter()
            .chain(["thought", "thoughtSignature"].iter())
            .any(|m| m.eq_ignore_ascii_case(&folded))
    };
    let unknown_member = match v {
        Value::Object(map) => map.keys().find(|k| !known(k)).cloned(),
        _ => None,
    };
    o.finish()?;
    let data = match found {
        Some((name, value)) => {
            let p = path.key(name);
            match name {
                "text" => PartData::Text(string(value, &p)?),
                "inlineData" => PartData::InlineData(blob(value, &p, mode)?),
                "functionCall" => PartData::FunctionCall(function_call(value, &p, mode)?),
                "functionResponse" => {
                    PartData::FunctionResponse(function_response(value, &p, mode)?)
                }
                "executableCode" => PartData::ExecutableCode(executable_code(value, &p, mode)?),
                "codeExecutionResult" => {
                    PartData::CodeExecutionResult(code_execution_result(value, &p, mode)?)
                }
                _ => PartData::FileData(file_data(value, &p, mode)?),
            }
        }
        None if mode == Mode::Strict => return Err(path.err(DecodeErrorKind::NoMember)),
        None => PartData::Unknown(unknown_member.unwrap_or_default()),
    };
    Ok(Part {
        data,
        thought,
        thought_signature,
    })
}

pub(crate) fn blob(v: &Value, path: &Path<'_>, mode: Mode) -> Result<Blob, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = Blob::default();
    if let Some(v) = o.get("mimeType")? {
        out.mime_type = string(v, &path.key("mimeType"))?;
    }
    if let Some(v) = o.get("data")? {
        out.data = bytes(v, &path.key("data"))?;
    }
    o.finish()?;
    Ok(out)
}

pub(crate) fn function_call(v: &Value, path: &Path<'_>, mode: Mode) -> Result<FunctionCall, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = FunctionCall::default();
    if let Some(v) = o.get("id")? {
        out.id = string(v, &path.key("id"))?;
    }
    if let Some(v) = o.get("name")? {
        out.name = string(v, &path.key("name"))?;
    }
    if let Some(v) = o.get("args")? {
        out.args = free_object(v, &path.key("args"))?;
    }
    o.finish()?;
    Ok(out)
}

pub(crate) fn function_response(
    v: &Value,
    path: &Path<'_>,
    mode: Mode,
) -> Result<FunctionResponse, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = FunctionResponse::default();
    if let Some(v) = o.get("id")? {
        out.id = string(v, &path.key("id"))?;
    }
    if let Some(v) = o.get("name")? {
        out.name = string(v, &path.key("name"))?;
    }
    if let Some(v) = o.get("response")? {
        out.response = free_object(v, &path.key("response"))?;
    }
    if let Some(v) = o.get("willContinue")? {
        out.will_continue = Some(boolean(v, &path.key("willContinue"))?);
    }
    if let Some(v) = o.get("scheduling")? {
        out.scheduling = Some(wire_enum(v, &path.key("scheduling"))?);
    }
    o.finish()?;
    Ok(out)
}

fn executable_code(v: &Value, path: &Path<'_>, mode: Mode) -> Result<ExecutableCode, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let language = match o.get("language")? {
        Some(v) => wire_enum(v, &path.key("language"))?,
        None => super::content::Language::Unspecified,
    };
    let code = match o.get("code")? {
        Some(v) => string(v, &path.key("code"))?,
        None => String::new(),
    };
    o.finish()?;
    Ok(ExecutableCode { language, code })
}

fn code_execution_result(
    v: &Value,
    path: &Path<'_>,
    mode: Mode,
) -> Result<CodeExecutionResult, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let outcome = match o.get("outcome")? {
        Some(v) => wire_enum(v, &path.key("outcome"))?,
        None => super::content::Outcome::Unspecified,
    };
    let output = match o.get("output")? {
        Some(v) => string(v, &path.key("output"))?,
        None => String::new(),
    };
    o.finish()?;
    Ok(CodeExecutionResult { outcome, output })
}

fn file_data(v: &Value, path: &Path<'_>, mode: Mode) -> Result<FileData, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = FileData::default();
    if let Some(v) = o.get("mimeType")? {
        out.mime_type = string(v, &path.key("mimeType"))?;
    }
    if let Some(v) = o.get("fileUri")? {
        out.file_uri = string(v, &path.key("fileUri"))?;
    }
    o.finish()?;
    Ok(out)
}

pub(crate) fn tool(v: &Value, path: &Path<'_>, mode: Mode) -> Result<Tool, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = Tool::default();
    if let Some(v) = o.get("functionDeclarations")? {
        out.function_declarations = array(v, &path.key("functionDeclarations"), |v, p| {
            function_declaration(v, p, mode)
        })?;
    }
    if let Some(v) = o.get("googleSearch")? {
        out.google_search = Some(empty_config(v, &path.key("googleSearch"), mode)?);
    }
    if let Some(v) = o.get("codeExecution")? {
        out.code_execution = Some(empty_config(v, &path.key("codeExecution"), mode)?);
    }
    if let Some(v) = o.get("urlContext")? {
        out.url_context = Some(empty_config(v, &path.key("urlContext"), mode)?);
    }
    o.finish()?;
    Ok(out)
}

pub(crate) fn empty_config(v: &Value, path: &Path<'_>, mode: Mode) -> Result<EmptyConfig, Error> {
    Obj::new(v, path, mode)?.finish()?;
    Ok(EmptyConfig {})
}

fn function_declaration(
    v: &Value,
    path: &Path<'_>,
    mode: Mode,
) -> Result<FunctionDeclaration, Error> {
    let mut o = Obj::new(v, path, mode)?;
    let mut out = FunctionDeclaration::default();
    if let Some(v) = o.get("name")? {
        out.name = string(v, &path.key("name"))?;
    }
    if let Some(v) = o.get("description")? {
        out.description = string(v, &path.key("description"))?;
    }
    // Schemas are free-form JSON: taken verbatim (property names are user data).
    if let Some(v) = o.get("parameters")? {
        out.parameters = Some(v.clone());
    }
    if let Some(v) = o.get("parametersJsonSchema")? {
        out.parameters_json_schema = Some(v.clone());
    }
    if let Some(v) = o.get("response")? {
        out.response = Some(v.clone());
    }
    if let Some(v) = o.get("responseJsonSchema")? {
        out.response_json_schema = Some(v.clone());
    }
    if let Some(v) = o.get("behavior")? {
        out.behavior = Some(wire_enum(v, &path.key("behavior"))?);
    }
    o.finish()?;
    Ok(out)
}
