//! libFuzzer entry point of [`ktable_fuzz::sql_statement`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ktable_fuzz::sql_statement(data));
