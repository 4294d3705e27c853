//! libFuzzer entry point of [`ktable_fuzz::ddl`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ktable_fuzz::ddl(data));
