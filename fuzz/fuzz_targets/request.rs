#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmcni::fuzzing::request(data));
