#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each) on its corpus, which
# grows with what libFuzzer finds. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). A crash is saved under fuzz/artifacts/<target>/:
# copy it into fuzz/corpus/<target>/ with the fix, so that tests/it/fuzz_corpus.rs
# replays it on every CI run.
#
# FUZZ_SANITIZER=none skips AddressSanitizer: the build is then an ordinary
# release build with coverage (ktable is safe Rust; librdkafka is not fuzzed here),
# much quicker on a small machine. An input that runs longer than 20 s, or a
# process above 2 GiB, counts as a failure like a crash.
#
# Usage: scripts/fuzz.sh [seconds per target] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(json_records avro_records protobuf_records ddl sql_statement pgwire_messages)
fi
for target in "${targets[@]}"; do
  echo "== $target: ${seconds}s"
  cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=2048
done
