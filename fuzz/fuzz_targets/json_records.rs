//! libFuzzer entry point of [`ktable_fuzz::json_records`].
#![no_main]

libfuzzer_sys::fuzz_target!(
    // libfuzzer-sys aborts at the first panic, even one the code under test catches;
    // the JSON decoder catches arrow-json's panics on purpose (a record that makes it
    // panic is rejected, see `format::json`), so the default hook is put back. A panic
    // that escapes still aborts: libfuzzer-sys catches it around each input.
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| ktable_fuzz::json_records(data)
);
