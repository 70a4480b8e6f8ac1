-- Speaker attribution of mono recordings (diarization): each diarized speaker label of a call
-- ("Speaker 1", ...) and the participant it is mapped to, as JSON {"Speaker 1": "Name" | null}.
-- Set when the call is transcribed, changed by relabelling. Portable between SQLite and
-- PostgreSQL.
ALTER TABLE transcripts ADD COLUMN speakers TEXT;
