//! The CNI protocol: config and environment in, result or error out.

pub mod conf;
pub mod fields;
pub mod reply;
pub mod request;
pub mod result;
pub mod suggest;
pub mod version;
