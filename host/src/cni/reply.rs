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

impl ErrorReply {
    pub fn new(version: &str, err: &Error) -> Self {
        ErrorReply { cni_version: version.to_string(), code: err.code(), msg: err.to_string(), details: err.details() }
    }
}
