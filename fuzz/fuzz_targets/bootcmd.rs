#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| osimager_fuzz::harness::bootcmd(data));
