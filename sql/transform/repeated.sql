-- Reads kept_tasks and repeated (the ids an earlier part of the fetch loaded) and produces the tasks of a
-- part that repeat one of those ids: they are rejected, not loaded twice.
SELECT instance_id, execution_id, task_id, id_raw, run_id, page_offset, pos, execution_month
FROM kept_tasks SEMI JOIN repeated USING (task_id)
