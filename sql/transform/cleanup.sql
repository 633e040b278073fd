-- Reads nothing; drops what a batch left behind. Run as one call, even once the transformer was told to stop,
-- its errors ignored (pipeline.transform.connection.Connection.cleanup).
DROP VIEW IF EXISTS kept_tasks;
DROP TABLE IF EXISTS kept_rn;
DROP TABLE IF EXISTS resource_errors;
DROP TABLE IF EXISTS unrepeated_rn
