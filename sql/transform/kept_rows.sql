-- Reads kept_tasks and produces the row numbers (rn) of the batch's rows that load, for the explode.
SELECT rn FROM kept_tasks
