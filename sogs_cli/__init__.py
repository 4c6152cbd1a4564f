"""`sogs-cluster`, the command line over sogs_core: `main` (commands and parser), `options`
(the compressor and streamed options, shared with the backfill), `progress`."""
