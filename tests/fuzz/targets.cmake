# The fuzz targets, each tests/fuzz/<name>.cpp with its seeds in
# tests/fuzz/corpus/<name>/. Read by both builds: the clang tree builds
# fuzz_<name>, the g++ tree runs each briefly as a test.
set(heaven_fuzz_targets
  webhook webhook_form signature validate config sigv4 aws_xml ssh_key http)
