-- Reads nothing; drops the table ids once losers.sql has settled the fetch.
DROP TABLE ids
