//! Tools offered to the model: function declarations and the built-in tools.

use serde::Serialize;
use serde_json::Value;

use super::enums::wire_enum;

/// One entry of `setup.tools` (or of a `contextUpdate` tool list).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Functions the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub function_declarations: Vec<FunctionDeclaration>,
    /// Google Search grounding (`googleSearch: {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_search: Option<EmptyConfig>,
    /// Code execution (`codeExecution: {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_execution: Option<EmptyConfig>,
    /// URL context (`urlContext: {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_context: Option<EmptyConfig>,
}

impl Tool {
    /// A tool entry holding these function declarations.
    pub fn functions(declarations: Vec<FunctionDeclaration>) -> Self {
        Self {
            function_declarations: declarations,
            ..Self::default()
        }
    }

    /// The Google Search tool.
    pub fn google_search() -> Self {
        Self {
            google_search: Some(EmptyConfig {}),
            ..Self::default()
        }
    }

    /// The code execution tool.
    pub fn code_execution() -> Self {
        Self {
            code_execution: Some(EmptyConfig {}),
            ..Self::default()
        }
    }
}

/// A configuration message whose presence is what matters: `{}` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EmptyConfig {}

wire_enum! {
    /// Whether the model waits for a function's result (Live-only switch).
    Behavior {
        /// Unspecified (server default).
        Unspecified => "UNSPECIFIED",
        /// The model pauses until the `toolResponse` arrives.
        Blocking => "BLOCKING",
        /// The model keeps talking; the response is delivered per `Scheduling`.
        NonBlocking => "NON_BLOCKING",
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// Function name.
    pub name: String,
    /// What the function does (the model reads this).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Parameters as an OpenAPI-subset `Schema` (free-form JSON, passed through untouched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Parameters as JSON Schema (alternative to `parameters`; free-form JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<Value>,
    /// Result schema (free-form JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Result as JSON Schema (free-form JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    /// `BLOCKING` / `NON_BLOCKING`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
}

impl FunctionDeclaration {
    /// A declaration with a name and description and no parameters.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            ..Self::default()
        }
    }

    /// Sets the `parameters` schema.
    #[must_use]
    pub fn with_parameters(mut self, schema: Value) -> Self {
        self.parameters = Some(schema);
        self
    }

    /// Sets the behavior.
    #[must_use]
    pub fn with_behavior(mut self, behavior: Behavior) -> Self {
        self.behavior = Some(behavior);
        self
    }
}
