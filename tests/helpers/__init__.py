"""Small builders shared by the ingest/decode/hostile/CLI tests (no inspector imports here)."""
