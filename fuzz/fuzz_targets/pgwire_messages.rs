//! libFuzzer entry point of [`ktable_fuzz::pgwire_messages`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ktable_fuzz::pgwire_messages(data));
