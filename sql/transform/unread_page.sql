-- Reads nothing; deletes from batch_files the page $f that could not be read (it is rejected as a whole),
-- so that odd.sql does not count its tasks as missing.
DELETE FROM batch_files WHERE filename = $f
