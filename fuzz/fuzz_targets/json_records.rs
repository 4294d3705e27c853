//! libFuzzer entry point of [`ktable_fuzz::json_records`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ktable_fuzz::json_records(data));
