//! The service's WebSocket paths and credentials, checked on the HTTP upgrade.

/// The API surface a path belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// API version named in the path (`v1beta`, `v1`, `v1alpha`, `v1beta1`).
    pub(crate) version: String,
    /// Whether it is the Vertex AI path.
    pub(crate) vertex: bool,
}

const DEVELOPER_PREFIX: &str = "/ws/google.ai.generativelanguage.";
const DEVELOPER_METHODS: [&str; 2] = [
    ".GenerativeService.BidiGenerateContent",
    ".GenerativeService.BidiGenerateContentConstrained",
];
const VERTEX_PREFIX: &str = "/ws/google.cloud.aiplatform.";
const VERTEX_METHOD: &str = ".LlmBidiService/BidiGenerateContent";

/// The path clients use by default: Developer API `v1beta`, or Vertex `v1beta1`.
pub(crate) fn default_path(vertex: bool) -> &'static str {
    if vertex {
        "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    } else {
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    }
}

/// Collapses repeated slashes (`//ws/...`, as the Python SDK sends it).
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Recognises a service path; `None` means 404.
pub(crate) fn route(path: &str) -> Option<Route> {
    let path = collapse_slashes(path);
    if let Some(rest) = path.strip_prefix(DEVELOPER_PREFIX) {
        let version = DEVELOPER_METHODS
            .iter()
            .find_map(|method| rest.strip_suffix(method))?;
        if ["v1", "v1beta", "v1alpha"].contains(&version) {
            return Some(Route {
                version: version.to_owned(),
                vertex: false,
            });
        }
        return None;
    }
    let version = path
        .strip_prefix(VERTEX_PREFIX)?
        .strip_suffix(VERTEX_METHOD)?;
    ["v1", "v1beta1"].contains(&version).then(|| Route {
        version: version.to_owned(),
        vertex: true,
    })
}

/// Every credential a request carries: `x-goog-api-key`, `Authorization: Token|Bearer`, and the
/// `key` / `access_token` query parameters.
pub(crate) fn credentials<'a>(
    query: Option<&'a str>,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(key) = header("x-goog-api-key") {
        found.push(key.trim().to_owned());
    }
    if let Some(auth) = header("authorization") {
        let auth = auth.trim();
        for scheme in ["Token ", "Bearer ", "token ", "bearer "] {
            if let Some(token) = auth.strip_prefix(scheme) {
                found.push(token.trim().to_owned());
            }
        }
    }
    for pair in query.unwrap_or_default().split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            if name == "key" || name == "access_token" {
                found.push(percent_decode(value));
            }
        }
    }
    found
}

/// Minimal `%XX` decoding for query values.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn developer_paths_in_every_version_and_method() {
        for version in ["v1", "v1beta", "v1alpha"] {
            for method in ["BidiGenerateContent", "BidiGenerateContentConstrained"] {
                let path = format!(
                    "//ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"
                );
                let route = route(&path).unwrap();
                assert_eq!(route.version, version);
                assert!(!route.vertex);
            }
        }
        assert!(
            route("/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent")
                .is_none()
        );
        assert!(route("/ws/other").is_none());
        let vertex =
            route("/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent");
        assert!(vertex.unwrap().vertex);
    }

    #[test]
    fn credentials_from_headers_and_query() {
        let none = |_: &str| None;
        assert_eq!(credentials(Some("key=a%2Fb&x=1"), none), vec!["a/b"]);
        assert_eq!(
            credentials(Some("access_token=auth_tokens/t"), none),
            vec!["auth_tokens/t"]
        );
        let header = |name: &str| match name {
            "authorization" => Some("Token auth_tokens/z"),
            "x-goog-api-key" => Some("k1"),
            _ => None,
        };
        assert_eq!(credentials(None, header), vec!["k1", "auth_tokens/z"]);
    }
}
