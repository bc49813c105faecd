//! The error object of spec §"Error": `{"cniVersion","code","msg","details"}` on stdout.

use serde::Serialize;

use crate::error::Error;

#[derive(Debug, Serialize)]
pub struct ErrorReply {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// However long the causes (a hook's words, a tool's stderr, many undo failures), the reply a runtime
/// reads stays small: the rest is in the log.
pub const MAX_TEXT: usize = 4096;

impl ErrorReply {
    pub fn new(version: &str, err: &Error) -> Self {
        ErrorReply {
            cni_version: version.to_string(),
            code: err.code(),
            msg: crate::logging::bounded(&err.to_string(), MAX_TEXT),
            details: crate::logging::bounded(&err.details(), MAX_TEXT),
        }
    }
}
